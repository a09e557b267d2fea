"""What ``GET /v1/cases/{id}`` and a repeated submission say about a case's state."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from poststelle.routing.hub.caseregistry import load_case, update_case
from poststelle.routing.hub.runtime import Hub
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}
STATUS = {"kind": "status", "vorgang": "BA-2026-00417", "antrag_vollstaendig": True}


async def _case(http: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/cases/{case_id}")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_a_delivered_case_says_delivered_and_a_reply_keeps_the_time(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    body, _ = xbau_antrag()
    case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
    await eventually(lambda: hub.counters.get("delivery.delivered") == 1)

    async def delivered() -> dict[str, Any] | None:
        case = await _case(http, case_id)
        return case if case["state"] == "delivered" else None

    case = await eventually(delivered)
    assert case["delivered_at"]
    reply = await http.post(f"/v1/cases/{case_id}/events", json=STATUS)
    assert reply.status_code == 202

    async def reviewed() -> dict[str, Any] | None:
        later = await _case(http, case_id)
        return later if later["state"] == "in-review" else None

    later = await eventually(reviewed)
    assert later["delivered_at"] == case["delivered_at"]
    assert later["last_reply"]["vorgang"] == "BA-2026-00417"


async def test_concurrent_case_updates_all_survive(hub: Hub, http: httpx.AsyncClient) -> None:
    body, _ = xbau_antrag()
    case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
    # After the delivery worker's own update, so that only these updates compete.
    await eventually(lambda: hub.counters.get("delivery.delivered") == 1)
    await eventually(lambda: _state(hub, case_id, "delivered"))

    def mark(name: str) -> Any:
        def change(record: dict[str, Any]) -> bool:
            record.setdefault("marks", []).append(name)
            return True

        return change

    await asyncio.gather(*(update_case(hub.js, case_id, mark(f"m{n}")) for n in range(5)))
    record = await load_case(hub.js, case_id)
    assert record is not None
    assert sorted(record["marks"]) == [f"m{n}" for n in range(5)]
    assert record["state"] == "delivered"


async def _state(hub: Hub, case_id: str, state: str) -> bool:
    record = await load_case(hub.js, case_id)
    return record is not None and record["state"] == state
