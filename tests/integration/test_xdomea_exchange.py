"""xdomea 3.0.0 Aussonderung end to end on a real nats-server: the corpus's 0501 and 0503 come
from an authority's XTA mailbox, reach the archive's back end, and the archive's answers
(0504, 0507, 0506) travel back through the hub to the authority's mailbox, schema-valid. An
xdomea 2.4.0 answer its schema refuses (a Hinweis outside the Latin set) is never sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from poststelle.adapters.xta._model import PartyId, XtaMessage
from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.registry import ContractRegistry
from poststelle.contracts.replies import CaseReply
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.adapters.receiver import Receiver
from tests.integration.conftest import eventually
from tests.integration.test_xta_inbound import _mailbox_settings
from tests.xta.conftest import HUB

BEHOERDE = PartyId("dvdv:behoerde-aussondernd", name="Aussondernde Behörde")
SERVICE = "urn:xoev-de:xdomea:schema:3.0.0"
NS = {"x": "urn:xoev-de:xdomea:schema:3.0.0"}
SGO = "cbdbfccc-72e5-44b2-9e71-937e6f4f8ce9"


@pytest.fixture(scope="module")
def xdomea_schema(corpus_dir: Path) -> etree.XMLSchema:
    xsd = corpus_dir / "xdomea" / "schemes" / "xdomea_3.0.0" / "xdomea.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


def _corpus(corpus_dir: Path, message: str) -> bytes:
    return (corpus_dir / "xdomea" / "messages" / "xdomea_3.0.0" / f"xx_{message}.xml").read_bytes()


def _from_behoerde(sim: XtaSimulator, corpus_dir: Path, message: str) -> str:
    """The published example ``message`` in the hub's mailbox, sent by the Behörde."""
    return sim.put(HUB.value, _corpus(corpus_dir, message), author=BEHOERDE, service=SERVICE)


def _config(
    hub_config: HubConfig, receiver: Receiver, sim: XtaSimulator, corpus: Path
) -> HubConfig:
    # The arrivals are validated against the published xdomea schemas on the way in.
    ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(corpus / "xdomea" / "schemes")
    document = hub_config.model_dump(mode="json")
    document["backends"] = [receiver.backend("landesarchiv", "archiv")]
    document["routes"] = [{"standard": "xdomea", "tenant": "landesarchiv", "backend": "archiv"}]
    document["inbound"] = [
        {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus)}
    ]
    return HubConfig.model_validate(document)


async def _case_of(receiver: Receiver, message_type: str) -> CaseEvent:
    async def delivered() -> CaseEvent | None:
        for _, body in list(receiver.received):
            event = CaseEvent.model_validate_json(body)
            if event.data.message_type == message_type:
                return event
        return None

    result: CaseEvent = await eventually(delivered)
    return result


def _answers(sim: XtaSimulator, code: str) -> list[XtaMessage]:
    return [m for m in sim.mailbox(BEHOERDE.value) if m.metadata.message_type.code.endswith(code)]


def _check(answer: XtaMessage, schema: etree.XMLSchema, code: str, xta_id: str) -> Any:
    root = etree.fromstring(answer.content)
    assert schema.validate(root), schema.error_log
    assert root.findtext("x:Kopf/x:Nachrichtentyp/code", namespaces=NS) == code
    assert root.findtext("x:Kopf/x:ProzessID", namespaces=NS) == (
        "242f44e8-bebf-4503-a086-db252c6a4277"  # the Aussonderung's, as in 0501 and 0503
    )
    # Back the way the message came: from the hub's mailbox to the authority that sent it.
    assert answer.metadata.author.value == HUB.value
    assert answer.metadata.reader.value == BEHOERDE.value
    assert answer.metadata.service == SERVICE
    assert answer.metadata.message_type.payload_schema == SERVICE
    assert xta_id in answer.metadata.in_reply_to
    return root


async def test_0501_offer_is_confirmed_with_0504(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path, xdomea_schema: etree.XMLSchema
) -> None:
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.offer(BEHOERDE.value, SERVICE)  # lookupService before the answer says yes
        xta_id = _from_behoerde(sim, corpus_dir, "Aussonderung.Anbieteverzeichnis.0501")
        config = _config(hub_config, receiver, sim, corpus_dir)
        async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
            event = await _case_of(receiver, "Aussonderung.Anbieteverzeichnis.0501")
            case_id = event.data.case_id
            assert event.data.fields["prozess_id"] == "242f44e8-bebf-4503-a086-db252c6a4277"
            # xdomea has no decision about an offer (that is the 0502): refused at once.
            wrong = await http.post(f"/v1/cases/{case_id}/events", json={"kind": "decision"})
            receipt = {"kind": "receipt", "information": ["Anbietung erhalten."], "reply_id": "r1"}
            accepted = await http.post(f"/v1/cases/{case_id}/events", json=receipt)
            [answer] = await eventually(lambda: _answers(sim, ".0504"), within=30)
            status = await eventually(lambda: _state(http, case_id, "acknowledged"))
            assert sim.calls("lookupService") >= 1

    assert wrong.status_code == 422, wrong.text
    assert "no decision answer to a 0501" in wrong.text
    assert accepted.status_code == 202, accepted.text
    assert answer.metadata.message_type.code == "Aussonderung.AnbietungEmpfangBestaetigen.0504"
    root = _check(answer, xdomea_schema, "0504", xta_id)
    assert root.findtext("x:Kopf/x:Hinweis", namespaces=NS) == "Anbietung erhalten."
    # The 0501's Empfaenger (the archive) writes, its Absender reads.
    assert root.findtext("x:Kopf/x:Absender/x:Institution/x:Name", namespaces=NS) == (
        "EmpXdomeaInstitutionName"
    )
    assert root.findtext("x:Kopf/x:Empfaenger/x:Institution/x:Name", namespaces=NS) == (
        "AbsXdomeaInstitutionName"
    )
    assert status["last_reply"]["kind"] == "receipt"


async def _state(http: httpx.AsyncClient, case_id: str, state: str) -> dict[str, Any] | None:
    status: dict[str, Any] = (await http.get(f"/v1/cases/{case_id}")).json()
    return status if status.get("state") == state else None


async def test_0503_records_are_confirmed_with_0507_and_0506(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path, xdomea_schema: etree.XMLSchema
) -> None:
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(BEHOERDE.value)
        xta_id = _from_behoerde(sim, corpus_dir, "Aussonderung.Aussonderung.0503")
        config = _config(hub_config, receiver, sim, corpus_dir)
        async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
            event = await _case_of(receiver, "Aussonderung.Aussonderung.0503")
            case_id = event.data.case_id
            # Native reply path: the archive publishes to REPLIES itself; a 0506 without its
            # objects cannot be built and is quarantined with the reason.
            await hub.js.publish(
                "reply.landesarchiv.archiv.decision",
                b'{"kind": "decision"}',
                headers={"Poststelle-Case-Id": case_id},
            )
            [parked] = await eventually(lambda: list_quarantined(hub.js))
            receipt = await http.post(f"/v1/cases/{case_id}/events", json={"kind": "receipt"})
            [received] = await eventually(lambda: _answers(sim, ".0507"), within=30)
            imported = {
                "kind": "decision",
                "schriftgutobjekte": [
                    {"id": SGO, "erfolgreich": True, "archivkennung": "LATh 5-12/2026"}
                ],
            }
            decision = await http.post(f"/v1/cases/{case_id}/events", json=imported)
            [report] = await eventually(lambda: _answers(sim, ".0506"), within=30)
            status = await eventually(lambda: _state(http, case_id, "decided"))

    assert (parked.step, parked.reason, parked.case_id) == ("reply", "cannot-answer", case_id)
    assert "schriftgutobjekte is required" in parked.detail
    assert receipt.status_code == 202 and decision.status_code == 202
    _check(received, xdomea_schema, "0507", xta_id)
    root = _check(report, xdomea_schema, "0506", xta_id)
    [sgo] = root.findall("x:AusgesondertesSGO", namespaces=NS)
    assert sgo.findtext("x:IDSGO", namespaces=NS) == SGO
    assert sgo.findtext("x:Erfolgreich", namespaces=NS) == "true"
    assert sgo.findtext("x:Archivkennung", namespaces=NS) == "LATh 5-12/2026"
    assert status["last_reply"]["schriftgutobjekte"][0]["id"] == SGO


SERVICE_240 = "urn:xoev-de:xdomea:schema:2.4.0"
NS_240 = {"x": SERVICE_240}
# xdomea 2.4.0 types the Kopf's Hinweis as xoev-lc:String.Latin: Cyrillic is outside that set.
OUTSIDE_LATIN = "Anbietung erhalten, Bearbeiter: Жданов"


async def test_240_answer_its_schema_refuses_is_never_sent(
    hub_config: HubConfig, receiver: Receiver, corpus_dir: Path
) -> None:
    schema = etree.XMLSchema(
        etree.parse(
            str(
                corpus_dir
                / "xdomea"
                / "schemes"
                / "xdomea_2.4.0"
                / "xdomea-Nachrichten-AussonderungDurchfuehren.xsd"
            )
        )
    )
    offer = (
        corpus_dir
        / "xdomea"
        / "messages"
        / "xdomea_2.4.0"
        / "xx_Aussonderung.Anbieteverzeichnis.0501.xml"
    ).read_bytes()
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.offer(BEHOERDE.value, SERVICE_240)
        xta_id = sim.put(HUB.value, offer, author=BEHOERDE, service=SERVICE_240)
        config = _config(hub_config, receiver, sim, corpus_dir)
        async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
            event = await _case_of(receiver, "Aussonderung.Anbieteverzeichnis.0501")
            case_id = event.data.case_id
            bad = {"kind": "receipt", "information": [OUTSIDE_LATIN], "reply_id": "bad"}
            refused = await http.post(f"/v1/cases/{case_id}/events", json=bad)
            # A back end that publishes to REPLIES itself cannot be told: the reply is parked.
            await hub.js.publish(
                "reply.landesarchiv.archiv.receipt",
                CaseReply.model_validate(bad).model_dump_json().encode(),
                headers={"Poststelle-Case-Id": case_id},
            )
            [parked] = await eventually(lambda: list_quarantined(hub.js))
            state_after_refusal = (await http.get(f"/v1/cases/{case_id}")).json()["state"]
            good = {"kind": "receipt", "information": ["Anbietung erhalten."], "reply_id": "ok"}
            accepted = await http.post(f"/v1/cases/{case_id}/events", json=good)
            [answer] = await eventually(lambda: _answers(sim, ".0504"), within=30)
            await eventually(lambda: _state(http, case_id, "acknowledged"))
            assert hub.audit is not None
            trail = [entry.hop for entry in await hub.audit.read(case_id)]

    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["reason"] == "answer-schema-invalid"
    assert "Aussonderung.AnbietungEmpfangBestaetigen.0504" in problem["detail"]
    [error] = problem["errors"]
    assert "Hinweis" in error["message"] and "pattern" in error["message"]
    assert isinstance(error["line"], int) and error["line"] > 1
    assert "Hinweis" in error["path"]
    assert (parked.step, parked.reason, parked.case_id) == (
        "reply",
        "answer-schema-invalid",
        case_id,
    )
    assert "Hinweis" in parked.detail and f"line {error['line']}" in parked.detail
    assert state_after_refusal == "delivered"  # not answered: still where delivery left it
    assert "reply-quarantined" in trail
    # Only the valid answer reached the authority, valid against the published 2.4.0 schema.
    assert accepted.status_code == 202, accepted.text
    root = etree.fromstring(answer.content)
    assert schema.validate(root), schema.error_log
    assert root.findtext("x:Kopf/x:Hinweis", namespaces=NS_240) == "Anbietung erhalten."
    assert answer.metadata.reader.value == BEHOERDE.value
    assert xta_id in answer.metadata.in_reply_to
