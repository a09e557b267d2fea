"""The leaf link between two state hubs authenticated with an nkey: SH's server holds the
``leaf-by`` public key (``nats-config --peer by``), BY's server signs with the seed it reads
from its environment, so no configuration file holds it. A wrong seed or none is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from poststelle.routing.federation.isolation import (
    HUB_USER,
    NatsAuthConfig,
    generate_auth_config,
    leaf_user,
    new_user_seed,
)
from poststelle.routing.federation.states import (
    LEAF_SEED_VARIABLE,
    leafnode_config,
    mirror_peer_table,
)
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.table.store import RouteTableStore

from .helpers import table
from .test_federation import SH_TABLE, free_port, linked


@pytest.fixture(scope="module")
def auth() -> NatsAuthConfig:
    return generate_auth_config(table(), own_state="sh", leaf_peers=["by"])


@dataclass(frozen=True)
class Sh:
    leaf_port: int
    client_url: str


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory, auth: NatsAuthConfig) -> Iterator[Sh]:
    """SH accepts leaf links; its clients and leaf links authenticate as nkey users."""
    leaf_port = free_port()
    with EmbeddedNatsServer(
        store_dir=tmp_path_factory.mktemp("sh"),
        domain="sh",
        server_name="hub-sh",
        extra_config=auth.text + leafnode_config(listen_port=leaf_port),
    ) as server:
        yield Sh(leaf_port, server.client_url)


def _peer(store: Path, sh: Sh, seed: str | None) -> EmbeddedNatsServer:
    return EmbeddedNatsServer(
        store_dir=store,
        domain="by",
        server_name=f"hub-by-{store.name}",
        extra_config=leafnode_config(
            remotes=[f"nats-leaf://127.0.0.1:{sh.leaf_port}"],
            remote_seed_variable=LEAF_SEED_VARIABLE if seed is not None else None,
        ),
        environment={LEAF_SEED_VARIABLE: seed} if seed is not None else {},
    )


async def _until(check: object, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within} s")
        await asyncio.sleep(0.1)


def _refused(server: EmbeddedNatsServer) -> bool:
    log = (server.store_dir / "nats-server.log").read_text(encoding="utf-8", errors="replace")
    return "Authorization Violation" in log


async def test_the_peer_links_with_its_nkey_and_reaches_the_sh_domain(
    sh: Sh, auth: NatsAuthConfig, tmp_path: Path
) -> None:
    with _peer(tmp_path / "by", sh, auth.seeds[leaf_user("by")]) as by:
        config_text = (by.store_dir / "run" / "nats-server.conf").read_text(encoding="utf-8")
        assert auth.seeds[leaf_user("by")] not in config_text
        assert f"nkey: ${LEAF_SEED_VARIABLE}" in config_text
        client: NatsClient = await nats.connect(by.client_url)
        try:
            await _until(lambda: linked(client, "sh"))
            info = await client.jetstream(domain="sh").account_info()
            assert info is not None
        finally:
            await client.close()
        assert not _refused(by)


@pytest.mark.parametrize("seed", ["wrong", "none", "the hub's"])
async def test_a_peer_without_the_leaf_seed_is_refused(
    sh: Sh, auth: NatsAuthConfig, tmp_path: Path, seed: str
) -> None:
    # The hub's seed is a valid user, but not one allowed to open a leaf link.
    given = {"wrong": new_user_seed(), "none": None, "the hub's": auth.seeds[HUB_USER]}[seed]
    with _peer(tmp_path / "rogue", sh, given) as rogue:
        # The refusal is in the peer's log; wait for it rather than for a fixed time.
        await _until(lambda: asyncio.to_thread(_refused, rogue))
        client: NatsClient = await nats.connect(rogue.client_url)
        try:
            assert not await linked(client, "sh")
        finally:
            await client.close()


async def test_the_leaf_seed_is_no_client_login(sh: Sh, auth: NatsAuthConfig) -> None:
    with pytest.raises(nats.errors.NoServersError):
        await nats.connect(
            sh.client_url,
            nkeys_seed_str=auth.seeds[leaf_user("by")],
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=_ignore,
        )


async def _ignore(error: Exception) -> None:
    return None


async def test_the_accepting_side_refuses_hub_local_subjects_over_the_link(
    sh: Sh, auth: NatsAuthConfig, tmp_path: Path
) -> None:
    """Even a peer that drops its own filters cannot reach SH's case subjects: SH applies
    the leaf user's permissions."""
    seed = auth.seeds[leaf_user("by")]
    unfiltered = EmbeddedNatsServer(
        store_dir=tmp_path / "unfiltered",
        domain="by",
        server_name="hub-by-unfiltered",
        extra_config=(
            "leafnodes {\n  remotes: [\n"
            f'    {{ url: "nats-leaf://127.0.0.1:{sh.leaf_port}", nkey: ${LEAF_SEED_VARIABLE} }}\n'
            "  ]\n}\n"
        ),
        environment={LEAF_SEED_VARIABLE: seed},
    )
    with unfiltered:
        peer: NatsClient = await nats.connect(unfiltered.client_url)
        local: NatsClient = await nats.connect(sh.client_url, nkeys_seed_str=auth.seeds[HUB_USER])
        try:
            await _until(lambda: linked(peer, "sh"))
            arrived: list[bytes] = []

            async def keep(message: nats.aio.msg.Msg) -> None:
                arrived.append(message.data)

            await local.subscribe("case.>", cb=keep)
            await local.subscribe("fed.>", cb=keep)
            await local.subscribe("probe.>", cb=keep)
            await local.flush()
            # Control first: a subject the link may carry does arrive ...
            await _until(lambda: _publish_until_seen(peer, "probe.link", arrived))
            # ... a hub-local one published the same way does not.
            await peer.publish("case.kiel.bauamt.received", b"forged over the link")
            await peer.publish("fed.sh.by", b"forged federation case")
            await peer.publish("probe.link", b"marker")
            await peer.flush()
            await _until(lambda: _seen(arrived, b"marker"))
            assert b"forged over the link" not in arrived
            assert b"forged federation case" not in arrived
        finally:
            await peer.close()
            await local.close()


async def _publish_until_seen(client: NatsClient, subject: str, arrived: list[bytes]) -> bool:
    """Interest crosses a new leaf link shortly after it is up: publish until one lands."""
    await client.publish(subject, b"probe")
    await client.flush()
    await asyncio.sleep(0.05)
    return b"probe" in arrived


async def _seen(arrived: list[bytes], data: bytes) -> bool:
    return data in arrived


async def test_jetstream_across_the_authenticated_link_mirrors_the_peer_table(
    sh: Sh, auth: NatsAuthConfig, tmp_path: Path
) -> None:
    """The leaf user's permissions let the JetStream traffic through: BY mirrors SH's table."""
    with _peer(tmp_path / "by", sh, auth.seeds[leaf_user("by")]) as by:
        sh_nc: NatsClient = await nats.connect(sh.client_url, nkeys_seed_str=auth.seeds[HUB_USER])
        by_nc: NatsClient = await nats.connect(by.client_url)
        try:
            await _until(lambda: linked(by_nc, "sh"))
            await (await RouteTableStore.open(sh_nc.jetstream())).publish(SH_TABLE)
            mirror = await mirror_peer_table(by_nc.jetstream(), "sh")

            async def mirrored() -> bool:
                return await mirror.load() is not None

            await _until(mirrored)
            loaded = await mirror.load()
            assert loaded is not None and loaded.table == SH_TABLE
        finally:
            await sh_nc.close()
            await by_nc.close()
