"""Fixtures for the XTA tests: a running simulator and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._model import PartyId
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

HUB = PartyId("dvdv:poststelle-hub")
AMT = PartyId("dvdv:bauamt-musterstadt", name="Bauamt Musterstadt")


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
