"""A step of the routing core that fails for a reason of its own quarantines the message once,
under that step and reason, and never redelivers it in a loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.core import UNEXPECTED_REASON
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.streams.topology import INBOX, ROUTER_DURABLE
from tests.contracts.urlsets import url_importing_xbau, with_descriptor_catalog
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


async def _settled_once(hub: Hub) -> Any:
    """The router's consumer has acknowledged everything and redelivered nothing."""

    async def settled() -> bool:
        info = await hub.js.consumer_info(INBOX, ROUTER_DURABLE)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled)
    return await hub.js.consumer_info(INBOX, ROUTER_DURABLE)


async def test_a_broken_schema_set_quarantines_schema_unusable_without_redelivery(
    hub_config: HubConfig, corpus_dir: Path, tmp_path: Path
) -> None:
    folder = with_descriptor_catalog(url_importing_xbau(corpus_dir, tmp_path / "xbau-url"))
    stored = ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(folder)
    # The store loses the base schema the catalog points to: the set no longer compiles.
    (stored.folder / "base" / "xoev-code.xsd").unlink()
    body, _ = xbau_antrag()

    async with Hub(hub_config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        response = await http.post("/v1/submissions", content=body, headers=XML)
        assert response.status_code == 202
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        info = await _settled_once(hub)

    assert (parked.case_id, parked.step, parked.reason) == (
        response.json()["case_id"],
        "validate",
        "schema-unusable",
    )
    assert "http://xoev.de/schemata/code/1_0/xoev-code.xsd" in parked.detail
    assert info.num_redelivered == 0
    assert info.delivered.consumer_seq == 1  # handed to the router exactly once


async def test_an_unforeseen_failure_in_a_step_quarantines_with_that_step(
    hub_config: HubConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: MessageInspector, raw: bytes, **kwargs: Any) -> Any:
        raise RuntimeError("inspector bug")

    monkeypatch.setattr(MessageInspector, "inspect", broken)
    body, _ = xbau_antrag()

    async with Hub(hub_config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        response = await http.post("/v1/submissions", content=body, headers=XML)
        assert response.status_code == 202
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        info = await _settled_once(hub)

    assert (parked.case_id, parked.step, parked.reason) == (
        response.json()["case_id"],
        "inspect",
        UNEXPECTED_REASON,
    )
    assert parked.detail == "RuntimeError: inspector bug"
    assert info.num_redelivered == 0
    assert info.delivered.consumer_seq == 1
