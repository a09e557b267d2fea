"""The way back: a back end's decision reaches the origin in the origin's language."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.streams.topology import REPLIES
from tests.adapters.receiver import Receiver
from tests.integration.conftest import eventually
from tests.integration.test_xta_inbound import _mailbox_settings
from tests.messages import xbau_antrag, xbau_decision
from tests.xta.conftest import AMT, HUB

XML = {"Content-Type": "application/xml"}
DECISION = xbau_decision("bescheid-1")


@pytest.fixture(scope="module")
def baugenehmigung_schema(corpus_dir: Path) -> etree.XMLSchema:
    xsd = corpus_dir / "xbau-2.6" / "xsd" / "xbau-nachrichten-baugenehmigung.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


def _webhook_config(hub_config: HubConfig, receiver: Receiver, **extra: Any) -> HubConfig:
    document = hub_config.model_dump(mode="json")
    document["backends"] = [
        receiver.backend("stadt-kiel", "fachverfahren"),
        {
            "tenant": "stadt-kiel",
            "name": "akte",
            "kind": "filedrop",
            "settings": {"reply_poll_interval": 0.05},
        },
    ]
    document["routes"] = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "fachverfahren"}]
    document.update(extra)
    return HubConfig.model_validate(document)


async def test_xta_mailbox_to_webhook_decision_back_to_mailbox(
    hub_config: HubConfig,
    receiver: Receiver,
    corpus_dir: Path,
    baugenehmigung_schema: etree.XMLSchema,
) -> None:
    body, nachrichten_uuid = xbau_antrag()
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        xta_id = sim.put(HUB.value, body, author=AMT)
        inbound = [
            {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
        ]
        config = _webhook_config(hub_config, receiver, inbound=inbound)
        async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
            [(_, delivered)] = await eventually(lambda: list(receiver.received))
            event = CaseEvent.model_validate_json(delivered)
            # The message's identity, as on every channel; the XTA MessageID answers to.
            assert event.data.origin.source_message_id == nachrichten_uuid
            assert event.data.origin.reply_route["in_reply_to"] == xta_id
            response = await http.post(f"/v1/cases/{event.data.case_id}/events", json=DECISION)
            assert response.status_code == 202, response.text
            # The same reply again is recognised, not answered twice.
            again = await http.post(f"/v1/cases/{event.data.case_id}/events", json=DECISION)
            assert again.status_code == 202
            [answer] = await eventually(lambda: sim.mailbox(AMT.value), within=30)
            trail = await eventually(lambda: _hops_until(hub, event.data.case_id, "answered"))
            status = (await http.get(f"/v1/cases/{event.data.case_id}")).json()

    root = etree.fromstring(answer.content)
    assert etree.QName(root).localname == "baugenehmigung.bescheid.0205"
    assert baugenehmigung_schema.validate(root), baugenehmigung_schema.error_log
    reference = root.find("{*}bezug/bezugNachricht/{*}nachrichtenUUID")
    assert reference is not None and reference.text == nachrichten_uuid
    assert answer.metadata.author.value == HUB.value
    assert answer.metadata.reader.value == AMT.value
    assert xta_id in answer.metadata.in_reply_to
    answered = trail[-1]
    assert answered.detail["transport_status"] in {"GREEN", "YELLOW"}
    assert [e.hop for e in trail].count("answer-queued") == 1
    assert status["state"] == "decided"


async def _hops_until(hub: Hub, case_id: str, hop: str) -> list[Any] | None:
    assert hub.audit is not None
    entries = await hub.audit.read(case_id)
    return entries if entries and entries[-1].hop == hop else None


async def test_portal_case_answered_through_reply_file_and_callback(
    hub_config: HubConfig, receiver: Receiver
) -> None:
    config = _webhook_config(
        hub_config,
        receiver,
        routes=[{"standard": "xbau", "tenant": "stadt-kiel", "backend": "akte"}],
        http={
            **hub_config.http.model_dump(mode="json"),
            "callback_url": receiver.url,
            "callback_secret": "s3cret",
        },
    )
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        body, _ = xbau_antrag()
        case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
        akte = hub.workers[1].backend
        await eventually(lambda: (akte.folder / f"{case_id}.json").exists())  # type: ignore[attr-defined]
        inbox = akte.inbox  # type: ignore[attr-defined]
        (inbox / "bescheid.json").write_text(json.dumps({"case_id": case_id, **DECISION}))
        (inbox / "kaputt.json").write_text("{not json")
        (inbox / "fremd.json").write_text(json.dumps({"case_id": "no-such-case", **DECISION}))
        [(_, callback)] = await eventually(lambda: list(receiver.received))
        status = (await http.get(f"/v1/cases/{case_id}")).json()
        await eventually(lambda: (inbox / "rejected" / "fremd.json.reason.txt").exists())
        unknown = await http.post("/v1/cases/no-such-case/events", json=DECISION)

    assert json.loads(callback)["kind"] == "decision"
    assert json.loads(callback)["case_id"] == case_id
    assert receiver.bad_signatures == 0
    assert status["state"] == "decided"
    assert status["last_reply"]["vorgang"] == "BA-2026-00417"
    assert (inbox / "done" / "bescheid.json").exists()
    assert "JSONDecodeError" in (inbox / "rejected" / "kaputt.json.reason.txt").read_text()
    assert "no-such-case" in (inbox / "rejected" / "fremd.json.reason.txt").read_text()
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


async def test_reply_the_origin_cannot_understand_is_quarantined(
    hub_config: HubConfig, receiver: Receiver
) -> None:
    config = _webhook_config(hub_config, receiver)
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        body, _ = xbau_antrag()
        case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
        await eventually(lambda: list(receiver.received))
        # Native reply path: a back end publishing to REPLIES itself, with a broken body.
        await hub.js.publish(
            "reply.stadt-kiel.fachverfahren.decision",
            b'{"kind": "verdict"}',
            headers={"Poststelle-Case-Id": case_id},
        )
        [parked] = await eventually(lambda: list_quarantined(hub.js))
    assert (parked.step, parked.reason, parked.case_id) == ("reply", "invalid-reply", case_id)


async def _rejected_over_xta(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path, invalid: bytes
) -> tuple[Any, Any, list[str]]:
    """Send a schema-invalid XBau message over XTA; the Rückweisung its sender got (validated
    against XBau's kernmodul schema), the parked arrival and the case's trail."""
    ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(
        corpus_dir / "xbau-2.6" / "xsd"
    )
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, invalid, author=AMT)
        inbound = [
            {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
        ]
        async with Hub(_webhook_config(hub_config, receiver, inbound=inbound)) as hub:
            [answer] = await eventually(lambda: sim.mailbox(AMT.value), within=30)
            [parked] = await list_quarantined(hub.js)
            assert hub.audit is not None
            trail = [e.hop for e in await hub.audit.read(parked.case_id)]
    schema = etree.XMLSchema(
        etree.parse(str(corpus_dir / "xbau-2.6/xsd/xbau-kernmodul-prozessnachrichten.xsd"))
    )
    assert schema.validate(etree.fromstring(answer.content)), schema.error_log
    return answer, parked, trail


async def test_schema_invalid_xta_message_is_rejected_to_its_sender(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path
) -> None:
    body, nachrichten_uuid = xbau_antrag()
    start = body.index(b"<referenzAntragsservice")
    end = body.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    invalid = body[:start] + body[end:]
    answer, parked, _ = await _rejected_over_xta(hub_config, receiver, corpus_dir, invalid)
    root = etree.fromstring(answer.content)
    assert etree.QName(root).localname == "prozessnachrichten.rueckweisung.G2G.1100"
    assert b"referenzAntragsservice" in answer.content
    assert nachrichten_uuid.encode() in answer.content
    assert parked.reason == "schema-invalid"
    assert receiver.received == []


async def test_rejection_quoting_text_outside_the_latin_set_is_sent_with_it_escaped(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path
) -> None:
    body, _ = xbau_antrag()
    # The applicant's name leaves DIN 91379's Latin set: the schema error quotes it, and the
    # 1100's fehlertext (din91379:datatypeC) cannot carry that quote as it is.
    invalid = body.replace(b"<name>Hansen</name>", "<name>Жданов</name>".encode())
    assert invalid != body
    answer, parked, trail = await _rejected_over_xta(hub_config, receiver, corpus_dir, invalid)
    assert parked.reason == "schema-invalid" and "Жданов" in parked.detail
    root = etree.fromstring(answer.content)
    texts = [t.text or "" for t in root.iter() if etree.QName(t).localname == "fehlertext"]
    assert any("U+0416U+0434U+0430U+043DU+043EU+0432" in text for text in texts), texts
    assert "answer-refused" not in trail


async def test_reply_an_xta_origin_cannot_take_is_refused_over_http_and_parked_otherwise(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path
) -> None:
    """A decision without its Bescheid document would be a schema-invalid XBau 0205: over
    HTTP the back end hears so at once (422); by file or NATS it is quarantined."""
    body, _ = xbau_antrag()
    no_bescheid = {**DECISION, "anlagen": [], "reply_id": "ohne-anlage"}
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, body, author=AMT)
        inbound = [
            {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
        ]
        routes = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "akte"}]
        config = _webhook_config(hub_config, receiver, inbound=inbound, routes=routes)
        async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
            akte = next(w.backend for w in hub.workers if w.backend.name == "akte")
            folder: Path = akte.folder  # type: ignore[attr-defined]
            [delivered] = await eventually(lambda: list(folder.glob("*.json")), within=20)
            case_id = CaseEvent.model_validate_json(delivered.read_bytes()).data.case_id
            path = f"/v1/cases/{case_id}/events"
            refused = await http.post(path, json=no_bescheid)
            receipt = await http.post(path, json={"kind": "receipt"})
            assert (await hub.js.stream_info(REPLIES)).state.messages == 0
            assert await list_quarantined(hub.js) == []

            inbox: Path = akte.inbox  # type: ignore[attr-defined]
            (inbox / "ohne-anlage.json").write_text(json.dumps({"case_id": case_id, **no_bescheid}))
            await hub.js.publish(
                "reply.stadt-kiel.akte.decision",
                json.dumps({**no_bescheid, "reply_id": "ueber-nats"}).encode(),
                headers={"Poststelle-Case-Id": case_id},
            )
            parked = await eventually(lambda: _quarantined(hub, 2))
            answers = sim.mailbox(AMT.value)

    for response, reason in [(refused, "at least one Anlage"), (receipt, "1180")]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert reason in response.json()["detail"]
    assert {(p.step, p.reason, p.case_id) for p in parked} == {("reply", "cannot-answer", case_id)}
    assert all("at least one Anlage" in p.detail for p in parked)
    assert (inbox / "done" / "ohne-anlage.json").exists(), "the file was taken, then parked"
    assert answers == [], "nothing unanswerable reached the sender"


async def _quarantined(hub: Hub, count: int) -> list[Any] | None:
    items = await list_quarantined(hub.js)
    return items if len(items) >= count else None
