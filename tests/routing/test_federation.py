"""Two state hubs (JetStream domains sh and by) joined by a leaf node on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from poststelle.routing.federation.states import (
    FEDERATION_MAX_AGE,
    FEDERATION_STREAM,
    INBOX_STREAM,
    Territory,
    add_inbox_sources,
    check_territory,
    ensure_federation_stream,
    forward_to_peer,
    leafnode_config,
    mirror_peer_table,
    state_for_ars,
)
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.streams.topology import ensure_topology
from poststelle.routing.table.resolver import RouteQuery, compile_table
from poststelle.routing.table.rules import RouteTableError
from poststelle.routing.table.store import RouteTableStore, RouteTableWatcher

from .helpers import BAUGENEHMIGUNG, KIEL, table

MUENCHEN = "091620000000"
SH_TABLE = table({"tenant": "kiel", "backend": "bauamt", "ars": KIEL})
BY_TABLE = table(
    {"tenant": "muenchen", "backend": "lbk", "ars": MUENCHEN},
    tenants={"muenchen": {"backends": ["lbk"]}},
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Hubs:
    sh: EmbeddedNatsServer
    by: EmbeddedNatsServer


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[Hubs]:
    leaf_port = free_port()
    sh = EmbeddedNatsServer(
        store_dir=tmp_path / "sh",
        domain="sh",
        server_name="hub-sh",
        extra_config=leafnode_config(listen_port=leaf_port),
    )
    by = EmbeddedNatsServer(
        store_dir=tmp_path / "by",
        domain="by",
        server_name="hub-by",
        extra_config=leafnode_config(remotes=[f"nats-leaf://127.0.0.1:{leaf_port}"]),
    )
    sh.start()
    by.start()
    try:
        yield Hubs(sh, by)
    finally:
        by.stop()
        sh.stop()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll remote state (a peer server's) until ``check`` holds."""
    for _ in range(int(within / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached within {within} s")


async def linked(client: NatsClient, domain: str) -> bool:
    try:
        await client.jetstream(domain=domain).account_info()
    except Exception:
        return False
    return True


async def test_territory_and_read_only_mirror_of_the_peer_table(hubs: Hubs) -> None:
    sh_nc = await nats.connect(hubs.sh.client_url)
    by_nc = await nats.connect(hubs.by.client_url)
    try:
        await eventually(lambda: linked(by_nc, "sh"))
        with pytest.raises(RouteTableError, match="outside the territory of sh"):
            check_territory(BY_TABLE, Territory.for_state("sh"))
        check_territory(SH_TABLE, Territory.for_state("sh"))
        sh_store = await RouteTableStore.open(sh_nc.jetstream())
        await sh_store.publish(SH_TABLE)
        by_store = await RouteTableStore.open(by_nc.jetstream())
        await by_store.publish(BY_TABLE)

        mirror = await mirror_peer_table(by_nc.jetstream(), "sh")
        watcher = RouteTableWatcher(mirror, poll_interval=0.5)
        await watcher.start()
        try:
            async with asyncio.timeout(15):
                await watcher.wait_until(lambda: watcher.resolver is not None)
            assert watcher.resolver is not None
            assert watcher.resolver.resolve(RouteQuery(ars=KIEL)).tenant == "kiel"

            with pytest.raises(RouteTableError, match="read-only mirror"):
                await mirror.publish(SH_TABLE)
            # BY's own table is untouched by the mirror.
            own = await by_store.load()
            assert own is not None and own.table == BY_TABLE

            moved = table({"tenant": "kiel", "backend": "dms", "ars": KIEL})
            await sh_store.publish(moved)

            def follows() -> bool:
                resolver = watcher.resolver
                return (
                    resolver is not None and resolver.resolve(RouteQuery(ars=KIEL)).backend == "dms"
                )

            async with asyncio.timeout(5):
                await watcher.wait_until(follows)
        finally:
            await watcher.stop()
    finally:
        await sh_nc.close()
        await by_nc.close()


async def inbox_messages(client: NatsClient) -> list[tuple[str | None, bytes]]:
    js = client.jetstream()
    info = await js.stream_info(INBOX_STREAM)
    if not info.state.messages:
        return []
    found: list[tuple[str | None, bytes]] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(INBOX_STREAM, sequence)
        found.append((message.subject, message.data or b""))
    return found


async def test_case_for_bavaria_reaches_by_inbox_exactly_once_across_an_outage(
    hubs: Hubs,
) -> None:
    sh_nc = await nats.connect(hubs.sh.client_url)
    by_nc = await nats.connect(hubs.by.client_url)
    try:
        await eventually(lambda: linked(by_nc, "sh"))
        await ensure_federation_stream(sh_nc.jetstream())
        await by_nc.jetstream().add_stream(
            StreamConfig(name=INBOX_STREAM, subjects=["inbox.>"], duplicate_window=3600)
        )
        await add_inbox_sources(by_nc.jetstream(), "by", ["sh"])
        await add_inbox_sources(by_nc.jetstream(), "by", ["sh"])  # idempotent
        # SH's own INBOX: its local arrivals must stay local.
        await sh_nc.jetstream().add_stream(StreamConfig(name=INBOX_STREAM, subjects=["inbox.>"]))
        await sh_nc.jetstream().publish("inbox.portal.sh-portal", b"local to sh")

        def case(number: int) -> bytes:
            return json.dumps({"leistung": BAUGENEHMIGUNG, "ars": MUENCHEN, "n": number}).encode()

        sh_js = sh_nc.jetstream()
        assert state_for_ars(MUENCHEN) == "by"
        await forward_to_peer(sh_js, origin="sh", target="by", payload=case(1), msg_id="portal:1")

        async def inbox_has(count: int) -> bool:
            return len(await inbox_messages(by_nc)) >= count

        await eventually(lambda: inbox_has(1))
        await by_nc.close()

        hubs.by.stop()
        await forward_to_peer(sh_js, origin="sh", target="by", payload=case(2), msg_id="portal:2")
        # The origin retries the first case too: FEDERATION drops it by its message id.
        await forward_to_peer(sh_js, origin="sh", target="by", payload=case(1), msg_id="portal:1")
        hubs.by.start()

        by_nc = await nats.connect(hubs.by.client_url)
        await eventually(lambda: inbox_has(2), within=30)
        await asyncio.sleep(2)  # time for a duplicate to show up if sourcing replayed
        delivered = await inbox_messages(by_nc)
        assert [subject for subject, _ in delivered] == ["inbox.federation.sh"] * 2
        assert [json.loads(data)["n"] for _, data in delivered] == [1, 2]
        assert (await sh_nc.jetstream().stream_info(INBOX_STREAM)).state.messages == 1

        # BY's own table routes the Bavarian case.
        resolver = compile_table(BY_TABLE)
        facts = json.loads(delivered[1][1])
        routed = resolver.resolve(RouteQuery(leistung=facts["leistung"], ars=facts["ars"]))
        assert (routed.tenant, routed.backend) == ("muenchen", "lbk")
    finally:
        await sh_nc.close()
        if not by_nc.is_closed:
            await by_nc.close()


def test_a_state_hub_does_not_advertise_its_leaf_address(tmp_path: Path) -> None:
    """A peer reconnects at the URL it was configured with (a proxy, a NAT address), never
    at the listen address the accepting server would gossip in its leaf INFO."""
    leaf_port = free_port()
    sh = EmbeddedNatsServer(
        store_dir=tmp_path / "sh", domain="sh", extra_config=leafnode_config(listen_port=leaf_port)
    )
    sh.start()
    try:
        with socket.create_connection(("127.0.0.1", leaf_port), timeout=5) as leaf:
            line = leaf.makefile("rb").readline()
    finally:
        sh.stop()
    assert line.startswith(b"INFO ")
    info = json.loads(line[len(b"INFO ") :])
    assert info["domain"] == "sh"
    assert "leafnode_urls" not in info


async def test_the_topology_keeps_the_peers_inbox_sources(hubs: Hubs) -> None:
    """`poststelle stats` (any CLI command) and each worker process ensure the topology on a
    running hub: that must not drop the INBOX sources federation added."""
    by_nc = await nats.connect(hubs.by.client_url)
    try:
        by_js = by_nc.jetstream()
        await ensure_topology(by_js)
        await add_inbox_sources(by_js, "by", ["sh"])
        await ensure_topology(by_js)
        sources = (await by_js.stream_info(INBOX_STREAM)).config.sources or []
    finally:
        await by_nc.close()
    assert [s.external.api for s in sources if s.external] == ["$JS.sh.API"]


async def test_a_federation_stream_of_an_older_version_keeps_cases_as_long_as_the_inbox(
    hubs: Hubs,
) -> None:
    sh_nc = await nats.connect(hubs.sh.client_url)
    try:
        js = sh_nc.jetstream()
        await js.add_stream(
            StreamConfig(name=FEDERATION_STREAM, subjects=["fed.>"], max_age=14 * 24 * 3600.0)
        )
        await ensure_federation_stream(js)
        kept = (await js.stream_info(FEDERATION_STREAM)).config.max_age
        await ensure_topology(js)
        inbox = (await js.stream_info(INBOX_STREAM)).config.max_age
    finally:
        await sh_nc.close()
    assert kept == FEDERATION_MAX_AGE == inbox
