"""The fitconnect adapter passes the adapter contract kit against the simulator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.fitconnect import (
    FitConnectClient,
    FitConnectConnectionSettings,
    send_submission,
)
from poststelle.adapters.fitconnect.adapter import FitConnectAdapter, FitConnectSettings
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator, SimulatedDestination
from poststelle.adapters.registry import AdapterRegistry
from poststelle.adapters.testing import InboundAdapterContract, RecordingPublisher
from poststelle.routing.hub.config import load_config
from tests.fitconnect.conftest import SERVICE, XBAU_SCHEMA_URI, DestinationKeys, adapter_settings


class TestFitConnectAdapter(InboundAdapterContract):
    @pytest.fixture
    async def adapter(
        self,
        tmp_path: Path,
        publisher: RecordingPublisher,
        fc_sim: FitConnectSimulator,
        destination: SimulatedDestination,
        destination_keys: DestinationKeys,
        metadata_schema: Path,
        sender: FitConnectClient,
    ) -> AsyncIterator[FitConnectAdapter]:
        settings = FitConnectSettings.model_validate(
            adapter_settings(
                fc_sim, destination, destination_keys, tmp_path / "keys", metadata_schema
            )
        )
        adapter = FitConnectAdapter(
            name="fitconnect-kit",
            settings=settings,
            context=AdapterContext(data_dir=tmp_path, publish=publisher),
        )
        # The kit's put and still_at_source reach the simulator through these.
        adapter.kit = (fc_sim, destination, sender)  # type: ignore[attr-defined]
        await adapter.start()
        yield adapter
        await adapter.stop()

    async def put(self, adapter: Any, raw: bytes) -> str:
        _, destination, sender = adapter.kit
        sent = await send_submission(
            sender,
            destination.destination_id,
            service=SERVICE,
            data=raw,
            schema_uri=XBAU_SCHEMA_URI,
            mime_type="application/xml",
        )
        return sent.submission_id

    async def still_at_source(self, adapter: Any) -> set[str]:
        sim, destination, _ = adapter.kit
        return {
            s["submissionId"]
            for s in sim.submissions()
            if s["destinationId"] == destination.destination_id and s["state"] == "submitted"
        }


def test_registered_under_its_entry_point() -> None:
    assert AdapterRegistry().get("fitconnect") is FitConnectAdapter


def test_documented_configuration_is_valid_and_complete(
    tmp_path: Path, destination_keys: DestinationKeys, metadata_schema: Path
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fitconnect.md").read_text()
    [block] = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    documented = set(re.findall(r"^#? ?(\w+) = ", block, re.MULTILINE))
    known = set(FitConnectSettings.model_fields) | set(FitConnectConnectionSettings.model_fields)
    assert known - {"connection"} <= documented, "docs lack settings"
    (tmp_path / "decryption.jwk").write_text(destination_keys.encryption.private_json())
    (tmp_path / "signing.jwk").write_text(destination_keys.signature.private_json())
    file = tmp_path / "hub.toml"
    file.write_text(
        block.replace("/etc/poststelle/fitconnect", str(tmp_path)).replace(
            "/srv/fit-connect/metadata.schema.v1.0.0.json", str(metadata_schema)
        )
    )
    [entry] = load_config(file, environ={}).inbound
    settings = FitConnectSettings.model_validate(entry.settings)
    assert settings.connection.jwks_url.endswith("/.well-known/jwks.json")
    with pytest.raises(ValidationError, match="destination_id"):
        FitConnectSettings.model_validate({**entry.settings, "destination_id": "not-a-uuid"})
