"""``poststelle doctor`` against a healthy hub and broken ones, on real nats-servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.js.errors import NotFoundError

from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.cli.doctor import Check, diagnose, worst
from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import DLQ
from tests.integration.conftest import config_on, eventually

CONFIG = """
[[backends]]
tenant = "stadt-kiel"
name = "akte"

[[routes]]
standard = "xbau"
tenant = "stadt-kiel"
backend = "akte"
"""


def certificate(folder: Path, *, days: float) -> tuple[Path, Path]:
    """A self-signed certificate ending ``days`` from now (negative: already expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"cert-{days}.pem", folder / f"key-{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def config_for(tmp_path: Path, nats: EmbeddedNatsServer, **overrides: object) -> HubConfig:
    file = tmp_path / "hub.toml"
    file.write_text(CONFIG)
    return config_on(nats, tmp_path, file, **overrides)


@pytest.fixture
async def healthy(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer, corpus_dir: Path
) -> AsyncIterator[Hub]:
    cert, key = certificate(tmp_path / "tls", days=365)
    config = config_for(
        tmp_path, fresh_nats, **{"http.tls_certfile": cert, "http.tls_keyfile": key}
    )
    ContractRegistry.for_data_dir(config.data_dir).add_schema_set(corpus_dir / "xbau-2.6" / "xsd")
    async with Hub(config) as hub:
        yield hub


def row(checks: list[Check], name: str) -> Check:
    found = [c for c in checks if c.check == name]
    assert found, [c.check for c in checks]
    return found[0]


async def test_a_healthy_hub_passes_every_check(healthy: Hub) -> None:
    checks = await diagnose(healthy.config)
    assert worst(checks) == "ok", [c for c in checks if c.status != "ok"]
    names = {c.check for c in checks}
    for expected in ("nats", "jetstream", "streams", "replicas", "consumers", "balance"):
        assert expected in names
    assert row(checks, "schemas").detail.startswith("1 of ")
    assert "valid until" in row(checks, "certificate http.tls_certfile").detail


async def test_a_missing_stream_fails_with_the_remedy(healthy: Hub) -> None:
    await healthy.js.delete_stream(DLQ)
    checks = await diagnose(healthy.config)
    streams = row(checks, "streams")
    assert streams.status == "fail"
    assert "stream DLQ" in streams.detail
    assert "poststelle run" in streams.remedy
    assert worst(checks) == "fail"


async def test_wrong_replicas_fail_with_the_command_to_fix_them(healthy: Hub) -> None:
    config = healthy.config.model_copy(
        update={"nats": healthy.config.nats.model_copy(update={"replicas": 3})}
    )
    checks = await diagnose(config)
    inbox = row(checks, "replicas INBOX")
    assert inbox.status == "fail"
    assert "1 replica(s), nats.replicas is 3" in inbox.detail
    assert "nats stream edit INBOX --replicas 3" in inbox.remedy


async def test_no_schemas_and_missing_consumers_fail(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer
) -> None:
    config = config_for(tmp_path, fresh_nats)
    # The topology exists (a hub ran once) but no hub runs now: no consumers.
    async with Hub(config) as hub:

        async def router_consumer() -> bool:
            try:
                await hub.js.consumer_info("INBOX", "router")
            except NotFoundError:
                return False
            return True

        # The routing core makes its consumer as it starts; on a loaded machine that can
        # come after the hub's start returned.
        await eventually(router_consumer)
        await hub.js.delete_consumer("INBOX", "router")
        checks = await diagnose(config)
    schemas = row(checks, "schemas")
    assert schemas.status == "fail"
    assert "poststelle contracts add" in schemas.remedy
    consumers = row(checks, "consumers")
    assert consumers.status == "fail"
    assert "router (routing core)" in consumers.detail


@pytest.mark.parametrize(
    ("days", "status", "words"), [(5, "warn", "renew it before"), (-1, "fail", "expired")]
)
async def test_expiring_and_expired_certificates(
    tmp_path: Path, fresh_nats: EmbeddedNatsServer, days: float, status: str, words: str
) -> None:
    cert, key = certificate(tmp_path / "tls", days=days)
    config = config_for(
        tmp_path, fresh_nats, **{"http.tls_certfile": cert, "http.tls_keyfile": key}
    )
    checks = await diagnose(config)
    found = row(checks, "certificate http.tls_certfile")
    assert found.status == status
    assert words in f"{found.detail} {found.remedy}"


async def test_unreachable_nats_fails_and_stops_there(tmp_path: Path) -> None:
    config = load_config(
        environ={},
        overrides={"data_dir": tmp_path / "data", "nats.url": "nats://127.0.0.1:1"},
        demo=False,
    )
    checks = await diagnose(config)
    nats = row(checks, "nats")
    assert nats.status == "fail"
    assert "not reachable" in nats.detail
    assert "streams" not in {c.check for c in checks}


async def test_no_hub_on_the_data_dir_names_the_command(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"data_dir": tmp_path / "data"}, demo=False)
    checks = await diagnose(config)
    nats = row(checks, "nats")
    assert nats.status == "fail"
    assert f"poststelle run --data-dir {tmp_path / 'data'}" in nats.remedy
    # Doctor looks and never repairs: it started no server on the folder.
    assert not (tmp_path / "data" / "nats").exists()


def _doctor(hub: Hub, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "poststelle.routing.cli", "doctor"),
            *("--config", str(hub.config.data_dir.parent / "hub.toml")),
            *("--data-dir", str(hub.config.data_dir)),
            *("--nats-url", hub.nats_url),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_prints_a_table_and_exits_by_the_worst_row(healthy: Hub) -> None:
    # The certificate is given by the fixture's overrides, not the file: the CLI sees none.
    good = await asyncio.to_thread(_doctor, healthy)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "healthy" in good.stdout
    assert "remedy" in good.stdout  # the table's header

    await healthy.js.delete_stream(DLQ)
    bad = await asyncio.to_thread(_doctor, healthy)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "missing: stream DLQ" in bad.stdout
    assert "the hub creates its topology" in bad.stdout
    assert "1 check(s) failed" in bad.stdout

    as_json = await asyncio.to_thread(_doctor, healthy, "--json")
    report = json.loads(as_json.stdout)
    assert report["status"] == "fail"
    assert any(c["check"] == "streams" and c["status"] == "fail" for c in report["checks"])


async def test_an_unreachable_federation_peer_fails_with_the_leaf_link_remedy(
    healthy: Hub,
) -> None:
    config = healthy.config.model_copy(
        update={
            "federation": healthy.config.federation.model_copy(
                update={"state": "sh", "peers": ["by"]}
            )
        }
    )
    checks = await diagnose(config)
    peer = row(checks, "peer by")
    assert peer.status == "fail"
    assert "does not answer" in peer.detail
    assert "leaf" in peer.remedy


async def test_a_linked_federation_peer_passes(tmp_path: Path) -> None:
    from tests.integration.test_federation_hubs import _state_config
    from tests.routing.test_federation import free_port

    leaf_port = free_port()
    sh = _state_config(tmp_path, "sh", "by", leaf_listen_port=leaf_port)
    by = _state_config(tmp_path, "by", "sh", leaf_remotes=[f"nats-leaf://127.0.0.1:{leaf_port}"])
    async with Hub(sh), Hub(by):

        async def peer_row() -> Check | None:
            found = row(await diagnose(sh), "peer by")
            return found if found.status == "ok" else None

        peer = await eventually(peer_row)
    assert "table mirrored" in peer.detail
