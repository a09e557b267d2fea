"""Tenant isolation on a three-node cluster: the nkey users of ``nats-config`` on every node,
``CASES`` replicated three times, a tenant connected to another node than the stream's
leader still refused another tenant's cases; the hub connects with ``nats.nkey_seed``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from poststelle.routing.federation.isolation import (
    CASES_STREAM,
    HUB_USER,
    NatsAuthConfig,
    backend_consumer_name,
    generate_auth_config,
    tenant_inbox_prefix,
)
from poststelle.routing.hub.config import HubConfig, NatsConfig
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import connect

from .helpers import table
from .test_isolation import Session, one_case_per_tenant

NODES = 3


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="module")
def auth() -> NatsAuthConfig:
    return generate_auth_config(table(), own_state="sh")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, auth: NatsAuthConfig) -> Iterator[list[str]]:
    route_ports = _free_ports(NODES)
    routes = [f"nats-route://127.0.0.1:{port}" for port in route_ports]
    nodes = [
        EmbeddedNatsServer(
            store_dir=tmp_path_factory.mktemp(f"node{index}"),
            domain="sh",
            server_name=f"node-{index}",
            extra_config=auth.text
            + "cluster {\n"
            + '  name: "poststelle"\n  host: "127.0.0.1"\n'
            + f"  port: {port}\n  routes: {json.dumps(routes)}\n}}\n",
        )
        for index, port in enumerate(route_ports)
    ]
    try:
        for node in nodes:
            node.start()
        yield [node.client_url for node in nodes]
    finally:
        for node in nodes:
            node.stop()


async def _until_jetstream_is_clustered(client: NatsClient, within: float = 30.0) -> None:
    """A new cluster elects its JetStream meta leader after start: poll for it."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await client.jetstream(timeout=1).add_stream(
                StreamConfig(name=CASES_STREAM, subjects=["case.>"], num_replicas=NODES)
            )
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_a_tenant_on_any_node_is_refused_another_tenants_cases(
    cluster: list[str], auth: NatsAuthConfig, tmp_path: Path
) -> None:
    seed_file = tmp_path / "hub.nk"
    seed_file.write_text(auth.seeds[HUB_USER] + "\n", encoding="utf-8")
    config = HubConfig(nats=NatsConfig(url=",".join(cluster), nkey_seed=seed_file))
    hub = await connect(config, persistent=False)
    try:
        await _until_jetstream_is_clustered(hub)
        js = hub.jetstream()
        await one_case_per_tenant(js, replicas=NODES)
        for url in cluster:
            session = Session()
            kiel = await session.connect(
                url, auth.seeds["kiel"], inbox_prefix=tenant_inbox_prefix("kiel")
            )
            try:
                own = await kiel.jetstream().pull_subscribe_bind(
                    backend_consumer_name("kiel", "bauamt"), CASES_STREAM
                )
                [message] = await own.fetch(1, timeout=5)
                assert message.data == b"case for kiel"
                await message.nak()  # the next node's session reads it again
                foreign = backend_consumer_name("luebeck", "bauamt")
                theirs = await kiel.jetstream().pull_subscribe_bind(foreign, CASES_STREAM)
                with pytest.raises(nats.errors.TimeoutError):
                    await theirs.fetch(1, timeout=0.5)
                await kiel.subscribe("case.luebeck.>")
                await kiel.publish("case.luebeck.bauamt.received", b"forged")
                with pytest.raises(nats.errors.TimeoutError):
                    await kiel.jetstream(timeout=0.5).purge_stream(CASES_STREAM)
                violations = " | ".join(await session.violations(expected=4))
                assert f"msg.next.cases.{foreign}" in violations, url
                assert 'subscription to "case.luebeck.>"' in violations, url
                assert 'publish to "case.luebeck.bauamt.received"' in violations, url
                assert "$js.api.stream.purge.cases" in violations, url
            finally:
                await kiel.close()
        stream = await js.stream_info(CASES_STREAM)
        assert stream.state.messages == 2, "no forged case and no purge on any node"
        info = await js.consumer_info(CASES_STREAM, backend_consumer_name("luebeck", "bauamt"))
        assert info.num_pending == 1, "Lübeck's case waits for Lübeck"
    finally:
        await hub.close()
