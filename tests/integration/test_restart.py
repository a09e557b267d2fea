"""Stopping the hub mid-way loses nothing; starting it twice resets nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from poststelle.routing.hub.config import HubConfig, load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.streams.topology import CASES, INBOX, ensure_topology
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


def _delivered(config: HubConfig) -> set[str]:
    backend = config.backends[0]
    folder = config.data_dir / "outbox" / backend.tenant / backend.name
    return {path.stem for path in folder.glob("*.json")} if folder.exists() else set()


async def test_hub_restart_mid_way_loses_nothing(hub_config: HubConfig) -> None:
    case_ids: set[str] = set()
    async with Hub(hub_config) as first:
        # Park the core so arrivals pile up in INBOX, then stop the hub under them.
        assert first.core is not None
        first.core.stop()
        async with httpx.AsyncClient(base_url=first.http_url) as http:
            for _ in range(60):
                body, _ = xbau_antrag()
                response = await http.post("/v1/submissions", content=body, headers=XML)
                assert response.status_code == 202
                case_ids.add(response.json()["case_id"])
        assert (await first.js.stream_info(INBOX)).state.messages == 60
    assert not case_ids <= _delivered(hub_config)

    async with Hub(hub_config) as second:
        await eventually(lambda: _delivered(hub_config) >= case_ids, within=30)
        assert (await second.js.stream_info(CASES)).state.messages == 60
    assert _delivered(hub_config) == case_ids


async def test_embedded_server_restart_keeps_data(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"data_dir": tmp_path, "http.port": 0})
    async with Hub(config) as hub:
        assert hub.embedded is not None
        async with httpx.AsyncClient(base_url=hub.http_url) as http:
            body, _ = xbau_antrag()
            case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()[
                "case_id"
            ]
        await eventually(lambda: case_id in _delivered(config))
    async with Hub(config) as again:
        assert again.embedded is not None
        assert again.embedded.store_dir == tmp_path / "nats"
        assert (await again.js.stream_info(CASES)).state.messages == 1
        assert again.audit is not None
        hops = [entry.hop for entry in await again.audit.read(case_id)]
        assert hops == ["received", "routed", "delivered"]


async def test_topology_is_idempotent(hub: Hub) -> None:
    await hub.js.publish("inbox.test.keep", b"payload")
    await ensure_topology(hub.js)
    await ensure_topology(hub.js)
    info = await hub.js.stream_info(INBOX)
    assert info.state.messages >= 1
    assert info.config.duplicate_window == 24 * 3600
    names = {s.config.name for s in await hub.js.streams_info()}
    assert {"INBOX", "CASES", "REPLIES", "OUTBOX", "QUARANTINE", "DLQ", "AUDIT"} <= names
    assert {"KV_routes", "KV_cases", "OBJ_attachments"} <= names


async def test_consumer_keeps_its_place_after_server_restart(
    hub_config: HubConfig, fresh_nats: EmbeddedNatsServer
) -> None:
    async with Hub(hub_config) as hub:
        async with httpx.AsyncClient(base_url=hub.http_url) as http:
            body, _ = xbau_antrag()
            first = (await http.post("/v1/submissions", content=body, headers=XML)).json()
            await eventually(lambda: first["case_id"] in _delivered(hub_config))
            fresh_nats.stop()
            fresh_nats.start()
            await eventually(lambda: hub.nc is not None and hub.nc.is_connected, within=30)
            body, _ = xbau_antrag()
            second = await eventually(lambda: _submit(http, body), within=30)
            await eventually(lambda: second["case_id"] in _delivered(hub_config), within=30)
            # The file lands before the worker counts it.
            await eventually(lambda: hub.counters.get("delivery.delivered") >= 2)
        assert hub.counters.get("delivery.delivered") == 2


async def _submit(http: httpx.AsyncClient, body: bytes) -> dict[str, str] | None:
    response = await http.post("/v1/submissions", content=body, headers=XML)
    return response.json() if response.status_code == 202 else None
