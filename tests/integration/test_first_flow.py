"""The first complete path: portal → INBOX → routing core → CASES → file drop."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.streams.topology import CASES, INBOX
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


def delivered_file(hub: Hub, case_id: str) -> Path:
    return hub.workers[0].backend.folder / f"{case_id}.json"  # type: ignore[attr-defined, no-any-return]


async def test_submission_is_delivered_to_the_file_drop(hub: Hub, http: httpx.AsyncClient) -> None:
    body, nachrichten_uuid = xbau_antrag()
    response = await http.post("/v1/submissions", content=body, headers=XML)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["message_id"] == nachrichten_uuid
    target = delivered_file(hub, answer["case_id"])
    await eventually(target.exists)

    event = CaseEvent.model_validate_json(target.read_bytes())
    assert event.data.case_id == answer["case_id"]
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert event.data.message_type == "baugenehmigung.antrag.0200"
    assert (event.data.tenant, event.data.backend) == ("bauaufsicht-demo", "filedrop")
    assert event.data.origin.channel == "portal"
    assert event.data.original is not None and event.data.original.size == len(body)
    assert not list(target.parent.glob(".*.tmp")), "temporary files must be renamed away"

    assert hub.audit is not None
    hops = await eventually(lambda: _hops(hub, answer["case_id"], 3))
    assert hops == ["received", "routed", "delivered"]


async def _hops(hub: Hub, case_id: str, expected: int) -> list[str] | None:
    assert hub.audit is not None
    hops = [entry.hop for entry in await hub.audit.read(case_id)]
    return hops if len(hops) >= expected else None


async def test_same_message_twice_is_delivered_once(hub: Hub, http: httpx.AsyncClient) -> None:
    body, _ = xbau_antrag()
    first = await http.post("/v1/submissions", content=body, headers=XML)
    second = await http.post("/v1/submissions", content=body, headers=XML)
    assert first.status_code == second.status_code == 202
    assert first.json()["case_id"] == second.json()["case_id"]
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)

    await eventually(lambda: hub.counters.get("delivery.delivered") >= 1)
    # Give a wrongly duplicated event every chance to arrive before counting.
    await eventually(lambda: _consumers_idle(hub))
    assert hub.counters.get("delivery.delivered") == 1
    assert (await hub.js.stream_info(INBOX)).state.messages == 1
    assert (await hub.js.stream_info(CASES)).state.messages == 1
    hops = [e.hop for e in await hub.audit.read(first.json()["case_id"])]  # type: ignore[union-attr]
    assert hops.count("delivered") == 1


async def test_resent_message_with_changed_bytes_but_same_uuid_is_one_case(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    body, _ = xbau_antrag()
    again = body.rstrip() + b"\n<!-- sent again -->\n"
    assert again != body
    first = await http.post("/v1/submissions", content=body, headers=XML)
    second = await http.post("/v1/submissions", content=again, headers=XML)
    assert first.json()["case_id"] == second.json()["case_id"]
    assert second.json()["duplicate"] is True


async def _consumers_idle(hub: Hub) -> bool:
    report = await hub.health()
    return all(
        c.get("pending") == 0 and c.get("ack_pending") == 0 for c in report["consumers"].values()
    )


async def test_non_xml_body_is_quarantined_with_reason(hub: Hub, http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/submissions", content=b"this is not xml", headers=XML)
    assert response.status_code == 202
    case_id = response.json()["case_id"]
    items = await eventually(lambda: list_quarantined(hub.js))
    assert len(items) == 1
    assert (items[0].step, items[0].case_id) == ("parse", case_id)
    assert items[0].reason == "not-xml"
    assert items[0].detail
    assert hub.counters.get("core.quarantined") == 1
    assert hub.counters.get("delivery.delivered") == 0


async def test_unknown_message_type_is_quarantined(hub: Hub, http: httpx.AsyncClient) -> None:
    body = b'<?xml version="1.0"?><x:unbekannt xmlns:x="urn:example:nothing"/>'
    response = await http.post("/v1/submissions", content=body, headers=XML)
    assert response.status_code == 202
    items = await eventually(lambda: list_quarantined(hub.js))
    assert items[0].step == "identify"
    assert "urn:example:nothing" in items[0].detail


async def test_body_over_limit_gets_413_and_is_not_stored(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    limit = hub.config.http.max_body_bytes
    response = await http.post(
        "/v1/submissions", content=b"<a>" + b"x" * limit + b"</a>", headers=XML
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert (await hub.js.stream_info(INBOX)).state.messages == 0


async def test_wrong_media_type_is_a_problem_document(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/submissions", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 415
    problem = response.json()
    assert problem["title"] == "Unsupported media type"
    assert "application/json" in problem["detail"]


async def test_healthz_reports_nats_and_consumers(hub: Hub, http: httpx.AsyncClient) -> None:
    response = await eventually(lambda: _ok(http.get("/healthz")))
    report = response.json()
    assert report["nats"]["connected"] is True
    assert set(report["consumers"]) == {"router", "case_bauaufsicht-demo_filedrop"}
    assert all(c["present"] for c in report["consumers"].values())


async def _ok(request: object) -> httpx.Response | None:
    response: httpx.Response = await request  # type: ignore[misc]
    return response if response.status_code == 200 else None


def test_case_event_json_is_the_file_content(tmp_path: Path) -> None:
    # The file written is the event itself, parseable without Poststelle installed.
    from poststelle.adapters.filedrop import write_atomically

    target = tmp_path / "a" / "b.json"
    write_atomically(target, json.dumps({"k": 1}).encode())
    assert json.loads(target.read_text()) == {"k": 1}
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


async def test_broken_attachment_refs_from_an_intake_are_quarantined(hub: Hub) -> None:
    assert hub.intake is not None
    body, _ = xbau_antrag()
    accepted = await hub.intake.accept(
        body, channel="portal", adapter="broken", extra_headers={"Poststelle-Attachments": "[{"}
    )
    [parked] = await eventually(lambda: list_quarantined(hub.js))
    assert (parked.case_id, parked.step, parked.reason) == (
        accepted.case_id,
        "intake",
        "bad-attachment-refs",
    )
