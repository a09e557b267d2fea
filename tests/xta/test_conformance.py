"""Every SOAP body on the wire, both directions, validates against the real XTA 2.1.1 XSDs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from poststelle.adapters.xta._errors import (
    XtaCancelDenied,
    XtaInvalidMessageId,
    XtaSyncAsyncMismatch,
)
from poststelle.adapters.xta._model import MessageType, ServiceParameter, XtaMessage, XtaMetadata
from poststelle.adapters.xta._schemas import XtaSchemaValidator
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import ACTIONS, FaultRule, XtaSimulator

from .conftest import AMT, HUB, make_settings

WSA = "http://www.w3.org/2005/08/addressing"
META = "http://www.osci.eu/ws/2014/10/transport"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


@pytest.fixture(scope="module")
def validator(xta_dir: Path) -> XtaSchemaValidator:
    return XtaSchemaValidator(xta_dir)


@pytest.fixture
def lenient_simulator() -> Iterator[XtaSimulator]:
    # No validation inside the simulator: the test itself is the judge here.
    with XtaSimulator() as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        yield sim


def _exercise(sim: XtaSimulator, client: XtaClient) -> None:
    """Call every operation the client offers, including fault answers."""
    assert client.check_account_active(HUB)
    assert not client.check_account_active(AMT.__class__("dvdv:unknown"))
    first = sim.put(HUB.value, b"<a/>", author=AMT, filename="a.xml")
    sim.put(HUB.value, b"<b/>")
    listing = client.get_status_list(HUB, max_items=1)
    client.get_next_status_list(HUB, listing.request_id)
    client.get_next_status_list(HUB, listing.request_id)  # NoMessageAvailable
    with pytest.raises(XtaInvalidMessageId):
        client.get_next_status_list(HUB, "urn:uuid:unknown")  # RequestIdInvalid
    fetched = client.get_message(HUB, first)
    nxt = client.get_next_message(HUB, fetched.request_id, [fetched.message_id])
    assert nxt is not None
    assert client.get_next_message(HUB, fetched.request_id, [nxt.message_id]) is None
    client.close(HUB, fetched.request_id, [])
    client.get_status_list(HUB)
    message_id = client.create_message_id(HUB)
    message = XtaMessage(
        metadata=XtaMetadata(
            message_id=message_id,
            author=HUB,
            reader=AMT,
            service="urn:xoev-de:xleitstelle:standard:xbau",
            message_type=MessageType("baugenehmigung.bescheid.0205", "urn:x", name="Bescheid"),
            business_scenario="XBAU",
            subject="Bescheid",
            in_reply_to=(first,),
            test_msg=True,
        ),
        content=b"<bescheid/>",
        filename="bescheid.xml",
    )
    client.send_message(message)
    client.send_message(message)  # fault 9024
    client.get_transport_report(HUB, message_id)
    with pytest.raises(XtaCancelDenied):
        client.cancel_message(HUB, message_id)
    held_id = client.create_message_id(HUB)
    later = datetime.now(UTC) + timedelta(hours=1)
    client.send_message(_with_id(message, held_id, not_before=later))
    client.cancel_message(HUB, held_id)
    sim.offer(AMT.value, message.metadata.service, (ServiceParameter("cert", b"\x00\x01"),))
    client.lookup_service(HUB, [(AMT, message.metadata.service), (AMT, "urn:x"), (HUB, "urn:x")])
    with pytest.raises(XtaSyncAsyncMismatch):
        client.send_message_sync(_with_id(message, client.create_message_id(HUB)))
    sim.respond_sync(AMT.value, lambda request: b"<antwort/>")
    client.send_message_sync(_with_id(message, client.create_message_id(HUB)))
    sim.inject(
        FaultRule(
            "fault",
            operation="getTransportReport",
            exception="PermissionDeniedException",
            code="9011",
        )
    )
    with pytest.raises(Exception, match="9011"):
        client.get_transport_report(HUB, message_id)


def _with_id(message: XtaMessage, message_id: str, **changes: Any) -> XtaMessage:
    return replace(message, metadata=replace(message.metadata, message_id=message_id, **changes))


def test_all_bodies_validate(
    lenient_simulator: XtaSimulator, xta_dir: Path, validator: XtaSchemaValidator
) -> None:
    client = XtaClient(make_settings(lenient_simulator, xta_dir))
    _exercise(lenient_simulator, client)
    exchanges = lenient_simulator.exchanges
    # Every operation of XTA 2.1.1 went over the wire at least once.
    assert {e.operation for e in exchanges} == set(ACTIONS.values())
    faults = 0
    for e in exchanges:
        assert validator.errors(e.request) == [], (e.operation, "request", e.request)
        assert e.response is not None
        assert validator.errors(e.response) == [], (e.operation, "response", e.response)
        faults += b"Fault>" in e.response
    # permission denied, no further message, 9024, cancel denied, sync/async, injected 9011
    assert faults >= 6


def test_requests_carry_addressing_and_party_headers(
    lenient_simulator: XtaSimulator, xta_dir: Path
) -> None:
    client = XtaClient(make_settings(lenient_simulator, xta_dir))
    _exercise(lenient_simulator, client)
    actions = {v: k for k, v in ACTIONS.items()}
    for e in lenient_simulator.exchanges:
        header = etree.fromstring(e.request).find(f"{{{SOAP12}}}Header")
        assert header is not None
        assert [a.text for a in header.findall(f"{{{WSA}}}Action")] == [actions[e.operation]]
        assert len(header.findall(f"{{{WSA}}}MessageID")) == 1
        assert header.findtext(f"{{{WSA}}}To") == lenient_simulator.url
        if e.operation in ("sendMessage", "sendMessageSync"):
            md = header.find(f"{{{META}}}MessageMetaData")
            assert md.findtext(f".//{{{META}}}Author/{{{META}}}Identifier") == HUB.value
            assert md.findtext(f".//{{{META}}}Reader/{{{META}}}Identifier") == AMT.value
        else:
            assert header.findtext(f"{{{META}}}Author/{{{META}}}Identifier") in (
                HUB.value,
                "dvdv:unknown",
            )


def test_validator_catches_a_broken_body(validator: XtaSchemaValidator) -> None:
    good = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        b'<osci:MsgBoxCloseRequest xmlns:osci="http://www.osci.eu/ws/2008/05/transport" '
        b'MsgBoxRequestID="urn:x"/></s:Body></s:Envelope>'
    )
    assert validator.errors(good) == []
    assert validator.errors(good.replace(b' MsgBoxRequestID="urn:x"', b"")) != []
    assert validator.errors(good.replace(b"MsgBoxCloseRequest", b"MsgBoxShutRequest")) != []
    assert validator.errors(b"<not-soap/>") != []
