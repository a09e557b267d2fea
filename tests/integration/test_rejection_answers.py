"""A back end's rejection of an XTA case reaches the sender as a valid XBau 1100 Rückweisung
that carries the rejected message, loaded from where the case record says it is kept."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from poststelle.adapters.xta.simulator import XtaMessage, XtaSimulator
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.caseregistry import load_case
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.streams.topology import INBOX, REPLIES
from tests.integration.conftest import eventually
from tests.integration.test_xta_inbound import _mailbox_settings
from tests.messages import xbau_antrag, xbau_antrag_with_files
from tests.xta.conftest import AMT, HUB

REJECTION = {
    "kind": "rejection",
    "vorgang": "BA-2026-00418",
    "errors": [{"code": "X001", "text": "Die Bauvorlagen sind unvollständig."}],
}


@pytest.fixture(scope="module")
def kernmodul_schema(corpus_dir: Path) -> etree.XMLSchema:
    xsd = corpus_dir / "xbau-2.6" / "xsd" / "xbau-kernmodul-prozessnachrichten.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


def _config(hub_config: HubConfig, sim: XtaSimulator, corpus_dir: Path) -> HubConfig:
    document = hub_config.model_dump(mode="json")
    document["backends"] = [
        {
            "tenant": "stadt-kiel",
            "name": "akte",
            "kind": "filedrop",
            "settings": {"reply_poll_interval": 0.05},
        }
    ]
    document["routes"] = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "akte"}]
    document["inbound"] = [
        {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
    ]
    return HubConfig.model_validate(document)


def _akte(hub: Hub) -> Any:
    return next(w.backend for w in hub.workers if w.backend.name == "akte")


def _cases(hub: Hub, count: int) -> dict[str, str] | None:
    """nachrichtenUUID -> case id of the cases delivered to the file drop so far."""
    folder: Path = _akte(hub).folder
    events = [CaseEvent.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]
    found = {e.data.nachrichten_uuid or "": e.data.case_id for e in events}
    return found if len(found) >= count else None


def _answers(sim: XtaSimulator, count: int) -> list[XtaMessage] | None:
    answers = sim.mailbox(AMT.value)
    return answers if len(answers) >= count else None


def _rejected_message(answer: XtaMessage) -> tuple[str, bytes]:
    """(idNachricht nachrichtenUUID, the embedded message) of an 1100."""
    root = etree.fromstring(answer.content)
    assert etree.QName(root).localname == "prozessnachrichten.rueckweisung.G2G.1100"
    ident = root.find("rueckweisungDaten/idNachricht/{*}nachrichtenUUID")
    nachricht = root.find("rueckweisungDaten/nachricht")
    assert ident is not None and ident.text and nachricht is not None and nachricht.text
    return ident.text, base64.b64decode(nachricht.text)


async def _states(hub: Hub, case_ids: list[str], state: str) -> list[str] | None:
    states = [(await load_case(hub.js, case_id) or {}).get("state") for case_id in case_ids]
    return [str(s) for s in states] if all(s == state for s in states) else None


async def _quarantined(hub: Hub, count: int) -> list[Any] | None:
    items = await list_quarantined(hub.js)
    return items if len(items) >= count else None


async def test_backend_rejection_reaches_the_xta_sender_by_http_file_and_nats(
    hub_config: HubConfig, corpus_dir: Path, kernmodul_schema: etree.XMLSchema
) -> None:
    bodies = dict(xbau_antrag()[::-1] for _ in range(3))  # nachrichtenUUID -> body
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        for body in bodies.values():
            sim.put(HUB.value, body, author=AMT)
        async with (
            Hub(_config(hub_config, sim, corpus_dir)) as hub,
            httpx.AsyncClient(base_url=hub.http_url) as http,
        ):
            cases = await eventually(lambda: _cases(hub, 3), within=30)
            by_http, by_file, by_nats = (cases[uuid] for uuid in bodies)
            response = await http.post(f"/v1/cases/{by_http}/events", json=REJECTION)
            assert response.status_code == 202, response.text
            inbox: Path = _akte(hub).inbox
            (inbox / "rueckweisung.json").write_text(json.dumps({"case_id": by_file, **REJECTION}))
            await hub.js.publish(
                "reply.stadt-kiel.akte.rejection",
                json.dumps(REJECTION).encode(),
                headers={"Poststelle-Case-Id": by_nats},
            )
            answers = await eventually(lambda: _answers(sim, 3), within=30)
            states = await eventually(lambda: _states(hub, list(cases.values()), "rejected"))
            parked = await list_quarantined(hub.js)

    embedded = {}
    for answer in answers:
        root = etree.fromstring(answer.content)
        assert kernmodul_schema.validate(root), kernmodul_schema.error_log
        assert answer.metadata.reader.value == AMT.value
        uuid, message = _rejected_message(answer)
        embedded[uuid] = message
        reason = root.find("rueckweisungDaten/rueckweisungsgrund/fehlertext")
        assert reason is not None and reason.text == "Die Bauvorlagen sind unvollständig."
    # Each answer carries its own rejected message, byte for byte (it has no attachments).
    assert embedded == bodies
    assert len(states) == 3
    assert parked == []
    assert (inbox / "done" / "rueckweisung.json").exists()


async def test_rejection_whose_original_is_gone_is_refused_over_http_and_parked_otherwise(
    hub_config: HubConfig, corpus_dir: Path
) -> None:
    body, _ = xbau_antrag()
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, body, author=AMT)
        async with (
            Hub(_config(hub_config, sim, corpus_dir)) as hub,
            httpx.AsyncClient(base_url=hub.http_url) as http,
        ):
            [case_id] = (await eventually(lambda: _cases(hub, 1), within=30)).values()
            record = await load_case(hub.js, case_id)
            assert record is not None
            ref = record["original"]["ref"]
            assert ref.startswith(f"stream:{INBOX}/")
            # What INBOX's max_age does after 30 days: the arrival is no longer there.
            await hub.js.delete_msg(INBOX, int(ref.rsplit("/", 1)[1]))
            refused = await http.post(f"/v1/cases/{case_id}/events", json=REJECTION)
            assert (await hub.js.stream_info(REPLIES)).state.messages == 0
            inbox: Path = _akte(hub).inbox
            (inbox / "rueckweisung.json").write_text(json.dumps({"case_id": case_id, **REJECTION}))
            await hub.js.publish(
                "reply.stadt-kiel.akte.rejection",
                json.dumps({**REJECTION, "reply_id": "ueber-nats"}).encode(),
                headers={"Poststelle-Case-Id": case_id},
            )
            parked = await eventually(lambda: _quarantined(hub, 2))
            answers = sim.mailbox(AMT.value)

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "no longer in INBOX" in refused.json()["detail"]
    assert {(p.step, p.reason, p.case_id) for p in parked} == {("reply", "cannot-answer", case_id)}
    assert all("no longer in INBOX" in p.detail for p in parked)
    assert answers == [], "no 1100 without the rejected message"


def _large_antrag() -> tuple[bytes, str, bytes]:
    plan = os.urandom(700_000)  # ~930 KiB of base64: the body is claim-checked
    body, nachrichten_uuid = xbau_antrag_with_files([("bauvorlage.pdf", plan)])
    return body, nachrichten_uuid, plan


def _assert_without_attachments(message: bytes, body: bytes, plan: bytes) -> None:
    """The 1100 carries the message "ohne Attachments" (XBau type Rueckweisung)."""
    digest = hashlib.sha256(plan).hexdigest()
    assert b"data:application/pdf" not in message
    assert f"urn:sha256:{digest}".encode() in message
    assert len(message) < 20_000 < len(body)


async def test_rejection_of_a_claim_checked_xta_case_carries_it_without_attachments(
    hub_config: HubConfig, corpus_dir: Path, kernmodul_schema: etree.XMLSchema
) -> None:
    body, nachrichten_uuid, plan = _large_antrag()
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, body, author=AMT)
        async with (
            Hub(_config(hub_config, sim, corpus_dir)) as hub,
            httpx.AsyncClient(base_url=hub.http_url) as http,
        ):
            [case_id] = (await eventually(lambda: _cases(hub, 1), within=30)).values()
            record = await load_case(hub.js, case_id)
            response = await http.post(f"/v1/cases/{case_id}/events", json=REJECTION)
            assert response.status_code == 202, response.text
            [answer] = await eventually(lambda: _answers(sim, 1), within=30)

    assert record is not None and record["original"]["ref"].startswith("attachments/messages/")
    assert kernmodul_schema.validate(etree.fromstring(answer.content)), kernmodul_schema.error_log
    uuid, message = _rejected_message(answer)
    assert uuid == nachrichten_uuid
    _assert_without_attachments(message, body, plan)


async def test_schema_invalid_claim_checked_xta_message_is_rejected_to_its_sender(
    hub_config: HubConfig, corpus_dir: Path, kernmodul_schema: etree.XMLSchema
) -> None:
    ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(
        corpus_dir / "xbau-2.6" / "xsd"
    )
    body, nachrichten_uuid, plan = _large_antrag()
    start = body.index(b"<referenzAntragsservice")
    end = body.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    invalid = body[:start] + body[end:]
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, invalid, author=AMT)
        async with Hub(_config(hub_config, sim, corpus_dir)) as hub:
            [answer] = await eventually(lambda: _answers(sim, 1), within=30)
            [parked] = await list_quarantined(hub.js)

    assert kernmodul_schema.validate(etree.fromstring(answer.content)), kernmodul_schema.error_log
    uuid, message = _rejected_message(answer)
    assert uuid == nachrichten_uuid
    _assert_without_attachments(message, invalid, plan)
    assert b"referenzAntragsservice" in answer.content  # the schema error names it
    assert parked.reason == "schema-invalid"
