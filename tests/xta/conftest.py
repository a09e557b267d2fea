"""Fixtures for the XTA tests: a running simulator and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._model import MessageType, PartyId, XtaMessage, XtaMetadata
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

HUB = PartyId("dvdv:poststelle-hub")
AMT = PartyId("dvdv:bauamt-musterstadt", name="Bauamt Musterstadt")
XBAU = "urn:xoev-de:xleitstelle:standard:xbau"


def bescheid(
    message_id: str,
    *,
    reader: PartyId = AMT,
    not_before: datetime | None = None,
    filename: str | None = "bescheid.xml",
) -> XtaMessage:
    """An XBau Bescheid from the hub, as the tests send it."""
    return XtaMessage(
        metadata=XtaMetadata(
            message_id=message_id,
            author=HUB,
            reader=reader,
            service=XBAU,
            message_type=MessageType("baugenehmigung.bescheid.0205", "urn:x"),
            business_scenario="XBAU",
            not_before=not_before,
        ),
        content=b"<bescheid/>",
        filename=filename,
    )


@pytest.fixture(scope="session")
def xta_dir(corpus_dir: Path) -> Path:
    return corpus_dir / "xta-2.1.1"


@pytest.fixture
def simulator(xta_dir: Path) -> Iterator[XtaSimulator]:
    # Strict: the simulator itself rejects requests that violate the XTA schemas.
    with XtaSimulator(xsd_dir=xta_dir) as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        yield sim


def make_settings(sim: XtaSimulator, xta_dir: Path, **overrides: object) -> XtaConnectionSettings:
    values: dict[str, object] = {
        "service_url": sim.url,
        "xsd_dir": xta_dir,
        "retry_attempts": 4,
        "retry_initial_wait": 0.01,
        "retry_max_wait": 0.05,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return XtaConnectionSettings.model_validate(values)


@pytest.fixture
def client(simulator: XtaSimulator, xta_dir: Path) -> Iterator[XtaClient]:
    c = XtaClient(make_settings(simulator, xta_dir))
    yield c
    c.close_session()
