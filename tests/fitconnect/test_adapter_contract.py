"""The fitconnect adapter passes the adapter contract kit against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.fitconnect import FitConnectClient, send_submission
from poststelle.adapters.fitconnect.adapter import FitConnectAdapter, FitConnectSettings
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator, SimulatedDestination
from poststelle.adapters.registry import AdapterRegistry
from poststelle.adapters.testing import InboundAdapterContract, RecordingPublisher
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
