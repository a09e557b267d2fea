"""The XTA operations against an independent server built from the official XTA.wsdl
(``wsdl_server``), with the client on the project's WSDL and on the published one; every body
both ways validates against the official XSDs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._errors import (
    XtaCancelDenied,
    XtaInvalidMessageId,
    XtaParameterInvalid,
    XtaPermissionDenied,
    XtaServiceUnavailable,
    XtaSyncAsyncMismatch,
)
from poststelle.adapters.xta._model import (
    MessageType,
    PartyId,
    TransportStatus,
    XtaMessage,
)
from poststelle.adapters.xta._schemas import PROJECT_WSDL, XtaSchemaValidator
from poststelle.adapters.xta.adapter import SentAnswer, XtaOutboundSender
from poststelle.adapters.xta.client import SendOutcome, XtaClient

from .conftest import AMT, HUB, XBAU, bescheid
from .wsdl_server import WsdlXtaServer


@pytest.fixture
def server(xta_dir: Path) -> Iterator[WsdlXtaServer]:
    with WsdlXtaServer(xta_dir / "XTA.wsdl", xta_dir) as s:
        s.accounts |= {HUB.value, AMT.value}
        yield s


@pytest.fixture(params=["project", "official"])
def client(
    request: pytest.FixtureRequest, server: WsdlXtaServer, xta_dir: Path
) -> Iterator[XtaClient]:
    wsdl = PROJECT_WSDL if request.param == "project" else xta_dir / "XTA.wsdl"
    settings = XtaConnectionSettings.model_validate(
        {"service_url": server.url, "xsd_dir": xta_dir, "wsdl": wsdl, "retry_attempts": 1}
    )
    c = XtaClient(settings)
    yield c
    c.close_session()


@pytest.fixture(scope="module")
def validator(xta_dir: Path) -> XtaSchemaValidator:
    return XtaSchemaValidator(xta_dir)


def _message(message_id: str, not_before: datetime | None = None) -> XtaMessage:
    return bescheid(message_id, not_before=not_before, filename=None)


def _all_valid(server: WsdlXtaServer, validator: XtaSchemaValidator) -> set[str]:
    for e in server.exchanges:
        assert validator.errors(e.request) == [], (e.operation, "request", e.request)
        assert validator.errors(e.response) == [], (e.operation, "response", e.response)
    return {e.operation for e in server.exchanges}


def test_lookup_service(
    client: XtaClient, server: WsdlXtaServer, validator: XtaSchemaValidator
) -> None:
    server.services[AMT.value] = {XBAU}
    results = client.lookup_service(HUB, [(AMT, XBAU), (AMT, "urn:other"), (HUB, XBAU)])
    assert [(r.reader, r.service, r.available) for r in results] == [
        (PartyId(AMT.value), XBAU, True),
        (PartyId(AMT.value), "urn:other", False),
        (HUB, XBAU, None),
    ]
    with pytest.raises(XtaPermissionDenied) as denied:
        client.lookup_service(PartyId("dvdv:unknown"), [(AMT, XBAU)])
    assert (denied.value.exception, denied.value.code) == ("PermissionDeniedException", "9012")
    assert _all_valid(server, validator) == {"lookupService"}


def test_cancel_message(
    client: XtaClient, server: WsdlXtaServer, validator: XtaSchemaValidator
) -> None:
    held = client.create_message_id(HUB)
    client.send_message(_message(held, datetime.now(UTC) + timedelta(hours=1)))
    assert server.orders[held].held
    client.cancel_message(HUB, held)
    assert server.orders[held].cancelled and not server.orders[held].held

    sent = client.create_message_id(HUB)
    client.send_message(_message(sent))
    with pytest.raises(XtaCancelDenied) as denied:
        client.cancel_message(HUB, sent)
    assert denied.value.code == "9080"
    with pytest.raises(XtaParameterInvalid) as unknown:
        client.cancel_message(HUB, "urn:de:xta:messageid:unknown")
    assert unknown.value.code == "9070"
    assert _all_valid(server, validator) == {"createMessageId", "sendMessage", "cancelMessage"}


def test_get_next_status_list(
    client: XtaClient, server: WsdlXtaServer, validator: XtaSchemaValidator
) -> None:
    ids = [f"urn:de:xta:messageid:m{i}" for i in range(3)]
    for message_id in ids:
        server.put(HUB.value, message_id)
    first = client.get_status_list(HUB, max_items=2)
    assert ([e.message_id for e in first.entries], first.items_pending) == (ids[:2], 1)
    second = client.get_next_status_list(HUB, first.request_id)
    assert ([e.message_id for e in second.entries], second.items_pending) == (ids[2:], 0)
    done = client.get_next_status_list(HUB, first.request_id)
    assert done.entries == () and (done.no_message_reason or "").endswith("NoMatch")
    with pytest.raises(XtaInvalidMessageId):
        client.get_next_status_list(HUB, "urn:uuid:never-issued")
    with pytest.raises(XtaInvalidMessageId):
        client.get_next_status_list(AMT, first.request_id)  # not AMT's listing
    assert _all_valid(server, validator) == {"getStatusList", "getNextStatusList"}


def test_send_message_sync(
    client: XtaClient, server: WsdlXtaServer, validator: XtaSchemaValidator
) -> None:
    with pytest.raises(XtaSyncAsyncMismatch):
        client.send_message_sync(_message(client.create_message_id(HUB)))
    server.sync[AMT.value] = lambda content: b"<antwort>" + content + b"</antwort>"
    message_id = client.create_message_id(HUB)
    answer = client.send_message_sync(_message(message_id))
    assert answer.content == b"<antwort><bescheid/></antwort>"
    assert answer.metadata.author == PartyId(AMT.value)
    assert answer.metadata.reader == HUB
    assert answer.metadata.in_reply_to == (message_id,)
    assert _all_valid(server, validator) == {"createMessageId", "sendMessageSync"}


def test_the_server_is_strict_about_falsy_values(server: WsdlXtaServer) -> None:
    # The server writes "false" and "0" as text because zeep drops a choice whose value is
    # falsy; this shows that the literal survives where the Python value would not.
    operation = server._operations["http://www.xta.de/XTA/IsServiceAvailable"][1]
    dropped = operation.output.serialize(
        LookupServiceResultList={
            "LookupServiceResult": [
                {
                    "Reader": {"Identifier": {"_value_1": "x", "type": "xoev"}},
                    "ServiceType": "urn:x",
                    "IsServiceAvailableValue": {"ServiceIsAvailable": False},
                }
            ]
        }
    ).content
    assert b"ServiceIsAvailable>" not in etree.tostring(dropped)


async def test_the_answer_sender_on_the_official_wsdl(
    client: XtaClient, server: WsdlXtaServer, validator: XtaSchemaValidator
) -> None:
    # The adapter's answer path (createMessageId, lookupService, sendMessage,
    # getTransportReport) against the WSDL-built server, on both WSDLs.
    sender = XtaOutboundSender(client)
    server.services[AMT.value] = {"urn:xoev-de:xdomea:schema:3.0.0"}

    async def send(service: str) -> SentAnswer:
        return await sender.send(
            b"<antwort/>",
            author=HUB,
            reader=AMT,
            service=service,
            message_type=MessageType("Aussonderung.AnbietungEmpfangBestaetigen.0504", service),
            business_scenario="XDOMEA",
        )

    with pytest.raises(XtaServiceUnavailable):
        await send(XBAU)
    assert server.orders == {}
    sent = await send("urn:xoev-de:xdomea:schema:3.0.0")
    assert sent.outcome is SendOutcome.ACCEPTED
    assert sent.report is not None and sent.report.status is TransportStatus.GREEN
    assert set(server.orders) == {sent.message_id}
    assert _all_valid(server, validator) == {
        "lookupService",
        "createMessageId",
        "sendMessage",
        "getTransportReport",
    }
