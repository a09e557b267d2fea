"""A hub wired to its own fresh nats-server for each test: no state leaks between tests."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from tests.adapters.receiver import Receiver, webhook_receiver
from tests.xta.conftest import AMT, HUB


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    with EmbeddedNatsServer(store_dir=tmp_path / "nats-store") as server:
        yield server


def config_on(
    nats: EmbeddedNatsServer, folder: Path, file: Path | None = None, **overrides: object
) -> HubConfig:
    """A hub's configuration (``file``'s, else the demo's) on ``nats``, keeping its data
    under ``folder``, HTTP on a free port; ``overrides`` as ``load_config`` takes them."""
    return load_config(
        file,
        environ={},
        overrides={
            "data_dir": folder / "data",
            "nats.url": nats.client_url,
            "http.port": 0,
            **overrides,
        },
    )


@pytest.fixture
def hub_config(tmp_path: Path, fresh_nats: EmbeddedNatsServer) -> HubConfig:
    return config_on(fresh_nats, tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook back end's receiving end on loopback."""
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def hub(hub_config: HubConfig) -> AsyncIterator[Hub]:
    async with Hub(hub_config) as running:
        yield running


@pytest.fixture
async def http(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as client:
        yield client


@contextmanager
def xta_simulator(corpus_dir: Path, *, mtom: bool = False) -> Iterator[XtaSimulator]:
    """An XTA server (strict about the schemas) with the mailboxes of HUB and AMT."""
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1", mtom=mtom) as simulator:
        simulator.create_mailbox(HUB.value)
        simulator.create_mailbox(AMT.value)
        yield simulator


@pytest.fixture
def xta_sim(corpus_dir: Path) -> Iterator[XtaSimulator]:
    with xta_simulator(corpus_dir) as simulator:
        yield simulator


async def eventually(check: Callable[[], Any], *, within: float = 30.0) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with its last value.

    The deadline only bounds a failing test: a passing one returns as soon as the condition
    holds, so it is generous enough for a loaded CI machine.
    """
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value: {result!r})")
        await asyncio.sleep(0.05)


def run_cli(config: HubConfig, *argv: str) -> tuple[int, str, str]:
    """``poststelle *argv`` in this process against ``config``'s NATS and data folder:
    (exit code, standard output, standard error)."""
    out, err = io.StringIO(), io.StringIO()
    common = ["--nats-url", str(config.nats.url), "--data-dir", str(config.data_dir)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = poststelle([*argv, *common])
    return code, out.getvalue(), err.getvalue()
