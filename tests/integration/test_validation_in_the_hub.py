"""With the XBau schema set registered, the hub validates and quarantines precisely."""

from __future__ import annotations

from pathlib import Path

import httpx

from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


async def test_schema_invalid_message_is_quarantined_with_errors(
    hub_config: HubConfig, corpus_dir: Path
) -> None:
    ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(
        corpus_dir / "xbau-2.6" / "xsd"
    )
    valid, _ = xbau_antrag()
    invalid, _ = xbau_antrag()
    # A building application without its mandatory reference to the application service.
    start = invalid.index(b"<referenzAntragsservice")
    end = invalid.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    invalid = invalid[:start] + invalid[end:]

    async with Hub(hub_config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        good = (await http.post("/v1/submissions", content=valid, headers=XML)).json()
        bad = (await http.post("/v1/submissions", content=invalid, headers=XML)).json()
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
        await eventually(lambda: (folder / f"{good['case_id']}.json").exists())

    assert (parked.case_id, parked.step, parked.reason) == (
        bad["case_id"],
        "validate",
        "schema-invalid",
    )
    assert "line" in parked.detail and "referenzAntragsservice" in parked.detail
    assert not (folder / f"{bad['case_id']}.json").exists()
