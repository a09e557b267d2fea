"""Fixtures for the FIT-Connect tests: keys (made once: 4096-bit RSA takes a while), a running
simulator with one destination, and clients for both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.fitconnect import (
    FitConnectClient,
    FitConnectConnectionSettings,
    KeyPair,
    SecurityEvent,
    SentSubmission,
    generate_key,
    load_key,
    read_event,
    send_submission,
)
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator, SimulatedDestination
from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.integration.conftest import fresh_nats, hub_config
from tests.messages import xbau_antrag

# The hub fixtures of the integration tests, for the tests that run a hub beside the simulator.
__all__ = ["fresh_nats", "hub_config"]

LEIKA = "urn:de:fim:leika:leistung:99010003001006"
SERVICE = {"identifier": LEIKA, "name": "Baugenehmigung"}
XBAU_SCHEMA_URI = "urn:xoev-de:xleitstelle:standard:xbau:2.6"


@dataclass(frozen=True)
class DestinationKeys:
    encryption: KeyPair
    signature: KeyPair


@pytest.fixture(scope="session")
def service_key() -> KeyPair:
    return generate_key("zustelldienst-test", use="sig")


@pytest.fixture(scope="session")
def destination_keys() -> DestinationKeys:
    return DestinationKeys(
        generate_key("destination-enc", use="enc"), generate_key("destination-sig", use="sig")
    )


@pytest.fixture(scope="session")
def portal_keys() -> DestinationKeys:
    """The sender's keys: replies are encrypted for the first, it signs accept-reply and
    reject-reply with the second."""
    return DestinationKeys(
        generate_key("portal-reply-enc", use="enc"), generate_key("portal-sig", use="sig")
    )


def fitconnect_reply_channel(keys: DestinationKeys) -> dict[str, Any]:
    """``replyChannel`` offering the FIT-Connect reply channel, as metadata 1.2.0 has it."""
    return {
        "fitConnect": {
            "processStandards": ["urn:xoev-de:bmk:standard:xbau_2.6"],
            "encryptionPublicKey": keys.encryption.public,
        }
    }


@pytest.fixture(scope="session")
def metadata_schema(corpus_dir: Path) -> Path:
    return corpus_dir / "fit-connect" / "metadata.schema.v1.0.0.json"


@pytest.fixture
def fc_sim(service_key: KeyPair) -> Iterator[FitConnectSimulator]:
    with FitConnectSimulator(signing_key=service_key) as simulator:
        yield simulator


@pytest.fixture
def destination(
    fc_sim: FitConnectSimulator, destination_keys: DestinationKeys
) -> SimulatedDestination:
    return fc_sim.add_destination(
        destination_keys.encryption.public,
        destination_keys.signature.public,
        services=[{"identifier": LEIKA, "regions": ["DE09"]}],
    )


def connection(
    sim: FitConnectSimulator, credentials: tuple[str, str], **overrides: Any
) -> FitConnectConnectionSettings:
    client_id, secret = credentials
    values: dict[str, Any] = {
        "submission_api_url": sim.url,
        "token_url": sim.token_url,
        "client_id": client_id,
        "client_secret": secret,
        "retry_attempts": 4,
        "retry_initial_wait": 0.01,
        "retry_max_wait": 0.05,
        "read_timeout": 5.0,
        **overrides,
    }
    return FitConnectConnectionSettings.model_validate(values)


@pytest.fixture
async def sender(fc_sim: FitConnectSimulator) -> AsyncIterator[FitConnectClient]:
    async with FitConnectClient(connection(fc_sim, fc_sim.add_client("sender"))) as client:
        yield client


@pytest.fixture
async def subscriber(
    fc_sim: FitConnectSimulator, destination: SimulatedDestination
) -> AsyncIterator[FitConnectClient]:
    credentials = fc_sim.add_client("subscriber", (destination.destination_id,))
    async with FitConnectClient(connection(fc_sim, credentials)) as client:
        yield client


def adapter_settings(
    sim: FitConnectSimulator,
    destination: SimulatedDestination,
    keys: DestinationKeys,
    folder: Path,
    metadata_schema: Path,
) -> dict[str, Any]:
    """``[[inbound]]`` settings of a fitconnect adapter for ``destination``; the private keys
    are written to ``folder`` as the operator would keep them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decryption.jwk").write_text(keys.encryption.private_json())
    (folder / "signing.jwk").write_text(keys.signature.private_json())
    client_id, secret = sim.add_client("subscriber", (destination.destination_id,))
    return {
        "connection": {
            "submission_api_url": sim.url,
            "token_url": sim.token_url,
            "client_id": client_id,
            "client_secret": secret,
            "retry_attempts": 2,
            "retry_initial_wait": 0.01,
            "retry_max_wait": 0.05,
            "read_timeout": 5.0,
        },
        "destination_id": destination.destination_id,
        "decryption_key": str(folder / "decryption.jwk"),
        "signing_key": str(folder / "signing.jwk"),
        "metadata_schema": str(metadata_schema),
        "poll_interval": 0.1,
    }


def with_destination(
    config: HubConfig,
    sim: FitConnectSimulator,
    destination: SimulatedDestination,
    keys: DestinationKeys,
    metadata_schema: Path,
) -> HubConfig:
    """``config`` with one inbound adapter, ``fitconnect-amt``, polling ``destination``."""
    settings = adapter_settings(sim, destination, keys, config.data_dir / "keys", metadata_schema)
    inbound = {"name": "fitconnect-amt", "kind": "fitconnect", "settings": settings}
    return HubConfig.model_validate({**config.model_dump(), "inbound": [inbound]})


def delivered(hub: Hub) -> list[CaseEvent]:
    """What the hub's first worker delivered to its file back end."""
    folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return [CaseEvent.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]


def case_events(
    sim: FitConnectSimulator, case_id: str, keys: DestinationKeys
) -> list[SecurityEvent]:
    """The case's event log, each SET verified: the service's with its key, the
    destination's with the signature key it publishes (what a sender does)."""
    verifying = {
        sim.signing_key.kid: load_key(sim.signing_key.public, private=False, purpose="sig"),
        keys.signature.kid: load_key(keys.signature.public, private=False, purpose="sig"),
    }
    return [read_event(token, verifying) for token in sim.event_log(case_id)]


async def send_xbau(
    sender: FitConnectClient,
    destination: SimulatedDestination,
    body: bytes | None = None,
    **kw: Any,
) -> SentSubmission:
    """An XBau Antrag (``body``, a fresh one by default) sent as a portal sends it."""
    return await send_submission(
        sender,
        destination.destination_id,
        service=SERVICE,
        data=xbau_antrag()[0] if body is None else body,
        schema_uri=XBAU_SCHEMA_URI,
        mime_type="application/xml",
        **kw,
    )
