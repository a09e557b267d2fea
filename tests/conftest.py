"""Shared fixtures: one real nats-server with JetStream per test session (port 0, temp store)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.streams.topology import ensure_topology

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    corpus = Path(os.environ.get("POSTSTELLE_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))
    if not corpus.is_dir():
        pytest.skip(f"conformance corpus not found at {corpus} (set POSTSTELLE_CORPUS)")
    return corpus


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(store_dir=tmp_path_factory.mktemp("nats"))
    with server:
        yield server


@pytest.fixture
async def nc(nats_server: EmbeddedNatsServer) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server.client_url)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    """The hub's streams on a server of the test's own (a fresh store, nothing left over)."""
    with EmbeddedNatsServer(store_dir=tmp_path / "nats") as server:
        client = await nats.connect(server.client_url)
        stream = client.jetstream()
        await ensure_topology(stream)
        try:
            yield stream
        finally:
            await client.close()
