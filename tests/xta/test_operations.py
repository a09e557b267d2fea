"""lookupService, cancelMessage, getNextStatusList and sendMessageSync: client against the
simulator over real HTTP, faults included (the simulator validates every request against the
official XSDs)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from poststelle.adapters.xta._errors import (
    XtaCancelDenied,
    XtaInvalidMessageId,
    XtaParameterInvalid,
    XtaPermissionDenied,
    XtaSyncAsyncMismatch,
)
from poststelle.adapters.xta._model import (
    PartyId,
    ServiceParameter,
    TransportStatus,
    XtaMessage,
)
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, XBAU, bescheid

CERT = ServiceParameter("Zertifikat", b"-----BEGIN CERTIFICATE-----\r\nMIIB\r\n")


# -- lookupService -------------------------------------------------------------------------------


def test_lookup_answers_each_query_in_order(client: XtaClient, simulator: XtaSimulator) -> None:
    simulator.offer(AMT.value, XBAU, (CERT,))
    simulator.create_mailbox("dvdv:ohne-verzeichnis")
    results = client.lookup_service(
        HUB,
        [
            (AMT, XBAU),
            (AMT, "urn:xoev-de:xdomea"),
            (PartyId("dvdv:ohne-verzeichnis"), XBAU),
            (PartyId("dvdv:nowhere"), XBAU),
        ],
    )
    assert [(r.reader.value, r.service, r.available) for r in results] == [
        (AMT.value, XBAU, True),
        # False is the value zeep alone drops (a choice with a falsy value): read from the wire.
        (AMT.value, "urn:xoev-de:xdomea", False),
        ("dvdv:ohne-verzeichnis", XBAU, None),
        ("dvdv:nowhere", XBAU, False),
    ]
    assert results[0].parameters == (CERT,)
    assert results[1].parameters == ()


def test_is_service_available(client: XtaClient, simulator: XtaSimulator) -> None:
    simulator.offer(AMT.value, XBAU)
    assert client.is_service_available(HUB, AMT, XBAU) is True
    assert client.is_service_available(HUB, AMT, "urn:other") is False
    assert client.is_service_available(HUB, HUB, XBAU) is None


def test_lookup_faults(client: XtaClient) -> None:
    with pytest.raises(XtaPermissionDenied) as denied:
        client.lookup_service(PartyId("dvdv:unknown"), [(AMT, XBAU)])
    assert denied.value.code == "9012"
    with pytest.raises(ValueError, match="at least one"):
        client.lookup_service(HUB, [])


# -- cancelMessage -------------------------------------------------------------------------------


def test_cancel_withdraws_a_held_message(client: XtaClient, simulator: XtaSimulator) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    message_id = client.create_message_id(HUB)
    client.send_message(bescheid(message_id, not_before=later))
    [held] = simulator.held()
    assert held.metadata.not_before is not None
    assert abs(held.metadata.not_before - later) < timedelta(seconds=1)
    assert simulator.mailbox(AMT.value) == []
    assert client.get_transport_report(HUB, message_id).status is TransportStatus.OPEN

    client.cancel_message(HUB, message_id)
    client.cancel_message(HUB, message_id)  # a repeat (first answer lost) is harmless
    assert simulator.held() == [] and simulator.mailbox(AMT.value) == []
    report = client.get_transport_report(HUB, message_id)
    assert report.status is TransportStatus.RED
    assert report.errors[0].code == "cancelled"


def test_held_message_arrives_when_due(client: XtaClient, simulator: XtaSimulator) -> None:
    message_id = client.create_message_id(HUB)
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    client.send_message(bescheid(message_id, not_before=soon))
    assert [e.message_id for e in client.get_status_list(AMT).entries] == []
    time.sleep(0.4)
    assert [e.message_id for e in client.get_status_list(AMT).entries] == [message_id]
    with pytest.raises(XtaCancelDenied) as denied:
        client.cancel_message(HUB, message_id)
    assert denied.value.exception == "CancelDeniedException"


def test_cancel_faults(client: XtaClient, simulator: XtaSimulator) -> None:
    message_id = client.create_message_id(HUB)
    client.send_message(bescheid(message_id))  # no NotBefore: delivered at once
    with pytest.raises(XtaCancelDenied):
        client.cancel_message(HUB, message_id)
    assert len(simulator.mailbox(AMT.value)) == 1
    with pytest.raises(XtaParameterInvalid) as unknown:
        client.cancel_message(HUB, "urn:de:xta:messageid:unknown")
    assert (unknown.value.exception, unknown.value.code) == ("ParameterIsNotValidException", "9070")
    # Only the author may withdraw its order.
    with pytest.raises(XtaParameterInvalid):
        client.cancel_message(AMT, message_id)


# -- getNextStatusList ---------------------------------------------------------------------------


def test_status_list_pages(client: XtaClient, simulator: XtaSimulator) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode()) for i in range(5)]
    first = client.get_status_list(HUB, max_items=2)
    assert [e.message_id for e in first.entries] == ids[:2]
    assert first.items_pending == 3
    second = client.get_next_status_list(HUB, first.request_id)
    assert second.request_id == first.request_id
    assert [e.message_id for e in second.entries] == ids[2:4]
    assert second.items_pending == 1
    third = client.get_next_status_list(HUB, first.request_id)
    assert [e.message_id for e in third.entries] == ids[4:]
    # 0 pending: the value zeep alone loses, read from the raw header.
    assert third.items_pending == 0
    done = client.get_next_status_list(HUB, first.request_id)
    assert done.entries == ()
    assert done.no_message_reason is not None and done.no_message_reason.endswith("NoMatch")


def test_status_list_page_sees_messages_that_arrived_meanwhile(
    client: XtaClient, simulator: XtaSimulator
) -> None:
    first_id = simulator.put(HUB.value, b"<a/>")
    first = client.get_status_list(HUB, max_items=1)
    later_id = simulator.put(HUB.value, b"<b/>")
    nxt = client.get_next_status_list(HUB, first.request_id)
    assert [e.message_id for e in first.entries] == [first_id]
    assert [e.message_id for e in nxt.entries] == [later_id]


def test_next_status_list_of_unknown_listing(client: XtaClient, simulator: XtaSimulator) -> None:
    with pytest.raises(XtaInvalidMessageId, match="unknown"):
        client.get_next_status_list(HUB, "urn:uuid:never-issued")
    simulator.put(AMT.value, b"<a/>")
    theirs = client.get_status_list(AMT, max_items=1)
    # Another reader's listing is not this reader's to continue.
    with pytest.raises(XtaInvalidMessageId):
        client.get_next_status_list(HUB, theirs.request_id)


# -- sendMessageSync -----------------------------------------------------------------------------


def test_send_sync_returns_the_readers_answer(client: XtaClient, simulator: XtaSimulator) -> None:
    seen: list[XtaMessage] = []

    def respond(request: XtaMessage) -> bytes:
        seen.append(request)
        return b'<xbau:antwort xmlns:xbau="http://www.xleitstelle.de/xbau/2/6">ok</xbau:antwort>'

    simulator.respond_sync(AMT.value, respond)
    message_id = client.create_message_id(HUB)
    answer = client.send_message_sync(bescheid(message_id))
    assert [m.metadata.message_id for m in seen] == [message_id]
    assert seen[0].content == b"<bescheid/>"
    assert answer.content.endswith(b">ok</xbau:antwort>")
    assert answer.metadata.author == AMT and answer.metadata.reader == HUB
    assert answer.metadata.in_reply_to == (message_id,)
    assert answer.metadata.message_type.code == "antwort"
    assert answer.metadata.message_id != message_id
    # A synchronous call leaves nothing in a mailbox.
    assert simulator.mailbox(AMT.value) == [] and simulator.mailbox(HUB.value) == []
    assert client.get_transport_report(HUB, message_id).status is TransportStatus.GREEN


def test_send_sync_faults(client: XtaClient, simulator: XtaSimulator) -> None:
    with pytest.raises(XtaSyncAsyncMismatch) as mismatch:
        client.send_message_sync(bescheid(client.create_message_id(HUB)))
    assert mismatch.value.exception == "SyncAsyncException"
    simulator.respond_sync(AMT.value, lambda request: b"<ok/>")
    message_id = client.create_message_id(HUB)
    client.send_message_sync(bescheid(message_id))
    with pytest.raises(XtaParameterInvalid) as repeated:
        client.send_message_sync(bescheid(message_id))
    assert repeated.value.code == "9024"


def test_a_failing_sync_reader_is_a_technical_problem_retried(
    client: XtaClient, simulator: XtaSimulator
) -> None:
    calls: list[str] = []

    def flaky(request: XtaMessage) -> bytes:
        calls.append(request.metadata.message_id)
        if len(calls) == 1:
            raise ConnectionError("reader down")
        return b"<ok/>"

    simulator.respond_sync(AMT.value, flaky)
    message_id = client.create_message_id(HUB)
    # The failed attempt answered nothing, so the retry under the same id is not a 9024.
    assert client.send_message_sync(bescheid(message_id)).content == b"<ok/>"
    assert calls == [message_id, message_id]
    assert simulator.calls("sendMessageSync") == 2
