"""An XTA server built from the official ``XTA.wsdl``: zeep's reading of the published WSDL
reads every request (``input.deserialize``) and writes every answer (``output.serialize``), and
fault details are rendered from the published exception elements. It shares no code with the
client's conversions or with the simulator's XML (``_simxml``), so a client that works against
both speaks the standard, not one implementation's reading of it.

It serves what the tests need: ``checkAccountActive``, ``createMessageId``, ``lookupService``,
``cancelMessage``, ``sendMessage``, ``sendMessageSync``, ``getStatusList`` and
``getNextStatusList``, and ``getTransportReport`` for the orders it took.
"""

# zeep is only partly typed; the calls below are checked at run time.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
import zeep
from lxml import etree

from poststelle.adapters.xta._schemas import XtaSchemaLocator
from poststelle.adapters.xta._transport import XtaTransport

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_XTA = "http://xoev.de/transport/xta/211"
REASONS = "http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/"
FEHLERNUMMER = "urn:de:xta:webservice:codeliste:fehlernummer"


class Fault(Exception):
    def __init__(self, exception: str, code: str, reason: str) -> None:
        super().__init__(reason)
        self.exception, self.code, self.reason = exception, code, reason


@dataclass
class Order:
    author: str
    reader: str
    held: bool
    service: str = "urn:x"
    cancelled: bool = False


@dataclass
class Listing:
    reader: str
    limit: int
    listed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Exchange:
    operation: str
    request: bytes
    response: bytes


def _text(value: Any) -> str:
    return str(getattr(value, "_value_1", value) or "").strip()


def _party(identifier: str) -> dict[str, Any]:
    return {"Identifier": {"_value_1": identifier, "type": "xoev"}}


class WsdlXtaServer:
    def __init__(self, wsdl: Path, xsd_dir: Path) -> None:
        self._zeep = zeep.Client(
            str(wsdl),
            transport=XtaTransport(XtaSchemaLocator(xsd_dir), requests.Session(), 5),
        )
        self._operations: dict[str, tuple[str, Any]] = {}
        for port in self._zeep.wsdl.services["XTAService"].ports.values():
            for name, operation in port.binding._operations.items():
                self._operations[operation.soapaction] = (name, operation)
        self.lock = threading.Lock()
        self.accounts: set[str] = set()
        self.services: dict[str, set[str]] = {}
        self.mailboxes: dict[str, list[dict[str, Any]]] = {}
        self.orders: dict[str, Order] = {}
        self.listings: dict[str, Listing] = {}
        self.sync: dict[str, Callable[[bytes], bytes]] = {}
        self.exchanges: list[Exchange] = []
        self._http: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> WsdlXtaServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = server.handle(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    @property
    def url(self) -> str:
        assert self._http is not None
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/xta"

    def put(self, reader: str, message_id: str, author: str = "dvdv:absender") -> None:
        with self.lock:
            self.mailboxes.setdefault(reader, []).append(
                self._metadata(message_id, author, reader, "urn:x", "nachricht")
            )

    # -- SOAP ---------------------------------------------------------------------------------

    def handle(self, body: bytes) -> tuple[int, bytes]:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        envelope = etree.fromstring(body, parser)
        action = envelope.findtext(f"{{{NS_SOAP12}}}Header/{{{NS_WSA}}}Action") or ""
        relates_to = envelope.findtext(f"{{{NS_SOAP12}}}Header/{{{NS_WSA}}}MessageID")
        name, operation = self._operations[action.strip()]
        body_el = envelope.find(f"{{{NS_SOAP12}}}Body")
        if body_el is not None and len(body_el):
            request = operation.input.deserialize(envelope)
        else:
            # An EmptyBody input (checkAccountActive, createMessageId): zeep's deserialize
            # assumes one body child, so only the declared headers are read.
            header_el = envelope.find(f"{{{NS_SOAP12}}}Header")
            headers = operation.input._deserialize_headers(header_el)
            request = SimpleNamespace(header=headers.get("header"), body=None)
        try:
            values, headers = getattr(self, f"_op_{name}")(request)
            reply = operation.output.serialize(**values, _soapheaders=headers).content
            status = 200
        except Fault as fault:
            reply, status = self._fault(fault), 500
        except Exception as exc:  # a bug here must reach the test as an answer, not a hang-up
            reply = self._fault(Fault("XTAWSTechnicalProblemException", "9030", repr(exc)))
            status = 500
        self._address(reply, action, relates_to)
        payload = etree.tostring(reply, xml_declaration=True, encoding="utf-8")
        with self.lock:
            self.exchanges.append(Exchange(name, body, payload))
        return status, payload

    def _fault(self, fault: Fault) -> Any:
        s = f"{{{NS_SOAP12}}}"
        env = etree.Element(f"{s}Envelope", nsmap={"s": NS_SOAP12})
        etree.SubElement(env, f"{s}Header")
        f = etree.SubElement(etree.SubElement(env, f"{s}Body"), f"{s}Fault")
        etree.SubElement(etree.SubElement(f, f"{s}Code"), f"{s}Value").text = "s:Receiver"
        text = etree.SubElement(etree.SubElement(f, f"{s}Reason"), f"{s}Text")
        text.text = fault.reason
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "de")
        element = self._zeep.get_element(f"{{{NS_XTA}}}{fault.exception}")
        value = element(
            errorCode={
                "code": fault.code,
                "name": fault.reason,
                "listURI": FEHLERNUMMER,
                "listVersionID": "1.0",
            }
        )
        element.render(etree.SubElement(f, f"{s}Detail"), value)
        return env

    @staticmethod
    def _address(envelope: Any, action: str, relates_to: str | None) -> None:
        header = envelope.find(f"{{{NS_SOAP12}}}Header")
        if header is None:
            header = etree.Element(f"{{{NS_SOAP12}}}Header")
            envelope.insert(0, header)
        for local, text in (
            ("Action", action),
            ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
            ("RelatesTo", relates_to),
        ):
            if text:
                etree.SubElement(header, f"{{{NS_WSA}}}{local}").text = text

    def _account(self, request: Any) -> str:
        author = request.header.AuthorIdentifier
        identifier = _text(author.Identifier) if author is not None else ""
        if identifier not in self.accounts:
            raise Fault("PermissionDeniedException", "9012", f"kein Account {identifier}")
        return identifier

    def _own_order(self, request: Any, message_id: str, exception: str) -> Order:
        """Under the lock: the caller's order ``message_id``; fault 9070 as ``exception``
        (getTransportReport and cancelMessage name it differently) when there is none."""
        account = self._account(request)
        order = self.orders.get(message_id)
        if order is None or order.author != account:
            raise Fault(exception, "9070", "MessageID nicht bekannt.")
        return order

    @staticmethod
    def _metadata(
        message_id: str, author: str, reader: str, service: str, code: str
    ) -> dict[str, Any]:
        return {
            "DeliveryAttributes": {"Delivery": datetime.now(UTC)},
            "Originators": {"Author": _party(author)},
            "Destinations": {"Reader": _party(reader)},
            "MsgIdentification": {"MessageID": {"_value_1": message_id}},
            "Qualifier": {
                "Service": service,
                "BusinessScenario": {"Undefined": "WSDL"},
                "MessageType": {
                    "code": code,
                    "listURI": "urn:de:payloadSchema:elementName",
                    "listVersionID": "1.0",
                    "payloadSchema": "urn:x",
                },
            },
        }

    # -- operations ---------------------------------------------------------------------------

    def _op_checkAccountActive(self, request: Any) -> tuple[dict[str, Any], Any]:
        self._account(request)
        return {}, None

    def _op_createMessageId(self, request: Any) -> tuple[dict[str, Any], Any]:
        self._account(request)
        return {"_value_1": f"urn:de:xta:messageid:wsdl:{uuid.uuid4()}"}, None

    def _op_lookupService(self, request: Any) -> tuple[dict[str, Any], Any]:
        self._account(request)
        results = []
        for item in request.body.LookupServiceRequestList:
            reader, service = (
                _text(item.LookupService.Reader.Identifier),
                item.LookupService.ServiceType,
            )
            offered = self.services.get(reader)
            # zeep drops a falsy choice value when writing too: the literal "false" survives.
            value = (
                {"ServiceIsAvailableUnknown": "true"}
                if offered is None
                else {"ServiceIsAvailable": "true" if service in offered else "false"}
            )
            results.append(
                {"Reader": _party(reader), "ServiceType": service, "IsServiceAvailableValue": value}
            )
        return {"LookupServiceResultList": {"LookupServiceResult": results}}, None

    def _op_sendMessage(self, request: Any) -> tuple[dict[str, Any], Any]:
        md = request.header.MessageMetaData
        author = _text(md.Originators.Author.Identifier)
        if author not in self.accounts:
            raise Fault("PermissionDeniedException", "9012", f"kein Account {author}")
        message_id = _text(md.MsgIdentification.MessageID)
        delivery = md.DeliveryAttributes  # an empty element reads as None
        not_before = delivery.NotBefore if delivery is not None else None
        with self.lock:
            if message_id in self.orders:
                raise Fault(
                    "ParameterIsNotValidException", "9024", "MessageID ist bereits vergeben."
                )
            reader = _text(md.Destinations.Reader.Identifier)
            self.orders[message_id] = Order(
                author,
                reader,
                held=not_before is not None and not_before > datetime.now(UTC),
                service=str(md.Qualifier.Service),
            )
        return {}, None

    def _op_getTransportReport(self, request: Any) -> tuple[dict[str, Any], Any]:
        message_id = _text(request.body)
        with self.lock:
            order = self._own_order(request, message_id, "InvalidMessageIDException")
        # 0 open (held), 3 red (cancelled), 1 green (taken).
        status = "3" if order.cancelled else "0" if order.held else "1"
        report = {
            "MessageMetaData": self._metadata(
                message_id, order.author, order.reader, order.service, "nachricht"
            ),
            "ReportTime": datetime.now(UTC),
            "XTAServerIdentity": "wsdl-server",
            "MessageStatus": {"Status": status},
        }
        return report, None

    def _op_cancelMessage(self, request: Any) -> tuple[dict[str, Any], Any]:
        message_id = _text(request.body)
        with self.lock:
            order = self._own_order(request, message_id, "ParameterIsNotValidException")
            if not order.held and not order.cancelled:
                raise Fault("CancelDeniedException", "9080", "nicht mehr stornierbar")
            order.held, order.cancelled = False, True
        return {}, None

    def _op_sendMessageSync(self, request: Any) -> tuple[dict[str, Any], Any]:
        md = request.header.MessageMetaData
        author, reader = (
            _text(md.Originators.Author.Identifier),
            _text(md.Destinations.Reader.Identifier),
        )
        if author not in self.accounts:
            raise Fault("PermissionDeniedException", "9012", f"kein Account {author}")
        responder = self.sync.get(reader)
        if responder is None:
            raise Fault("SyncAsyncException", "9040", "nur asynchron")
        answer = responder(bytes(request.body.ContentContainer.Message._value_1))
        header = self._metadata(
            f"urn:de:xta:messageid:wsdl:{uuid.uuid4()}",
            reader,
            author,
            md.Qualifier.Service,
            "antwort",
        )
        header["MsgIdentification"]["In-Reply-To"] = [_text(md.MsgIdentification.MessageID)]
        body = {
            "ContentContainer": {
                "Message": {
                    "_value_1": answer,
                    "contentType": "application/xml",
                    "size": len(answer),
                }
            }
        }
        return body, {"MessageMetaData": header}

    def _page(self, listing: Listing, request_id: str) -> tuple[dict[str, Any], Any]:
        fresh = [
            m
            for m in self.mailboxes.get(listing.reader, [])
            if _text(m["MsgIdentification"]["MessageID"]) not in listing.listed
        ]
        page = fresh[: listing.limit]
        listing.listed += [_text(m["MsgIdentification"]["MessageID"]) for m in page]
        pending = len(fresh) - len(page)
        response: dict[str, Any] = {"MsgBoxRequestID": request_id}
        if page or pending:
            response["ItemsPending"] = str(pending)  # "0" survives, 0 would vanish
        else:
            response["NoMessageAvailable"] = {"reason": REASONS + "NoMatch"}
        return {"MessageMetaData": page}, {"FetchResponseHeader": response}

    def _op_getStatusList(self, request: Any) -> tuple[dict[str, Any], Any]:
        reader = self._account(request)
        request_id = f"urn:uuid:{uuid.uuid4()}"
        with self.lock:
            listing = self.listings[request_id] = Listing(reader, int(request.body.maxListItems))
            return self._page(listing, request_id)

    def _op_getNextStatusList(self, request: Any) -> tuple[dict[str, Any], Any]:
        reader = self._account(request)
        request_id = str(request.body.MsgBoxRequestID)
        with self.lock:
            listing = self.listings.get(request_id)
            if listing is None or listing.reader != reader:
                header = {
                    "MsgBoxRequestID": request_id,
                    "NoMessageAvailable": {"reason": REASONS + "RequestIdInvalid"},
                }
                return {"MessageMetaData": []}, {"FetchResponseHeader": header}
            return self._page(listing, request_id)
