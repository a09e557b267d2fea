"""Tenant nkeys tried against another tenant's cases, on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from poststelle.routing.federation.isolation import (
    CASES_STREAM,
    HUB_USER,
    NatsAuthConfig,
    backend_consumer_name,
    generate_auth_config,
    new_user_seed,
    public_key,
    tenant_inbox_prefix,
)
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from tests import cli_runner

from .helpers import table

TABLE = table()  # tenants kiel (bauamt, dms), luebeck (bauamt), land-sh (fallback)


@pytest.fixture(scope="module")
def auth() -> NatsAuthConfig:
    return generate_auth_config(TABLE, own_state="sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, auth: NatsAuthConfig) -> Iterator[str]:
    with EmbeddedNatsServer(
        store_dir=tmp_path_factory.mktemp("isolated"), domain="sh", extra_config=auth.text
    ) as running:
        yield running.client_url


class Session:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client: NatsClient | None = None

    async def connect(self, url: str, seed: str, **options: str) -> NatsClient:
        async def record(error: Exception) -> None:
            self.errors.append(str(error))

        self.client = await nats.connect(url, nkeys_seed_str=seed, error_cb=record, **options)
        return self.client

    async def violations(self, *, expected: int = 0, within: float = 5.0) -> list[str]:
        """The permission violations so far, once at least ``expected`` have arrived.

        The server answers a refused operation with ``-ERR`` before it answers the flush's
        PING, so after the flush every violation is on its way; the error callback may still
        be scheduled behind it, hence the bounded wait for the ones a test expects.
        """
        assert self.client is not None
        await self.client.flush()
        deadline = asyncio.get_running_loop().time() + within
        while True:
            # nats-py lower-cases the server's message.
            found = [e.lower() for e in self.errors if "permissions violation" in e.lower()]
            if len(found) >= expected or asyncio.get_running_loop().time() > deadline:
                await asyncio.sleep(0)  # let an already scheduled callback run
                return [e.lower() for e in self.errors if "permissions violation" in e.lower()]
            await asyncio.sleep(0.02)


async def one_case_per_tenant(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Kiel's and Lübeck's back-end consumers on ``CASES``, and one case for each."""
    for tenant, backend in (("kiel", "bauamt"), ("luebeck", "bauamt")):
        await js.add_consumer(
            CASES_STREAM,
            ConsumerConfig(
                durable_name=backend_consumer_name(tenant, backend),
                filter_subject=f"case.{tenant}.{backend}.>",
                ack_policy=AckPolicy.EXPLICIT,
                num_replicas=replicas,
            ),
        )
        await js.publish(f"case.{tenant}.{backend}.received", f"case for {tenant}".encode())


@pytest.fixture(scope="module")
async def hub(server: str, auth: NatsAuthConfig) -> AsyncIterator[NatsClient]:
    client = await nats.connect(server, nkeys_seed_str=auth.seeds[HUB_USER])
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=CASES_STREAM, subjects=["case.>"]))
    await one_case_per_tenant(js)
    yield client
    await client.close()


async def tenant(server: str, auth: NatsAuthConfig, name: str) -> tuple[Session, NatsClient]:
    session = Session()
    client = await session.connect(server, auth.seeds[name], inbox_prefix=tenant_inbox_prefix(name))
    return session, client


async def test_tenant_reads_its_own_cases(
    server: str, auth: NatsAuthConfig, hub: NatsClient
) -> None:
    session, client = await tenant(server, auth, "kiel")
    try:
        consumer = backend_consumer_name("kiel", "bauamt")
        subscription = await client.jetstream().pull_subscribe_bind(consumer, CASES_STREAM)
        [message] = await subscription.fetch(1, timeout=5)
        assert message.data == b"case for kiel"
        await message.ack_sync()
        assert await session.violations() == []
    finally:
        await client.close()


async def test_tenant_is_refused_another_tenants_consumer(
    server: str, auth: NatsAuthConfig, hub: NatsClient
) -> None:
    session, client = await tenant(server, auth, "kiel")
    try:
        foreign = backend_consumer_name("luebeck", "bauamt")
        subscription = await client.jetstream().pull_subscribe_bind(foreign, CASES_STREAM)
        with pytest.raises(nats.errors.TimeoutError):
            await subscription.fetch(1, timeout=1)
        violations = await session.violations(expected=1)
        assert any(f"msg.next.cases.{foreign}" in v for v in violations)
        # Lübeck's case is still there for Lübeck.
        info = await hub.jetstream().consumer_info(CASES_STREAM, foreign)
        assert info.num_pending + info.num_ack_pending == 1
    finally:
        await client.close()


async def test_tenant_is_refused_subjects_stream_reads_and_new_consumers(
    server: str, auth: NatsAuthConfig, hub: NatsClient
) -> None:
    session, client = await tenant(server, auth, "kiel")
    try:
        await client.subscribe("case.luebeck.>")
        await client.publish("case.luebeck.bauamt.received", b"forged")
        js = client.jetstream(timeout=1)
        with pytest.raises(nats.errors.TimeoutError):
            await js.get_msg(CASES_STREAM, 2)
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer(CASES_STREAM, ConsumerConfig(filter_subject="case.luebeck.>"))
        violations = " | ".join(await session.violations(expected=4))
        assert 'subscription to "case.luebeck.>"' in violations
        assert 'publish to "case.luebeck.bauamt.received"' in violations
        assert "$js.api.stream.msg.get.cases" in violations
        assert "$js.api.consumer.create.cases" in violations
        stream = await hub.jetstream().stream_info(CASES_STREAM)
        assert stream.state.messages == 2  # the forged publish never landed
    finally:
        await client.close()


async def test_tenant_is_refused_the_jetstream_api_and_replies_of_others(
    server: str, auth: NatsAuthConfig, hub: NatsClient
) -> None:
    session, client = await tenant(server, auth, "kiel")
    try:
        foreign = backend_consumer_name("luebeck", "bauamt")
        js = client.jetstream(timeout=0.5)
        for call in (
            js.consumer_info(CASES_STREAM, foreign),
            js.delete_consumer(CASES_STREAM, foreign),
            js.purge_stream(CASES_STREAM),
            js.delete_stream(CASES_STREAM),
        ):
            with pytest.raises(nats.errors.TimeoutError):
                await call
        await client.publish("reply.luebeck.bauamt.decision", b"forged answer")
        await client.subscribe(f"{tenant_inbox_prefix('luebeck')}.>")
        await client.subscribe("_INBOX.>")
        violations = " | ".join(await session.violations(expected=7))
        assert f"$js.api.consumer.info.cases.{foreign}" in violations
        assert f"$js.api.consumer.delete.cases.{foreign}" in violations
        assert "$js.api.stream.purge.cases" in violations
        assert "$js.api.stream.delete.cases" in violations
        assert 'publish to "reply.luebeck.bauamt.decision"' in violations
        assert 'subscription to "_inbox_luebeck.>"' in violations
        assert 'subscription to "_inbox.>"' in violations
        info = await hub.jetstream().consumer_info(CASES_STREAM, foreign)
        assert info.num_pending + info.num_ack_pending == 1, "Lübeck's consumer is intact"
    finally:
        await client.close()


async def test_hub_user_cannot_reach_a_peer_states_table(
    server: str, auth: NatsAuthConfig, hub: NatsClient
) -> None:
    session = Session()
    client = await session.connect(server, auth.seeds[HUB_USER])
    try:
        await client.publish("$JS.by.API.STREAM.PURGE.KV_routes", b"")
        await client.publish("$JS.sh.API.INFO", b"")  # own domain: allowed
        violations = await session.violations(expected=1)
        assert len(violations) == 1
        assert "$js.by.api.stream.purge.kv_routes" in violations[0]
    finally:
        await client.close()


async def test_an_unknown_nkey_and_a_password_are_refused(server: str) -> None:
    for credentials in ({"nkeys_seed_str": new_user_seed()}, {"user": "kiel", "password": "x"}):
        with pytest.raises(nats.errors.NoServersError):
            await nats.connect(
                server,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=_ignore,
                **credentials,  # type: ignore[arg-type]
            )


def test_the_server_config_holds_no_secret(auth: NatsAuthConfig) -> None:
    assert "password" not in auth.text
    for user, seed in auth.seeds.items():
        assert seed.startswith("SU")
        assert seed not in auth.text, user
        assert public_key(seed) in auth.text, user


async def _ignore(error: Exception) -> None:
    return None


def test_reserved_and_reused_seeds() -> None:
    first = generate_auth_config(TABLE)
    again = generate_auth_config(TABLE, seeds=first.seeds)
    assert again.seeds == first.seeds
    assert again.text == first.text
    assert set(first.seeds) == {"hub", "kiel", "luebeck", "land-sh"}
    with pytest.raises(ValueError, match="reserved"):
        generate_auth_config(table(tenants={"hub": {"backends": ["x"]}}))
    with pytest.raises(ValueError, match="not an nkey seed"):
        generate_auth_config(TABLE, seeds={"kiel": "a-password"})


def test_peer_leaf_users() -> None:
    auth = generate_auth_config(TABLE, own_state="sh", leaf_peers=["by"])
    assert set(auth.seeds) == {"hub", "kiel", "luebeck", "land-sh", "leaf-by"}
    entry = auth.text.split("# leaf-by\n", 1)[1].splitlines()[0]
    assert '"allowed_connection_types": ["LEAFNODE"]' in entry
    assert '"allowed_connection_types": ["STANDARD"]' in auth.text.split("# kiel\n", 1)[1]
    with pytest.raises(ValueError, match="not a peer state"):
        generate_auth_config(TABLE, own_state="sh", leaf_peers=["sh"])
    with pytest.raises(ValueError, match="reserved"):
        generate_auth_config(
            table(tenants={"leaf-by": {"backends": ["x"]}}), own_state="sh", leaf_peers=["by"]
        )


def test_nats_config_command_writes_private_files_and_keeps_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from poststelle.routing.cli.routes import register

    output, seeds = tmp_path / "auth.conf", tmp_path / "seeds"
    argv = [
        "nats-config",
        "--table",
        str(Path(__file__).with_name("data") / "sh.yaml"),
        "--state",
        "sh",
        "-o",
        str(output),
        "--seeds",
        str(seeds),
        "--peer",
        "by",
    ]
    assert cli_runner.run(register, argv) == 0
    files = sorted(seeds.iterdir())
    assert [f.name for f in files] == [
        "hub.nk",
        "kiel.nk",
        "land-sh.nk",
        "leaf-by.nk",
        "luebeck.nk",
    ]
    first = {f.name: f.read_text() for f in files}
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    assert oct(seeds.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    text = output.read_text()
    assert "# kiel" in text and "password" not in text
    assert public_key(first["kiel.nk"]) in text and first["kiel.nk"].strip() not in text
    assert cli_runner.run(register, argv) == 0
    assert {f.name: f.read_text() for f in sorted(seeds.iterdir())} == first
    assert "5 nkey users" in capsys.readouterr().out
