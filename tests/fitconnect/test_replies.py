"""The reply path of a FIT-Connect case (Rückkanal FIT-Connect): when the sender's metadata
offers ``replyChannel.fitConnect`` with its public key, a back end's answer goes back as a
reply in the same case, encrypted for that key and sent through the reply resources; the
sender fetches and decrypts it and answers accept-reply or reject-reply. Sent once however
often the answer worker tries; without the FIT-Connect channel the answer is only recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from lxml import etree

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.adapters.fitconnect import (
    ACCEPT_REPLY,
    ACCEPT_SUBMISSION,
    REJECT_REPLY,
    SUBMIT_REPLY,
    SUBMIT_SUBMISSION,
    FitConnectClient,
    FitConnectPermanentError,
    MetadataRejected,
    MetadataValidator,
    OutgoingAttachment,
    ReplyRefused,
    build_metadata,
    load_key,
    read_event,
    receive_reply,
    reply_encryption_key,
    security_event,
    send_reply,
)
from poststelle.adapters.fitconnect.adapter import (
    REPLY_ACCEPTED_HOP,
    REPLY_REJECTED_HOP,
    FitConnectAdapter,
    FitConnectSettings,
)
from poststelle.adapters.fitconnect.simulator import (
    FaultRule,
    FitConnectSimulator,
    SimulatedDestination,
)
from poststelle.adapters.testing import RecordingPublisher
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.replies import Answer
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.fitconnect.conftest import (
    SERVICE,
    XBAU_SCHEMA_URI,
    DestinationKeys,
    adapter_settings,
    connection,
    delivered,
    fitconnect_reply_channel,
    send_xbau,
    with_destination,
)
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

STATUS = {"kind": "status", "vorgang": "BA-2026-00417", "antrag_vollstaendig": True}


async def _answered(hub: Hub, case_id: str) -> list[Any] | None:
    assert hub.audit is not None
    entries = await hub.audit.read(case_id)
    answered = [e for e in entries if e.hop == "answered"]
    return answered or None


async def _hop(hub: Hub, case_id: str, hop: str) -> list[Any] | None:
    assert hub.audit is not None
    found = [e for e in await hub.audit.read(case_id) if e.hop == hop]
    return found or None


def _portal(sim: FitConnectSimulator, keys: DestinationKeys) -> FitConnectClient:
    """The sender (an online service) with the signature key its SETs verify with."""
    credentials = sim.add_client("sender", signature_key=keys.signature.public)
    return FitConnectClient(connection(sim, credentials))


def _service_keys(sim: FitConnectSimulator) -> dict[str, Any]:
    return {sim.signing_key.kid: load_key(sim.signing_key.public, private=False, purpose="service")}


async def _send(
    sender: FitConnectClient, destination: SimulatedDestination, reply_channel: dict[str, Any]
) -> tuple[str, str]:
    body, nachrichten_uuid = xbau_antrag()
    sent = await send_xbau(sender, destination, body, reply_channel=reply_channel)
    return sent.case_id, nachrichten_uuid


def _status_answer(
    fit_case: str, reply_channel: dict[str, Any], content: bytes = b'{"state": "in-pruefung"}'
) -> Answer:
    """A back end's status answer to the case ``fit_case`` whose sender offered
    ``reply_channel``."""
    return Answer(
        case_id="hub-case",
        kind="status",
        content=content,
        content_type="application/json",
        reply_route={
            "submission_id": "9a4c2e1f-0b3d-4f5a-8e7c-6d1b2a3c4e5f",
            "fitconnect_case_id": fit_case,
            "reply_channel": json.dumps(reply_channel),
        },
    )


async def _answer_through_the_hub(
    hub: Hub, status: dict[str, Any] = STATUS
) -> tuple[CaseEvent, Any]:
    [event] = await eventually(lambda: delivered(hub))
    async with httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http:
        response = await http.post(f"/v1/cases/{event.data.case_id}/events", json=status)
        assert response.status_code == 202, response.text
    [answered] = await eventually(lambda: _answered(hub, event.data.case_id))
    return event, answered


async def test_answer_is_a_reply_in_the_same_case_the_sender_decrypts_and_accepts(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
    metadata_schema: Path,
    corpus_dir: Path,
) -> None:
    xbau = etree.XMLSchema(
        etree.parse(str(corpus_dir / "xbau-2.6" / "xsd" / "xbau-nachrichten-baugenehmigung.xsd"))
    )
    config = with_destination(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    async with _portal(fc_sim, portal_keys) as portal, Hub(config) as hub:
        fit_case, nachrichten_uuid = await _send(
            portal, destination, fitconnect_reply_channel(portal_keys)
        )
        event, answered = await _answer_through_the_hub(hub)
        assert answered.detail["outcome"] == "sent"
        assert answered.detail["fitconnect_case_id"] == fit_case
        assert answered.detail["process_standards"] == ["urn:xoev-de:bmk:standard:xbau_2.6"]
        reply_id = answered.detail["fitconnect_reply_id"]
        # No submission to anyone: the answer is a reply in the case the sender opened.
        assert fc_sim.calls("announce") == 1

        [waiting] = await portal.list_replies(case_id=fit_case)
        assert (waiting["replyId"], waiting["caseId"]) == (reply_id, fit_case)
        assert waiting["destinationId"] == destination.destination_id
        received = await receive_reply(
            portal, reply_id, portal_keys.encryption.key, service_keys=_service_keys(fc_sim)
        )
        # The sender checks the reply's metadata as a destination checks a submission's.
        MetadataValidator(metadata_schema).parse(json.dumps(received.metadata).encode())
        assert received.metadata["contentStructure"]["data"]["submissionSchema"] == {
            "schemaUri": "http://www.xleitstelle.de/xbau/2/6",
            "mimeType": "application/xml",
        }
        assert received.data is not None
        quittung = etree.fromstring(received.data)
        # XBau in, XBau out: the formal check is an XBau 0201 about the message that came,
        # valid against the published XBau 2.6 schema.
        assert etree.QName(quittung).localname == "baugenehmigung.formellePruefung.0201"
        assert xbau.validate(quittung), [str(e) for e in xbau.error_log]
        reference = quittung.find(".//{*}bezugNachricht/{*}nachrichtenUUID")
        assert reference is not None and reference.text == nachrichten_uuid

        accept = security_event(
            ACCEPT_REPLY,
            issuer=portal.settings.client_id,
            reply_id=reply_id,
            case_id=fit_case,
            key=portal_keys.signature.key,
            tags=received.tags,
        )
        await portal.post_event(fit_case, accept)
        assert fc_sim.reply_state(reply_id) == "accepted"
        assert await portal.list_replies(case_id=fit_case) == []
        for_reply = await portal.reply_events(reply_id)
        # The hub reads the verdict back into the case's trail.
        [recorded] = await eventually(lambda: _hop(hub, event.data.case_id, REPLY_ACCEPTED_HOP))
    assert recorded.detail["fitconnect_reply_id"] == reply_id
    assert recorded.detail["issuer"] == portal.settings.client_id
    assert event.data.origin.reply_route["fitconnect_case_id"] == fit_case
    _check_log(fc_sim, fit_case, reply_id, received, for_reply, destination_keys, portal_keys)


def _check_log(
    fc_sim: FitConnectSimulator,
    fit_case: str,
    reply_id: str,
    received: Any,
    for_reply: list[str],
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
) -> None:
    # The case's whole log, each SET verified with the key of the one who wrote it.
    keys = {
        **_service_keys(fc_sim),
        destination_keys.signature.kid: load_key(
            destination_keys.signature.public, private=False, purpose="destination"
        ),
        portal_keys.signature.kid: load_key(
            portal_keys.signature.public, private=False, purpose="sender"
        ),
    }
    log = [read_event(token, keys) for token in fc_sim.event_log(fit_case)]
    assert [e.event for e in log] == [
        SUBMIT_SUBMISSION,
        ACCEPT_SUBMISSION,
        SUBMIT_REPLY,
        ACCEPT_REPLY,
    ]
    submitted, accepted = log[2], log[3]
    assert (submitted.reply_id, accepted.reply_id) == (reply_id, reply_id)
    assert submitted.submission_id == "" and submitted.case_id == fit_case
    # The sender confirms the very JWEs the destination encrypted and the service took.
    assert accepted.tags() == submitted.tags() == received.tags
    assert for_reply == [submitted.token, accepted.token]


async def test_a_reply_the_sender_cannot_open_is_rejected_and_recorded(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
    metadata_schema: Path,
) -> None:
    config = with_destination(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    async with _portal(fc_sim, portal_keys) as portal, Hub(config) as hub:
        fit_case, _ = await _send(portal, destination, fitconnect_reply_channel(portal_keys))
        event, answered = await _answer_through_the_hub(hub)
        reply_id = answered.detail["fitconnect_reply_id"]
        # The reply's data changes on its way to the sender.
        fc_sim.inject(FaultRule("tamper", operation="reply"))
        with pytest.raises(ReplyRefused) as refused:
            await receive_reply(
                portal, reply_id, portal_keys.encryption.key, service_keys=_service_keys(fc_sim)
            )
        [problem] = refused.value.problems
        assert (problem.type, problem.instance) == ("encryption-issue", "data")
        reject = security_event(
            REJECT_REPLY,
            issuer=portal.settings.client_id,
            reply_id=reply_id,
            case_id=fit_case,
            key=portal_keys.signature.key,
            problems=refused.value.problems,
        )
        await portal.post_event(fit_case, reject)
        # Answered once: a second verdict on the same reply is refused.
        with pytest.raises(FitConnectPermanentError) as again:
            await portal.post_event(fit_case, reject)
        assert again.value.status == 409
        [recorded] = await eventually(lambda: _hop(hub, event.data.case_id, REPLY_REJECTED_HOP))
    assert fc_sim.reply_state(reply_id) == "rejected"
    assert recorded.detail["fitconnect_reply_id"] == reply_id
    [noted] = recorded.detail["problems"]
    assert (noted["instance"], noted["type"].rsplit("/", 1)[-1]) == ("data", "encryption-issue")
    verifying = {
        portal_keys.signature.kid: load_key(
            portal_keys.signature.public, private=False, purpose="sender"
        )
    }
    [rejected] = [
        e
        for e in (_read_or_none(t, verifying) for t in fc_sim.event_log(fit_case))
        if e is not None
    ]
    assert (rejected.event, rejected.reply_id) == (REJECT_REPLY, reply_id)
    [reported] = rejected.problems
    assert reported["type"].endswith("/problems/encryption-issue")
    assert reported["instance"] == "data"


def _read_or_none(token: str, keys: dict[str, Any]) -> Any:
    try:
        return read_event(token, keys)
    except ValueError:
        return None


async def test_answer_without_a_fitconnect_reply_channel_is_recorded(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    await _send(sender, destination, {"eMail": {"address": "antragsteller@example.org"}})
    async with Hub(
        with_destination(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    ) as hub:
        _, answered = await _answer_through_the_hub(hub)
    assert answered.detail["outcome"] == "no-fitconnect-reply-channel"
    assert answered.detail["offered"] == ["eMail"]
    assert fc_sim.calls("announce") == 1  # the sender's submission
    assert fc_sim.calls("announce-reply") == 0 and fc_sim.replies() == []


class _Memo:
    def __init__(self) -> None:
        self.value: str | None = None

    async def recall(self) -> str | None:
        return self.value

    async def remember(self, transport_id: str) -> None:
        self.value = transport_id


async def test_a_reply_is_sent_once_however_many_attempts(
    tmp_path: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    fit_case, _ = await _send(sender, destination, fitconnect_reply_channel(portal_keys))
    settings = adapter_settings(fc_sim, destination, destination_keys, tmp_path, metadata_schema)
    adapter = FitConnectAdapter(
        name="fitconnect-amt",
        settings=FitConnectSettings.model_validate(settings),
        context=AdapterContext(data_dir=tmp_path, publish=RecordingPublisher()),
    )
    answer = _status_answer(fit_case, fitconnect_reply_channel(portal_keys))
    memo = _Memo()
    # The submit fails past the client's retries: the hub would try the answer again later.
    fc_sim.inject(FaultRule("status", operation="submit-reply", status=503, times=2))
    with pytest.raises(RetryableDeliveryError):
        await adapter.answer_once(answer, memo)
    assert memo.value is not None
    finished = await adapter.answer_once(answer, memo)
    again = await adapter.answer_once(answer, memo)
    await adapter.stop()
    assert finished["outcome"] == "sent"
    assert finished["fitconnect_reply_id"] == memo.value
    assert again["outcome"] == "already-sent"
    assert again["fitconnect_reply_id"] == memo.value
    assert fc_sim.calls("announce-reply") == 1
    [reply] = fc_sim.replies()
    assert (reply["replyId"], reply["caseId"], reply["state"]) == (
        memo.value,
        fit_case,
        "submitted",
    )


async def test_only_the_case_destination_replies_and_only_its_sender_reads(
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
    sender: FitConnectClient,
    subscriber: FitConnectClient,
) -> None:
    fit_case, _ = await _send(sender, destination, fitconnect_reply_channel(portal_keys))
    other = fc_sim.add_destination(
        destination_keys.encryption.public, destination_keys.signature.public
    )
    stranger_credentials = fc_sim.add_client("subscriber", (other.destination_id,))
    async with FitConnectClient(connection(fc_sim, stranger_credentials)) as stranger:
        with pytest.raises(FitConnectPermanentError) as refused:
            await stranger.announce_reply(fit_case, [])
        assert refused.value.status == 403
    key = load_key(portal_keys.encryption.public, private=False, purpose="reply")
    sent = await send_reply(
        subscriber, fit_case, key, service=SERVICE, data=b"{}", schema_uri="urn:test"
    )
    async with _portal(fc_sim, portal_keys) as another_sender:
        assert await another_sender.list_replies() == []
        with pytest.raises(FitConnectPermanentError) as hidden:
            await another_sender.reply(sent.reply_id)
        assert hidden.value.status == 403
    [waiting] = await sender.list_replies()
    assert waiting["replyId"] == sent.reply_id


def _metadata(reply_channel: dict[str, Any]) -> bytes:
    metadata = build_metadata(
        service=SERVICE,
        data=b"<x/>",
        schema_uri=XBAU_SCHEMA_URI,
        mime_type="application/xml",
        attachments=[],
        reply_channel=reply_channel,
    )
    return json.dumps(metadata).encode()


def test_metadata_1_0_0_leaves_the_fitconnect_channel_open_so_the_hub_checks_it(
    metadata_schema: Path, portal_keys: DestinationKeys
) -> None:
    invented = {"fitConnect": {"destinationId": "2a1c7e36-9d1f-4b0e-8a57-3f2d6c9b1e40"}}
    # The published 1.0.0 schema does not close replyChannel: any fitConnect object passes it.
    published = Draft202012Validator(json.loads(metadata_schema.read_text()))
    assert published.is_valid(json.loads(_metadata(invented)))
    validator = MetadataValidator(metadata_schema)
    offered = validator.parse(_metadata(fitconnect_reply_channel(portal_keys)))
    assert offered["replyChannel"]["fitConnect"]["encryptionPublicKey"]["kid"] == (
        portal_keys.encryption.kid
    )
    private = json.loads(portal_keys.encryption.private_json())
    weak = {**portal_keys.encryption.public, "n": portal_keys.encryption.public["n"][:342]}
    for channel, words in (
        (invented, "'processStandards' is a required property"),
        (
            {"fitConnect": {"processStandards": ["x"], "encryptionPublicKey": private}},
            "fails the schema's 'not'",
        ),
        (
            {"fitConnect": {"processStandards": ["x"], "encryptionPublicKey": weak}},
            "'minLength'",
        ),
        (
            {
                "fitConnect": {
                    "processStandards": [],
                    "encryptionPublicKey": portal_keys.encryption.public,
                }
            },
            "should be non-empty",
        ),
    ):
        with pytest.raises(MetadataRejected) as rejected:
            validator.parse(_metadata(channel))
        problems = rejected.value.problems
        assert {p.type for p in problems} == {"schema-violation"}
        assert all(p.detail.startswith("replyChannel/fitConnect") for p in problems), problems
        assert any(words in p.detail for p in problems), problems


async def test_the_watch_for_a_verdict_outlives_a_restart_and_records_it_once(
    tmp_path: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    portal_keys: DestinationKeys,
    metadata_schema: Path,
) -> None:
    settings = FitConnectSettings.model_validate(
        adapter_settings(fc_sim, destination, destination_keys, tmp_path, metadata_schema)
    )
    recorded: list[tuple[str, str, dict[str, Any]]] = []

    async def record_hop(case_id: str, hop: str, **detail: Any) -> None:
        recorded.append((case_id, hop, detail))

    def adapter() -> FitConnectAdapter:
        context = AdapterContext(
            data_dir=tmp_path, publish=RecordingPublisher(), extras={"record_hop": record_hop}
        )
        return FitConnectAdapter(name="fitconnect-amt", settings=settings, context=context)

    async with _portal(fc_sim, portal_keys) as portal:
        fit_case, _ = await _send(portal, destination, fitconnect_reply_channel(portal_keys))
        first = adapter()
        answer = _status_answer(fit_case, fitconnect_reply_channel(portal_keys))
        sent = await first.answer_once(answer, _Memo())
        await first.poll_once()  # no verdict yet: nothing to record
        await first.stop()
        assert recorded == []
        received = await receive_reply(
            portal,
            str(sent["fitconnect_reply_id"]),
            portal_keys.encryption.key,
            service_keys=_service_keys(fc_sim),
        )
        await portal.post_event(
            fit_case,
            security_event(
                ACCEPT_REPLY,
                issuer=portal.settings.client_id,
                reply_id=received.reply_id,
                case_id=fit_case,
                key=portal_keys.signature.key,
                tags=received.tags,
            ),
        )
    # A new process reads the replies still awaiting a verdict from the data folder.
    second = adapter()
    await second.poll_once()
    await second.poll_once()
    await second.stop()
    [(case_id, hop, detail)] = recorded
    assert (case_id, hop) == ("hub-case", REPLY_ACCEPTED_HOP)
    assert detail["fitconnect_reply_id"] == received.reply_id
    assert detail["fitconnect_case_id"] == fit_case


async def test_reply_resources_take_the_simulators_faults_as_the_submissions_do(
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    portal_keys: DestinationKeys,
    subscriber: FitConnectClient,
) -> None:
    async with _portal(fc_sim, portal_keys) as portal:
        fit_case, _ = await _send(portal, destination, fitconnect_reply_channel(portal_keys))
        bescheid = OutgoingAttachment(b"%PDF-1.7 Bescheid", filename="bescheid.pdf")
        # A token that expired early, a busy server, a slow one: the client gets through.
        fc_sim.inject(FaultRule("expire-token", operation="announce-reply"))
        fc_sim.inject(FaultRule("status", operation="upload-reply-attachment", status=503))
        fc_sim.inject(FaultRule("delay", operation="submit-reply", delay=0.2))
        fc_sim.inject(FaultRule("status", operation="list-replies", status=429))
        sent = await send_reply(
            subscriber,
            fit_case,
            reply_encryption_key(fitconnect_reply_channel(portal_keys)),
            service=SERVICE,
            data=b'{"state": "entschieden"}',
            schema_uri="urn:poststelle:case-status:1",
            attachments=[bescheid],
        )
        [waiting] = await portal.list_replies()
        assert waiting["replyId"] == sent.reply_id
        received = await receive_reply(
            portal, sent.reply_id, portal_keys.encryption.key, service_keys=_service_keys(fc_sim)
        )
        assert received.attachments == {bescheid.attachment_id: bescheid.content}
        assert received.tags == sent.tags
        # The attachment changes on its way: the sender finds out, names it, and rejects.
        fc_sim.inject(FaultRule("tamper", operation="reply-attachment"))
        with pytest.raises(ReplyRefused) as refused:
            await receive_reply(
                portal,
                sent.reply_id,
                portal_keys.encryption.key,
                service_keys=_service_keys(fc_sim),
            )
    [problem] = refused.value.problems
    assert (problem.type, problem.instance) == (
        "encryption-issue",
        f"attachment:{bescheid.attachment_id}",
    )
    assert fc_sim.calls("announce-reply") == 2  # 401, then with a fresh token
    assert fc_sim.calls("upload-reply-attachment") == 2  # 503, then again
    assert fc_sim.calls("list-replies") == 2
    assert [r["state"] for r in fc_sim.replies()] == ["submitted"]
    with pytest.raises(ValueError, match="reply-attachment"):
        FaultRule("tamper", operation="announce-reply")


async def test_an_answer_to_a_case_stored_with_the_old_reply_channel_fails_permanently(
    tmp_path: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    metadata_schema: Path,
) -> None:
    settings = adapter_settings(fc_sim, destination, destination_keys, tmp_path, metadata_schema)
    adapter = FitConnectAdapter(
        name="fitconnect-amt",
        settings=FitConnectSettings.model_validate(settings),
        context=AdapterContext(data_dir=tmp_path, publish=RecordingPublisher()),
    )
    old = {"fitConnect": {"destinationId": destination.destination_id}}
    answer = _status_answer("7d0f5a2e-4b1c-4e8a-9c3d-2f6b8a1e0c57", old, content=b"{}")
    with pytest.raises(PermanentDeliveryError, match="offers no encryptionPublicKey"):
        await adapter.answer(answer)
    await adapter.stop()
    assert fc_sim.calls("announce-reply") == 0
