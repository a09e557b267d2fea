"""The hub routes on the imported table: AGS-level messages, hot reload, unroutable replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from poststelle.contracts.events import CaseEvent
from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined, replay_quarantined
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}
KIEL_ONLY = """\
tenants:
  kiel: {name: Landeshauptstadt Kiel, backends: [bauakte]}
  luebeck: {name: Hansestadt Lübeck, backends: [bauakte]}
rules:
  - {ars: "010020000000", standard: xbau, tenant: kiel, backend: bauakte}
"""
WITH_LUEBECK = (
    KIEL_ONLY
    + """\
  - {ars: "010030000000", standard: xbau, tenant: luebeck, backend: bauakte}
"""
)


def _config(hub_config: HubConfig) -> HubConfig:
    document = hub_config.model_dump(mode="json")
    document["backends"] = [
        {"tenant": "kiel", "name": "bauakte"},
        {"tenant": "luebeck", "name": "bauakte"},
    ]
    document["routes"] = []  # the table alone decides
    return HubConfig.model_validate(document)


def _in_luebeck(body: bytes) -> bytes:
    # The building site moves from Kiel (AGS 01002000) to Lübeck (AGS 01003000).
    return body.replace(b"<code>01002000</code>", b"<code>01003000</code>")


def _import(config: HubConfig, tmp_path: Path, text: str) -> int:
    table = tmp_path / "routes.yaml"
    table.write_text(text)
    common = ["--nats-url", str(config.nats.url), "--data-dir", str(config.data_dir)]
    return poststelle(["routes", "import", str(table), *common])


async def test_table_routes_by_ags_reloads_hot_and_replays_unroutable(
    hub_config: HubConfig, tmp_path: Path
) -> None:
    config = _config(hub_config)
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        assert await asyncio.to_thread(_import, config, tmp_path, KIEL_ONLY) == 0
        await eventually(lambda: hub.route_watcher and hub.route_watcher.resolver)
        kiel_body, _ = xbau_antrag()
        luebeck_body, _ = xbau_antrag()
        luebeck_body = _in_luebeck(luebeck_body)
        kiel = (await http.post("/v1/submissions", content=kiel_body, headers=XML)).json()
        luebeck = (await http.post("/v1/submissions", content=luebeck_body, headers=XML)).json()

        kiel_folder, luebeck_folder = (w.backend.folder for w in hub.workers)  # type: ignore[attr-defined]
        await eventually(lambda: (kiel_folder / f"{kiel['case_id']}.json").exists())
        [parked] = await eventually(lambda: list_quarantined(hub.js, reason="unroutable"))
        assert parked.case_id == luebeck["case_id"]
        assert "01003" in parked.detail

        before = hub.route_watcher.pointer  # type: ignore[union-attr]
        assert await asyncio.to_thread(_import, config, tmp_path, WITH_LUEBECK) == 0
        # How fast is bench_routing.py's business (hot reload < 2 s); here only that it happens.
        await eventually(lambda: hub.route_watcher.pointer != before)  # type: ignore[union-attr]
        routes = (await http.get("/healthz")).json()["routes"]
        assert (routes["source"], routes["rules"], routes["last_error"]) == ("table", 2, None)
        result = await replay_quarantined(hub.js, reason="unroutable")
        assert result.replayed == [parked.sequence]
        target = luebeck_folder / f"{luebeck['case_id']}.json"
        await eventually(target.exists)

    event = CaseEvent.model_validate_json(target.read_bytes())
    assert (event.data.tenant, event.data.backend) == ("luebeck", "bauakte")
    assert event.data.case_id == luebeck["case_id"]
    kiel_event = CaseEvent.model_validate_json(
        (kiel_folder / f"{kiel['case_id']}.json").read_bytes()
    )
    assert kiel_event.data.tenant == "kiel"
