"""zeep 4.3.3 quirks on the XTA WSDL: each test shows the quirk in plain zeep and that the client
works around it."""

# zeep is only partly typed; the calls below are checked at run time.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from poststelle.adapters.xta._schemas import PROJECT_WSDL, XtaSchemaLocator
from poststelle.adapters.xta._transport import XtaTransport
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import HUB, make_settings

NS = "{http://xoev.de/transport/xta/211}"
AUTHOR = {"AuthorIdentifier": {"Identifier": {"_value_1": HUB.value, "type": "xoev"}}}


class _PlainZeepPost(XtaTransport):
    """Our offline loading, but zeep's own handling of replies (no MTOM inlining)."""

    def post(self, address: str, message: Any, headers: dict[str, str]) -> Any:
        return Transport.post(self, address, message, headers)


def _plain_msgbox(sim: XtaSimulator, xta_dir: Path) -> Any:
    transport = _PlainZeepPost(XtaSchemaLocator(xta_dir), requests.Session(), 5)
    client = zeep.Client(str(PROJECT_WSDL), transport=transport)
    return client.create_service(f"{NS}msgBoxHttpsBinding", sim.url)


def test_items_pending_zero_vanishes_in_zeep(
    simulator: XtaSimulator, client: XtaClient, xta_dir: Path
) -> None:
    simulator.put(HUB.value, b"<x/>")
    simulator.put(HUB.value, b"<y/>")
    service = _plain_msgbox(simulator, xta_dir)
    one = service.getStatusList(ListForm="MessageMetaData", maxListItems=1, _soapheaders=AUTHOR)
    assert one.header.FetchResponseHeader.ItemsPending == 1
    raw = service.getStatusList(ListForm="MessageMetaData", _soapheaders=AUTHOR)
    assert b"<osci:ItemsPending>0</osci:ItemsPending>" in (simulator.exchanges[-1].response or b"")
    assert "ItemsPending" not in raw.header.FetchResponseHeader.__values__  # the quirk
    assert client.get_status_list(HUB).items_pending == 0  # the workaround


def test_zeep_demands_a_last_msg_received(simulator: XtaSimulator, xta_dir: Path) -> None:
    service = _plain_msgbox(simulator, xta_dir)
    with pytest.raises(zeep.exceptions.ValidationError, match="minOccurs"):
        service.close(MsgBoxRequestID="urn:x", LastMsgReceived=[], _soapheaders=AUTHOR)
    # The client's workaround is covered by test_roundtrip.test_close_without_ids_keeps_messages.


def test_mtom_edges_survive(xta_dir: Path) -> None:
    payload = b"\r\n<antrag/>\r\n"
    with XtaSimulator(mtom=True) as sim:
        sim.create_mailbox(HUB.value)
        message_id = sim.put(HUB.value, payload)
        raw = _plain_msgbox(sim, xta_dir).getMessage(
            MsgSelector={"MessageID": [message_id]}, _soapheaders=AUTHOR
        )
        assert b"Content-Transfer-Encoding: binary" in (sim.exchanges[-1].response or b"")
        assert raw.body.ContentContainer.Message._value_1 == b"<antrag/>"  # the quirk
        client = XtaClient(make_settings(sim, xta_dir))
        assert client.get_message(HUB, message_id).message.content == payload  # the workaround
