"""Client against simulator over real HTTP: mailbox round trip, sending, transport reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from poststelle.adapters.xta._model import (
    Attachment,
    MessageType,
    PartyId,
    TransportStatus,
    XtaMessage,
    XtaMetadata,
)
from poststelle.adapters.xta.client import SendOutcome, XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, make_settings

ANTRAG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<xbau:baugenehmigung.antrag.0200 xmlns:xbau="http://www.xleitstelle.de/xbau/2/6"/>\n'
)


def _answer(message_id: str, content: bytes = b"<bescheid/>") -> XtaMessage:
    return XtaMessage(
        metadata=XtaMetadata(
            message_id=message_id,
            author=HUB,
            reader=AMT,
            service="urn:xoev-de:xleitstelle:standard:xbau",
            message_type=MessageType(
                code="baugenehmigung.bescheid.0205",
                payload_schema="http://www.xleitstelle.de/xbau/2/6",
            ),
            business_scenario="XBAU_BAUGENEHMIGUNG",
            subject="Bescheid",
            in_reply_to=("urn:uuid:earlier",),
        ),
        content=content,
        filename="bescheid.xml",
        attachments=(Attachment(b"%PDF-1.7\r\n", "application/pdf", "bescheid.pdf", "Bescheid"),),
    )


def test_account_check(client: XtaClient) -> None:
    assert client.check_account_active(HUB) is True
    assert client.check_account_active(PartyId("dvdv:unknown")) is False


def test_put_list_get_close_gone(client: XtaClient, simulator: XtaSimulator) -> None:
    first = simulator.put(HUB.value, ANTRAG, author=AMT, filename="antrag.xml")
    second = simulator.put(HUB.value, b"<zwei/>")

    listing = client.get_status_list(HUB)
    assert [e.message_id for e in listing.entries] == [first, second]
    assert listing.entries[0].author == AMT
    assert listing.entries[0].message_type.code == "baugenehmigung.antrag.0200"
    assert listing.entries[0].message_type.payload_schema == "http://www.xleitstelle.de/xbau/2/6"
    assert listing.items_pending == 0  # zeep alone would report None here (see test_zeep_quirks)

    fetched = client.get_message(HUB, first)
    assert fetched.message_id == first
    assert fetched.message.content == ANTRAG
    assert fetched.message.filename == "antrag.xml"
    assert fetched.message.metadata.reader == HUB
    assert fetched.items_pending == 1

    client.close(HUB, fetched.request_id, [first])
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == [second]
    assert [e.message_id for e in client.get_status_list(HUB).entries] == [second]


def test_empty_mailbox_lists_nothing(client: XtaClient) -> None:
    listing = client.get_status_list(HUB)
    assert listing.entries == ()
    assert listing.no_message_reason is not None and listing.no_message_reason.endswith("NoMatch")


def test_get_next_message_walks_the_mailbox(client: XtaClient, simulator: XtaSimulator) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode()) for i in range(3)]
    fetched = client.get_message(HUB, ids[0])
    seen = [fetched.message_id]
    nxt = client.get_next_message(HUB, fetched.request_id)
    while nxt is not None:
        seen.append(nxt.message_id)
        nxt = client.get_next_message(HUB, fetched.request_id)
    assert seen == ids
    client.close(HUB, fetched.request_id, seen)
    assert simulator.mailbox(HUB.value) == []


def test_close_without_ids_keeps_messages(client: XtaClient, simulator: XtaSimulator) -> None:
    message_id = simulator.put(HUB.value, b"<x/>")
    fetched = client.get_message(HUB, message_id)
    # An empty LastMsgReceived list: zeep would refuse to serialise it without our workaround.
    client.close(HUB, fetched.request_id, [])
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == [message_id]


def test_send_delivers_and_reports(client: XtaClient, simulator: XtaSimulator) -> None:
    message_id = client.create_message_id(HUB)
    assert message_id.startswith("urn:")
    assert client.send_message(_answer(message_id)) is SendOutcome.ACCEPTED

    [delivered] = simulator.mailbox(AMT.value)
    assert delivered.metadata.message_id == message_id
    assert delivered.metadata.author == HUB
    assert delivered.metadata.in_reply_to == ("urn:uuid:earlier",)
    assert delivered.content == b"<bescheid/>"
    assert delivered.attachments[0].content == b"%PDF-1.7\r\n"

    report = client.get_transport_report(HUB, message_id)
    assert report.message_id == message_id
    assert report.status is TransportStatus.GREEN

    # The reader sees it in its own mailbox with the metadata the author sent.
    fetched = client.get_message(AMT, message_id)
    assert fetched.message.metadata.subject == "Bescheid"
    assert fetched.message.attachments[0].filename == "bescheid.pdf"


def test_send_to_unknown_reader_reports_red(client: XtaClient, simulator: XtaSimulator) -> None:
    message_id = client.create_message_id(HUB)
    msg = _answer(message_id)
    msg = replace(msg, metadata=replace(msg.metadata, reader=PartyId("dvdv:nowhere")))
    client.send_message(msg)
    report = client.get_transport_report(HUB, message_id)
    assert report.status is TransportStatus.RED
    assert report.errors[0].code == "9032"


def test_client_on_the_official_wsdl(simulator: XtaSimulator, xta_dir: Path) -> None:
    # An operator may point the adapter at the published XTA.wsdl instead of ours.
    client = XtaClient(make_settings(simulator, xta_dir, wsdl=xta_dir / "XTA.wsdl"))
    try:
        assert client.check_account_active(HUB)
        put = simulator.put(HUB.value, ANTRAG, author=AMT)
        listing = client.get_status_list(HUB)
        assert [entry.message_id for entry in listing.entries] == [put]
        fetched = client.get_message(HUB, put)
        assert fetched.message.content == ANTRAG
        client.close(HUB, fetched.request_id, [put])
        assert simulator.mailbox(HUB.value) == []
        message_id = client.create_message_id(HUB)
        assert client.send_message(_answer(message_id)) is SendOutcome.ACCEPTED
        assert client.get_transport_report(HUB, message_id).status is TransportStatus.GREEN
    finally:
        client.close_session()
