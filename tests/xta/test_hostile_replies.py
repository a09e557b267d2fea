"""Replies an XTA server should never send: each becomes an ``XtaError``, never a stray
``ValueError``, ``XMLSyntaxError`` or ``AttributeError`` (found by ``python -m fuzz``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from poststelle.adapters.xta._errors import XtaPermanentError
from poststelle.adapters.xta._model import MessageType, ServiceParameter, XtaMessage, XtaMetadata
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, bescheid, make_settings

SOAP = "application/soap+xml; charset=utf-8"


class _Canned(requests.Session):
    """Answers every POST with ``reply`` (status, content type, body) instead of the server's."""

    reply: tuple[int, str, bytes] | None = None

    def post(self, url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        if self.reply is None:
            return super().post(url, data=data, json=json, **kwargs)
        status, content_type, body = self.reply
        response = requests.Response()
        response.status_code, response._content, response.url = status, body, str(url)
        response.headers = CaseInsensitiveDict({"Content-Type": content_type})
        return response


@pytest.fixture
def canned(simulator: XtaSimulator, xta_dir: Path) -> Iterator[tuple[XtaClient, _Canned]]:
    session = _Canned()
    client = XtaClient(make_settings(simulator, xta_dir, retry_attempts=1), session=session)
    yield client, session
    client.close_session()


def _real_reply(simulator: XtaSimulator, operation: str) -> bytes:
    replies = [e.response for e in simulator.exchanges if e.operation == operation]
    assert replies and replies[-1] is not None
    return replies[-1]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/related", b"--x\r\n\r\n<a/>"),  # no boundary
        ("multipart/related; boundary=x", b"no parts at all"),
        ("multipart/related; boundary=x", b"--x\r\n\r\n<env><unclosed>\r\n--x--"),
        (
            "multipart/related; boundary=x",
            b"--x\r\n\r\n<a/>\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!\r\n--x--",
        ),
    ],
)
def test_a_malformed_mtom_reply_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], content_type: str, body: bytes
) -> None:
    client, session = canned
    session.reply = (200, content_type, body)
    with pytest.raises(XtaPermanentError, match="malformed MTOM reply"):
        client.create_message_id(HUB)


def test_an_error_status_without_a_fault_element_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], simulator: XtaSimulator
) -> None:
    # zeep hands the whole reply as the fault's detail, as bytes: iterating it gave ints,
    # and reading ``child.tag`` raised AttributeError.
    client, session = canned
    client.create_message_id(HUB)
    session.reply = (500, SOAP, _real_reply(simulator, "createMessageId"))
    with pytest.raises(XtaPermanentError, match="Unknown fault"):
        client.create_message_id(HUB)


def test_a_transport_report_with_an_empty_status_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], simulator: XtaSimulator
) -> None:
    # int(None) escaped as a TypeError when the report's Status element was missing.
    client, session = canned
    message_id = client.create_message_id(HUB)
    client.send_message(bescheid(message_id, filename="b.xml"))
    assert client.get_transport_report(HUB, message_id).message_id == message_id
    body = _real_reply(simulator, "getTransportReport")
    empty_status, replaced = re.subn(rb"(<(\w+:)?Status)>[^<]*</(\w+:)?Status>", rb"\1/>", body)
    assert replaced == 1
    session.reply = (200, SOAP, empty_status)
    with pytest.raises(XtaPermanentError, match="reply lacks what getTransportReport needs"):
        client.get_transport_report(HUB, message_id)


def test_a_reply_with_a_dtd_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], simulator: XtaSimulator
) -> None:
    client, session = canned
    client.create_message_id(HUB)
    body = _real_reply(simulator, "createMessageId")
    head, _, rest = body.partition(b"?>")
    session.reply = (200, SOAP, head + b'?><!DOCTYPE x [<!ENTITY e "x">]>' + rest)
    with pytest.raises(XtaPermanentError, match="invalid message"):
        client.create_message_id(HUB)


def _lookup_reply(canned: tuple[XtaClient, _Canned], simulator: XtaSimulator) -> bytes:
    client, _ = canned
    simulator.offer(AMT.value, "urn:s", (ServiceParameter("cert", b"\x00\x01"),))
    assert client.is_service_available(HUB, AMT, "urn:s") is True
    return _real_reply(simulator, "lookupService")


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        # No IsServiceAvailableValue at all.
        (rb"<(\w+:)?IsServiceAvailableValue>.*?</(\w+:)?IsServiceAvailableValue>", b""),
        # A Resource that is not base64.
        (rb"(<(\w+:)?Resource>)[^<]*(</(\w+:)?Resource>)", rb"\1!!not base64!\3"),
        # A reader identifier without its type.
        (rb'(<(\w+:)?Identifier) type="xoev"', rb'\1 type=""'),
        # A parameter without its ParameterType.
        (rb"<(\w+:)?ParameterType .*?</(\w+:)?ParameterType>", b""),
    ],
)
def test_a_broken_lookup_result_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned],
    simulator: XtaSimulator,
    pattern: bytes,
    replacement: bytes,
) -> None:
    client, session = canned
    broken, replaced = re.subn(pattern, replacement, _lookup_reply(canned, simulator), flags=re.S)
    assert replaced >= 1
    session.reply = (200, SOAP, broken)
    with pytest.raises(XtaPermanentError, match="lookupService"):
        client.lookup_service(HUB, [(AMT, "urn:s")])


def test_a_next_status_list_without_its_header_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], simulator: XtaSimulator
) -> None:
    client, session = canned
    simulator.put(HUB.value, b"<a/>")
    simulator.put(HUB.value, b"<b/>")
    listing = client.get_status_list(HUB, max_items=1)
    client.get_next_status_list(HUB, listing.request_id)
    body = _real_reply(simulator, "getNextStatusList")
    stripped, replaced = re.subn(rb"<(\w+:)?MsgBoxResponse .*?</(\w+:)?MsgBoxResponse>", b"", body)
    assert replaced == 1
    session.reply = (200, SOAP, stripped)
    with pytest.raises(XtaPermanentError, match="lacks the MsgBoxResponse header"):
        client.get_next_status_list(HUB, listing.request_id)


def test_a_sync_answer_without_its_metadata_is_a_permanent_error(
    canned: tuple[XtaClient, _Canned], simulator: XtaSimulator
) -> None:
    client, session = canned
    simulator.respond_sync(AMT.value, lambda request: b"<antwort/>")

    def message(message_id: str) -> XtaMessage:
        metadata = XtaMetadata(
            message_id=message_id,
            author=HUB,
            reader=AMT,
            service="urn:s",
            message_type=MessageType("anfrage", "urn:x"),
            business_scenario="XTA",
        )
        return XtaMessage(metadata, b"<anfrage/>")

    assert client.send_message_sync(message(client.create_message_id(HUB))).content == (
        b"<antwort/>"
    )
    body = _real_reply(simulator, "sendMessageSync")
    stripped, replaced = re.subn(
        rb"<(\w+:)?MessageMetaData.*?</(\w+:)?MessageMetaData>", b"", body, flags=re.S
    )
    assert replaced == 1
    session.reply = (200, SOAP, stripped)
    with pytest.raises(XtaPermanentError, match="sendMessageSync"):
        client.send_message_sync(message("urn:de:xta:messageid:x"))
