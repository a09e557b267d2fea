"""A small XTA 2.1.1 server (SOAP 1.2 over real HTTP) with mailboxes and fault injection.

It serves every operation of the ManagementPort, SendXtaPort and MsgBoxPort on any path
(dispatch is by WS-Addressing action, as in the standard), plus a JSON admin API under ``/admin``.
Which services a reader offers (``lookupService``) is set with :meth:`XtaSimulator.offer`, a
reader's synchronous answers (``sendMessageSync``) with :meth:`XtaSimulator.respond_sync`; a
message sent with ``NotBefore`` in the future is held until then and can be cancelled.
Admin routes:

- ``GET  /admin/mailboxes``                          readers and their message ids
- ``POST /admin/mailboxes/{reader}``                 create a mailbox (an account)
- ``GET  /admin/mailboxes/{reader}/messages``        the messages waiting in a mailbox
- ``POST /admin/mailboxes/{reader}/messages``        drop the request body into a mailbox
  (query: ``author``, ``filename``, ``content_type``, ``service``)
- ``POST /admin/faults``                             inject a fault (JSON, see :class:`FaultRule`)
- ``DELETE /admin/faults``                           clear injected faults

Use it from Python (``with XtaSimulator() as sim: sim.url``) or as ``poststelle xta-sim``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from lxml import etree

from poststelle.adapters._simulator import ThreadedServer
from poststelle.adapters.xta import _simxml as x
from poststelle.adapters.xta._model import (
    Attachment,
    MessageType,
    PartyId,
    ServiceParameter,
    TransportReport,
    TransportStatus,
    XtaMessage,
    XtaMetadata,
)
from poststelle.adapters.xta._schemas import XtaSchemaValidator

__all__ = ["Exchange", "FaultRule", "SimulatorError", "XtaSimulator"]

logger = logging.getLogger(__name__)

_OSCI_ACTION = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"
ACTIONS: dict[str, str] = {
    "http://www.xta.de/XTA/CheckAccountActive": "checkAccountActive",
    "http://www.xta.de/XTA/CreateMessageID": "createMessageId",
    "http://www.xta.de/XTA/GetTransportReport": "getTransportReport",
    "http://www.xta.de/XTA/CancelMessage": "cancelMessage",
    "http://www.xta.de/XTA/IsServiceAvailable": "lookupService",
    "http://www.xta.de/XTA/SendMessage": "sendMessage",
    "http://www.xta.de/XTA/SendMessageSync": "sendMessageSync",
    _OSCI_ACTION + "MsgBoxFetchRequest": "getMessage",
    _OSCI_ACTION + "MsgBoxStatusListRequest": "getStatusList",
    _OSCI_ACTION + "MsgBoxGetNextMsgRequest": "getNextMessage",
    _OSCI_ACTION + "MsgBoxGetNextListRequest": "getNextStatusList",
    _OSCI_ACTION + "MsgBoxCloseRequest": "close",
}

_REASONS = "http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/"
_MAX_BODY = 50 * 1024 * 1024  # XTA caps a content container at 40 MB; headroom for base64
SERVER_IDENTITY = "poststelle-xta-simulator"


class SimulatorError(Exception):
    """An XTA-level error the simulator answers with a SOAP fault."""

    def __init__(self, exception: str | None, code: str, reason: str, sender: bool = True) -> None:
        super().__init__(reason)
        self.exception, self.code, self.reason, self.sender = exception, code, reason, sender


@dataclass
class FaultRule:
    """A fault to inject into the next ``times`` calls of ``operation`` (``*`` = any operation).

    - ``delay``: wait ``delay`` seconds, then handle the call normally (a client that timed out
      meanwhile never sees the answer, but the call took effect).
    - ``fault``: answer with the XTA SOAP fault ``exception``/``code`` without handling the call.
    - ``drop``: close the connection without an answer; with ``after_processing`` the call takes
      effect first (the answer is lost), otherwise it does not. A ``delay`` stalls the call that
      long first (a server that hangs, then goes away: the client may time out or die
      meanwhile, and the call never takes effect unless ``after_processing``).
    - ``duplicate``: on ``close``, acknowledge but keep the messages, so they are delivered again;
      on ``getStatusList``, list every entry twice (at-least-once servers repeat entries).
    - ``vanish``: on ``getMessage``, the requested message leaves the mailbox just before the
      call is handled (as if another client had closed it after it was listed).
    """

    kind: Literal["delay", "fault", "drop", "duplicate", "vanish"]
    operation: str = "*"
    times: int = 1
    delay: float = 0.0
    exception: str = "XTAWSTechnicalProblemException"
    code: str = "9030"
    reason: str = "injected fault"
    after_processing: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("delay", "fault", "drop", "duplicate", "vanish"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.operation != "*" and self.operation not in ACTIONS.values():
            raise ValueError(f"unknown XTA operation {self.operation!r}")
        if self.kind == "vanish" and self.operation != "getMessage":
            # With "*" the next call of any operation would take the rule and do nothing.
            raise ValueError("a vanish fault applies to operation 'getMessage'")
        if self.times < 1 or self.delay < 0:
            raise ValueError("times must be positive and delay non-negative")


@dataclass(frozen=True)
class Exchange:
    """One SOAP call as it went over the wire (``response`` is None for a dropped connection)."""

    operation: str
    request: bytes
    response: bytes | None
    status: int


@dataclass
class _Reply:
    envelope: Any
    header: Any
    body: Any
    # MTOM parts by Content-ID (only when the simulator answers with MTOM).
    attachments: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Iterator:
    reader: str
    delivered: list[str] = field(default_factory=list)
    # A status list's page size and the ids its pages have listed so far.
    limit: int = 1000
    listed: list[str] = field(default_factory=list)


# A reader's synchronous service: the request in, the answer's content out.
SyncResponder = Callable[[XtaMessage], bytes]


@dataclass
class _Sent:
    metadata: XtaMetadata
    report: TransportReport


class _State:
    """Mailboxes, iterators and transport reports, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, list[XtaMessage]] = {}
        self.iterators: dict[str, _Iterator] = {}
        self.issued_ids: set[str] = set()
        self.sent: dict[str, _Sent] = {}
        self.faults: list[FaultRule] = []
        # reader -> service -> its parameters; a reader absent here: availability unknown.
        self.services: dict[str, dict[str, tuple[ServiceParameter, ...]]] = {}
        self.sync: dict[str, SyncResponder] = {}
        # Sent with NotBefore in the future: waiting for it, cancellable.
        self.held: dict[str, XtaMessage] = {}
        self.cancelled: set[str] = set()
        self.exchanges: list[Exchange] = []
        # Operation names in order of arrival (an exchange is recorded only once answered).
        self.arrivals: list[str] = []


def _new_message_id() -> str:
    return f"urn:de:xta:messageid:{SERVER_IDENTITY}:{uuid.uuid4()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _guess_message_type(content: bytes) -> MessageType:
    """Derive ``MessageType`` from an XML payload's root element (XÖV style), if it is XML."""
    try:
        root = x.parse_safely(content)
        qname = etree.QName(root)
        return MessageType(code=qname.localname, payload_schema=qname.namespace or "urn:none")
    except etree.XMLSyntaxError:
        return MessageType(code="unknown", payload_schema="urn:none")


class XtaSimulator(ThreadedServer):
    """The XTA server. ``start()`` binds (port 0 picks a free port) and returns the service URL."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        xsd_dir: Path | None = None,
        mtom: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._host, self._port = host, port
        # XTA servers demand HTTPS with a client certificate; a server-side context with
        # CERT_REQUIRED makes the simulator do the same.
        self._tls = tls
        # With the official XSDs at hand the simulator rejects schema-invalid requests, as a
        # strict real server would.
        self._validator = XtaSchemaValidator(xsd_dir) if xsd_dir is not None else None
        self.mtom = mtom
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("simulator already running")
        handler = type("_BoundHandler", (_Handler,), {"simulator": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        if self._tls is not None:
            self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="xta-simulator",
            daemon=True,
        )
        self._thread.start()
        logger.info("xta simulator listening", extra={"url": self.url})
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not running")
        host, port = self._server.server_address[:2]
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host!s}:{port}/xta"

    # -- Python API -----------------------------------------------------------------------------

    def create_mailbox(self, reader: str) -> None:
        with self._state.lock:
            self._state.mailboxes.setdefault(reader, [])

    def put(
        self,
        reader: str | PartyId,
        content: bytes,
        *,
        author: str | PartyId = "sim:absender",
        filename: str | None = None,
        content_type: str = "application/xml",
        service: str = "urn:poststelle:xta-sim",
        message_type: MessageType | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> str:
        """Drop a message (with the container's ``attachments``) into ``reader``'s mailbox
        (created if absent); returns its MessageID."""
        reader_id = reader if isinstance(reader, PartyId) else PartyId(reader)
        author_id = author if isinstance(author, PartyId) else PartyId(author)
        message_id = _new_message_id()
        metadata = XtaMetadata(
            message_id=message_id,
            author=author_id,
            reader=reader_id,
            service=service,
            message_type=message_type or _guess_message_type(content),
            business_scenario="XTA_SIM",
            size=len(content) or None,
            delivery=_now(),
        )
        message = XtaMessage(
            metadata=metadata,
            content=content,
            content_type=content_type,
            filename=filename,
            attachments=attachments,
        )
        with self._state.lock:
            self._state.mailboxes.setdefault(reader_id.value, []).append(message)
        logger.info(
            "xta simulator put", extra={"reader": reader_id.value, "message_id": message_id}
        )
        return message_id

    def offer(
        self, reader: str, service: str, parameters: tuple[ServiceParameter, ...] = ()
    ) -> None:
        """Let ``reader`` offer ``service`` (for ``lookupService``; creates the mailbox). Once
        a reader offers one service, every other one counts as not offered."""
        with self._state.lock:
            self._state.mailboxes.setdefault(reader, [])
            self._state.services.setdefault(reader, {})[service] = parameters

    def respond_sync(self, reader: str, responder: SyncResponder) -> None:
        """Make ``reader`` a synchronous service: ``sendMessageSync`` to it is answered with
        ``responder(request)``; to any other reader it is a ``SyncAsyncException``."""
        with self._state.lock:
            self._state.mailboxes.setdefault(reader, [])
            self._state.sync[reader] = responder

    def held(self) -> list[XtaMessage]:
        """Messages sent with ``NotBefore`` in the future, not yet in their reader's mailbox."""
        with self._state.lock:
            return list(self._state.held.values())

    def mailbox(self, reader: str) -> list[XtaMessage]:
        with self._state.lock:
            return list(self._state.mailboxes.get(reader, []))

    def transport_report(self, message_id: str) -> TransportReport | None:
        with self._state.lock:
            sent = self._state.sent.get(message_id)
            return sent.report if sent else None

    def inject(self, rule: FaultRule) -> None:
        with self._state.lock:
            self._state.faults.append(rule)

    def pending_faults(self) -> list[FaultRule]:
        """The injected rules not yet used up (a copy): a rule gone from here has hit."""
        with self._state.lock:
            return [replace(rule) for rule in self._state.faults]

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    @property
    def exchanges(self) -> list[Exchange]:
        with self._state.lock:
            return list(self._state.exchanges)

    def calls(self, operation: str) -> int:
        """How many requests for ``operation`` arrived (answered or not)."""
        with self._state.lock:
            return self._state.arrivals.count(operation)

    # -- request handling (called from handler threads) ----------------------------------------

    def _take_fault(self, operation: str) -> FaultRule | None:
        with self._state.lock:
            for rule in self._state.faults:
                if rule.operation in ("*", operation):
                    taken = replace(rule, times=1)
                    rule.times -= 1
                    if rule.times <= 0:
                        self._state.faults.remove(rule)
                    return taken
        return None

    def _record(self, exchange: Exchange) -> None:
        with self._state.lock:
            self._state.exchanges.append(exchange)

    def handle_soap(
        self, body: bytes, content_type: str
    ) -> tuple[_Reply | None, str, FaultRule | None]:
        """Return (reply envelope, operation, fault rule in effect). The caller serialises."""
        try:
            doc = x.parse_safely(body)
        except etree.XMLSyntaxError as exc:
            env = x.fault_envelope(
                "",
                None,
                _new_message_id(),
                exception=None,
                code="9000",
                reason=f"not well-formed: {exc}",
                sender=True,
            )
            return env, "unknown", None
        header = doc.find(x.q(x.NS_SOAP12, "Header"))
        action = (header.findtext(x.q(x.NS_WSA, "Action")) if header is not None else None) or ""
        action = action.strip() or _action_from_content_type(content_type)
        relates_to = header.findtext(x.q(x.NS_WSA, "MessageID")) if header is not None else None
        operation = ACTIONS.get(action, "unknown")
        with self._state.lock:
            self._state.arrivals.append(operation)
            self._release_due()
        rule = self._take_fault(operation)
        if rule is not None and rule.kind in ("delay", "drop") and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and rule.kind == "fault":
            env = x.fault_envelope(
                action,
                relates_to,
                _new_message_id(),
                exception=rule.exception,
                code=rule.code,
                reason=rule.reason,
                sender=False,
            )
            return _Reply(env, None, None), operation, rule
        if rule is not None and rule.kind == "drop" and not rule.after_processing:
            return None, operation, rule
        try:
            if self._validator is not None:
                problems = self._validator.errors(body)
                if problems:
                    raise SimulatorError(
                        "ParameterIsNotValidException",
                        "9000",
                        "request violates the XTA schemas: " + "; ".join(problems[:5]),
                    )
            env, out_header, out_body = x.envelope(action, relates_to, _new_message_id())
            reply = _Reply(env, out_header, out_body)
            if operation == "unknown":
                raise SimulatorError(None, "9000", f"unknown action {action!r}")
            handler = getattr(self, f"_op_{operation}", None)
            if handler is None:
                raise SimulatorError(None, "9000", f"{operation} is not simulated")
            handler(doc, header, reply, rule)
            return reply, operation, rule
        except SimulatorError as err:
            env = x.fault_envelope(
                action,
                relates_to,
                _new_message_id(),
                exception=err.exception,
                code=err.code,
                reason=err.reason,
                sender=err.sender,
            )
        return _Reply(env, None, None), operation, rule

    def _release_due(self) -> None:
        """Move held messages whose NotBefore has come into their readers' mailboxes."""
        now = _now()
        for message_id, message in list(self._state.held.items()):
            not_before = message.metadata.not_before
            if not_before is None or not_before <= now:
                del self._state.held[message_id]
                self._state.mailboxes.setdefault(message.metadata.reader.value, []).append(message)

    def _account(self, header: Any) -> str:
        party = x.party_from_header(header)
        if party is None:
            raise SimulatorError("PermissionDeniedException", "9012", "Author header missing")
        with self._state.lock:
            if party.value not in self._state.mailboxes:
                raise SimulatorError(
                    "PermissionDeniedException", "9012", f"Account nicht vorhanden: {party.value}"
                )
        return party.value

    @staticmethod
    def _body_child(doc: Any, ns: str, local: str) -> Any:
        el = doc.find(f"{x.q(x.NS_SOAP12, 'Body')}/{x.q(ns, local)}")
        if el is None:
            raise SimulatorError("ParameterIsNotValidException", "9020", f"{local} missing")
        return el

    # ManagementPort

    def _message_id_in(self, doc: Any) -> str:
        return (self._body_child(doc, x.NS_WSA, "MessageID").text or "").strip()

    def _sent_by(self, account: str, message_id: str, exception: str) -> _Sent:
        """Under the state's lock: what ``account`` sent as ``message_id``; fault 9070, as
        ``exception``, when it sent nothing under that id."""
        sent = self._state.sent.get(message_id)
        if sent is None or sent.metadata.author.value != account:
            raise SimulatorError(exception, "9070", "MessageID für den Account nicht bekannt.")
        return sent

    def _op_checkAccountActive(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        self._account(header)

    def _op_createMessageId(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        self._account(header)
        message_id = _new_message_id()
        with self._state.lock:
            self._state.issued_ids.add(message_id)
        x.sub(r.body, x.NS_WSA, "MessageID", message_id)

    def _op_getTransportReport(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        account = self._account(header)
        message_id = self._message_id_in(doc)
        with self._state.lock:
            sent = self._sent_by(account, message_id, "InvalidMessageIDException")
        x.transport_report_element(r.body, sent.report, sent.metadata)

    def _op_lookupService(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        self._account(header)
        req = self._body_child(doc, x.NS_XTA, "LookupServiceRequest")
        try:
            queries = x.lookup_queries(req)
        except ValueError as exc:
            raise SimulatorError("ParameterIsNotValidException", "9020", str(exc)) from exc
        response = x.sub(r.body, x.NS_XTA, "LookupServiceResponse")
        results = x.sub(response, x.NS_XTA, "LookupServiceResultList")
        with self._state.lock:
            for reader, service in queries:
                offered = self._state.services.get(reader.value)
                if reader.value not in self._state.mailboxes:
                    available: bool | None = False  # no such reader at all
                elif offered is None:
                    available = None
                else:
                    available = service in offered
                params = offered.get(service, ()) if offered else ()
                x.lookup_result_element(results, reader, service, available, params)

    def _op_cancelMessage(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        account = self._account(header)
        message_id = self._message_id_in(doc)
        with self._state.lock:
            # cancelMessage declares no InvalidMessageIDException: an unknown id is a
            # parameter that is not valid.
            sent = self._sent_by(account, message_id, "ParameterIsNotValidException")
            if message_id in self._state.cancelled:
                return  # a repeat whose first answer was lost
            if message_id not in self._state.held:
                raise SimulatorError(
                    "CancelDeniedException",
                    "9080",
                    "Transportauftrag nicht mehr stornierbar (ohne NotBefore oder Termin erreicht)",
                )
            del self._state.held[message_id]
            self._state.cancelled.add(message_id)
            now = _now()
            sent.report = TransportReport(
                message_id,
                TransportStatus.RED,
                now,
                SERVER_IDENTITY,
                errors=(x.record("cancelled", "Transportauftrag storniert", now),),
            )
        logger.info("xta simulator cancelled message", extra={"message_id": message_id})

    # SendXtaPort

    def _message_to_send(self, doc: Any, header: Any) -> XtaMessage:
        """The message of a sendMessage or sendMessageSync: metadata from the header, content
        from the body's GenericContentContainer."""
        md = header.find(x.q(x.NS_META, "MessageMetaData")) if header is not None else None
        if md is None:
            raise SimulatorError("ParameterIsNotValidException", "9020", "MessageMetaData missing")
        gcc = self._body_child(doc, x.NS_XTA, "GenericContentContainer")
        try:
            return x.message_from(md, gcc)
        except (ValueError, AttributeError) as exc:
            raise SimulatorError("ParameterIsNotValidException", "9022", str(exc)) from exc

    def _check_sendable(self, m: XtaMetadata) -> None:
        """Under the state's lock: the author has an account and the MessageID is new."""
        if m.author.value not in self._state.mailboxes:
            raise SimulatorError(
                "PermissionDeniedException",
                "9012",
                f"Account nicht vorhanden: {m.author.value}",
            )
        if m.message_id in self._state.sent:
            raise SimulatorError(
                "ParameterIsNotValidException", "9024", "MessageID ist bereits vergeben."
            )

    def _op_sendMessage(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        message = self._message_to_send(doc, header)
        m = message.metadata
        now = _now()
        with self._state.lock:
            self._check_sendable(m)
            delivered = replace(message, metadata=replace(m, delivery=now))
            target = self._state.mailboxes.get(m.reader.value)
            if target is not None and m.not_before is not None and m.not_before > now:
                self._state.held[m.message_id] = delivered
                report = TransportReport(m.message_id, TransportStatus.OPEN, now, SERVER_IDENTITY)
            elif target is not None:
                target.append(delivered)
                report = TransportReport(
                    m.message_id,
                    TransportStatus.GREEN,
                    now,
                    SERVER_IDENTITY,
                    infos=(x.record("delivered", "zugestellt", now),),
                )
            else:
                report = TransportReport(
                    m.message_id,
                    TransportStatus.RED,
                    now,
                    SERVER_IDENTITY,
                    errors=(x.record("9032", f"Fehler bei der Zustellung: {m.reader.value}", now),),
                )
            self._state.sent[m.message_id] = _Sent(m, report)
        logger.info(
            "xta simulator accepted message",
            extra={"message_id": m.message_id, "reader": m.reader.value, "status": report.status},
        )

    def _op_sendMessageSync(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        message = self._message_to_send(doc, header)
        m = message.metadata
        with self._state.lock:
            self._check_sendable(m)
            responder = self._state.sync.get(m.reader.value)
            if responder is None:
                raise SimulatorError(
                    "SyncAsyncException",
                    "9040",
                    f"Dienst von {m.reader.value} nur asynchron erreichbar",
                )
            # Reserved at once: a concurrent call under the same id meets 9024.
            self._state.sent[m.message_id] = _Sent(
                m, TransportReport(m.message_id, TransportStatus.OPEN, _now(), SERVER_IDENTITY)
            )
        try:
            content = responder(message)  # outside the lock: a responder may take its time
        except Exception as exc:
            with self._state.lock:
                del self._state.sent[m.message_id]  # nothing was answered: it may be sent again
            raise SimulatorError(
                "XTAWSTechnicalProblemException", "9030", f"Leser antwortet nicht: {exc}", False
            ) from exc
        now = _now()
        answer = XtaMessage(
            metadata=XtaMetadata(
                message_id=_new_message_id(),
                author=m.reader,
                reader=m.author,
                service=m.service,
                message_type=_guess_message_type(content),
                business_scenario=m.business_scenario,
                in_reply_to=(m.message_id,),
                delivery=now,
                size=len(content) or None,
            ),
            content=content,
            filename="antwort.xml",
        )
        with self._state.lock:
            self._state.sent[m.message_id] = _Sent(
                m,
                TransportReport(
                    m.message_id,
                    TransportStatus.GREEN,
                    now,
                    SERVER_IDENTITY,
                    infos=(x.record("answered", "synchron beantwortet", now),),
                ),
            )
        x.metadata_element(r.header, answer.metadata)
        x.container_element(r.body, answer)

    # MsgBoxPort

    def _msgbox_response(self, oh: Any, request_id: str, pending: int) -> None:
        resp = x.sub(oh, x.NS_OSCI, "MsgBoxResponse", MsgBoxRequestID=request_id)
        # 0 is written out on purpose: it is the value zeep 4.3.3 loses.
        x.sub(resp, x.NS_OSCI, "ItemsPending", str(pending))

    def _open_iterator(self, reader: str) -> str:
        request_id = f"urn:uuid:{uuid.uuid4()}"
        self._state.iterators[request_id] = _Iterator(reader)
        return request_id

    def _op_getStatusList(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        reader = self._account(header)
        req = self._body_child(doc, x.NS_OSCI, "MsgBoxStatusListRequest")
        limit = int(req.get("maxListItems") or 1000)
        with self._state.lock:
            messages = self._state.mailboxes[reader]
            request_id = self._open_iterator(reader)
            listed = messages[:limit]
            pending = len(messages) - len(listed)
            iterator = self._state.iterators[request_id]
            iterator.limit = limit
            iterator.listed = [m.metadata.message_id for m in listed]
        if rule is not None and rule.kind == "duplicate":
            listed = [m for message in listed for m in (message, message)]
        self._status_page(r, request_id, listed, pending)

    def _status_page(
        self, r: _Reply, request_id: str, listed: list[XtaMessage], pending: int
    ) -> None:
        if listed or pending:
            self._msgbox_response(r.header, request_id, pending)
        else:
            self._no_message(r, request_id, "NoMatch")
        status_list = x.sub(r.body, x.NS_OSCI, "MsgStatusList")
        for message in listed:
            x.metadata_element(status_list, message.metadata)

    @staticmethod
    def _no_message(r: _Reply, request_id: str, reason: str) -> None:
        resp = x.sub(r.header, x.NS_OSCI, "MsgBoxResponse", MsgBoxRequestID=request_id)
        x.sub(resp, x.NS_OSCI, "NoMessageAvailable", reason=_REASONS + reason)

    def _op_getNextStatusList(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        reader = self._account(header)
        req = self._body_child(doc, x.NS_OSCI, "MsgBoxGetNextRequest")
        request_id = str(req.get("MsgBoxRequestID", ""))
        with self._state.lock:
            iterator = self._state.iterators.get(request_id)
            if iterator is None or iterator.reader != reader:
                # getNextStatusList declares no InvalidMessageIDException: OSCI's answer to a
                # request id it does not know is this reason.
                self._no_message(r, request_id, "RequestIdInvalid")
                x.sub(r.body, x.NS_OSCI, "MsgStatusList")
                return
            fresh = [
                m
                for m in self._state.mailboxes[reader]
                if m.metadata.message_id not in iterator.listed
            ]
            listed = fresh[: iterator.limit]
            iterator.listed += [m.metadata.message_id for m in listed]
            pending = len(fresh) - len(listed)
        self._status_page(r, request_id, listed, pending)

    def _deliver(self, r: _Reply, request_id: str, message: XtaMessage, pending: int) -> None:
        x.metadata_element(r.header, message.metadata)
        self._msgbox_response(r.header, request_id, pending)
        if self.mtom:
            r.attachments["message"] = message.content
            for index, attachment in enumerate(message.attachments, 1):
                r.attachments[f"message-attachment-{index}"] = attachment.content
        x.container_element(r.body, message, xop_id="message" if self.mtom else None)

    def _op_getMessage(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        reader = self._account(header)
        req = self._body_child(doc, x.NS_OSCI, "MsgBoxFetchRequest")
        wanted = [
            (e.text or "").strip()
            for e in req.iterfind(f"{x.q(x.NS_OSCI, 'MsgSelector')}/{x.q(x.NS_WSA, 'MessageID')}")
        ]
        with self._state.lock:
            messages = self._state.mailboxes[reader]
            if rule is not None and rule.kind == "vanish":
                logger.info("xta simulator lets listed messages vanish", extra={"ids": wanted})
                messages[:] = [m for m in messages if m.metadata.message_id not in wanted]
            found = [m for m in messages if not wanted or m.metadata.message_id in wanted]
            if not found:
                raise SimulatorError(
                    "InvalidMessageIDException", "9070", "MessageID für den Account nicht bekannt."
                )
            request_id = self._open_iterator(reader)
            self._state.iterators[request_id].delivered.append(found[0].metadata.message_id)
            pending = len(messages) - 1
        self._deliver(r, request_id, found[0], pending)

    def _iterator(self, req: Any) -> tuple[str, _Iterator, list[str]]:
        request_id = str(req.get("MsgBoxRequestID", ""))
        received = [(e.text or "").strip() for e in req.findall(x.q(x.NS_OSCI, "LastMsgReceived"))]
        iterator = self._state.iterators.get(request_id)
        if iterator is None:
            raise SimulatorError(
                "InvalidMessageIDException", "9070", f"unknown MsgBoxRequestID {request_id}"
            )
        return request_id, iterator, received

    def _commit(self, reader: str, message_ids: list[str], rule: FaultRule | None) -> None:
        if rule is not None and rule.kind == "duplicate":
            logger.info(
                "xta simulator keeps closed messages (duplicate)", extra={"ids": message_ids}
            )
            return
        box = self._state.mailboxes.get(reader, [])
        # Idempotent: ids already removed are ignored, so a repeated close is harmless.
        box[:] = [m for m in box if m.metadata.message_id not in message_ids]

    def _op_getNextMessage(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        reader = self._account(header)
        req = self._body_child(doc, x.NS_OSCI, "MsgBoxGetNextRequest")
        with self._state.lock:
            request_id, iterator, received = self._iterator(req)
            self._commit(reader, received, rule)
            messages = self._state.mailboxes[reader]
            candidates = [m for m in messages if m.metadata.message_id not in iterator.delivered]
            if not candidates:
                raise SimulatorError("InvalidMessageIDException", "9070", "no further message")
            iterator.delivered.append(candidates[0].metadata.message_id)
            pending = len(candidates) - 1
        self._deliver(r, request_id, candidates[0], pending)

    def _op_close(self, doc: Any, header: Any, r: _Reply, rule: Any) -> None:
        reader = self._account(header)
        req = self._body_child(doc, x.NS_OSCI, "MsgBoxCloseRequest")
        with self._state.lock:
            request_id, _, received = self._iterator(req)
            self._commit(reader, received, rule)
            del self._state.iterators[request_id]

    # -- admin ----------------------------------------------------------------------------------

    def handle_admin(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")[1:]]
        if parts == ["mailboxes"] and method == "GET":
            with self._state.lock:
                return 200, {
                    reader: [m.metadata.message_id for m in box]
                    for reader, box in self._state.mailboxes.items()
                }
        if len(parts) == 2 and parts[0] == "mailboxes" and method == "POST":
            self.create_mailbox(parts[1])
            return 201, {"reader": parts[1]}
        if len(parts) == 3 and parts[0] == "mailboxes" and parts[2] == "messages":
            if method == "GET":
                return 200, [_summary(m) for m in self.mailbox(parts[1])]
            if method == "POST":

                def arg(name: str, default: str | None = None) -> str | None:
                    return query.get(name, [default])[0]

                message_id = self.put(
                    parts[1],
                    body,
                    author=arg("author", "sim:absender") or "sim:absender",
                    filename=arg("filename"),
                    content_type=arg("content_type", "application/xml") or "application/xml",
                    service=arg("service", "urn:poststelle:xta-sim") or "urn:poststelle:xta-sim",
                )
                return 201, {"message_id": message_id}
        if parts == ["faults"] and method == "POST":
            try:
                self.inject(FaultRule(**json.loads(body or b"{}")))
            except (TypeError, ValueError) as exc:
                return 400, {"error": str(exc)}
            return 201, {"ok": True}
        if parts == ["faults"] and method == "DELETE":
            self.clear_faults()
            return 200, {"ok": True}
        return 404, {"error": f"no admin route {method} {path}"}


def _summary(m: XtaMessage) -> dict[str, Any]:
    md = m.metadata
    return {
        "message_id": md.message_id,
        "author": md.author.value,
        "reader": md.reader.value,
        "service": md.service,
        "message_type": asdict(md.message_type),
        "filename": m.filename,
        "content_type": m.content_type,
        "size": len(m.content),
        "delivery": md.delivery.isoformat() if md.delivery else None,
    }


def _action_from_content_type(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "action":
            return value.strip('"')
    return ""


class _Handler(BaseHTTPRequestHandler):
    simulator: XtaSimulator
    server_version = "PoststelleXtaSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("xta simulator http " + format, *args)

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(413, "text/plain", b"request too large")
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout hit during an injected delay).
            logger.info("xta simulator client went away before the answer")

    def _admin(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        status, payload = self.simulator.handle_admin(method, url.path, parse_qs(url.query), body)
        self._send(status, "application/json", json.dumps(payload, indent=2).encode())

    def do_GET(self) -> None:
        if self.path.startswith("/admin/"):
            self._admin("GET")
        else:
            self._send(404, "text/plain", b"XTA endpoints accept POST only")

    def do_DELETE(self) -> None:
        self._admin("DELETE")

    def do_POST(self) -> None:
        if self.path.startswith("/admin/"):
            self._admin("POST")
            return
        body = self._read_body()
        if body is None:
            return
        sim = self.simulator
        try:
            reply, operation, rule = sim.handle_soap(body, self.headers.get("Content-Type", ""))
        except Exception:
            # A simulator bug must show up as a server error, not as a dropped connection that
            # the client would retry as if it had been injected.
            logger.exception("xta simulator failed")
            self._send(500, "text/plain", b"simulator error")
            return
        if reply is None or (rule is not None and rule.kind == "drop"):
            sim._record(Exchange(operation, body, None, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        env = reply.envelope
        is_fault = env.find(f"{x.q(x.NS_SOAP12, 'Body')}/{x.q(x.NS_SOAP12, 'Fault')}") is not None
        status = 500 if is_fault else 200
        if is_fault and env.findtext(f".//{x.q(x.NS_SOAP12, 'Value')}") == "s:Sender":
            status = 400
        payload, content_type = _serialise(env, reply.attachments)
        sim._record(Exchange(operation, body, payload, status))
        self._send(status, content_type, payload)


def _serialise(env: Any, attachments: dict[str, bytes]) -> tuple[bytes, str]:
    root = etree.tostring(env, xml_declaration=True, encoding="utf-8")
    if not attachments:
        return root, "application/soap+xml; charset=utf-8"
    # MTOM: each payload travels as its own binary MIME part, as real XTA servers send it.
    boundary = f"uuid:{uuid.uuid4()}"
    chunks = [
        f"--{boundary}\r\nContent-Type: application/xop+xml; charset=utf-8; "
        f'type="application/soap+xml"\r\nContent-Transfer-Encoding: 8bit\r\n'
        f"Content-ID: <root>\r\n\r\n".encode()
        + root
    ]
    for content_id, content in attachments.items():
        chunks.append(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{content_id}>\r\n\r\n".encode()
            + content
        )
    body = b"\r\n".join(chunks) + f"\r\n--{boundary}--\r\n".encode()
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        f'start="<root>"; start-info="application/soap+xml"'
    )
    return body, content_type


def iter_exchanges(exchanges: list[Exchange]) -> Iterator[tuple[str, str, bytes]]:
    """(operation, "request"|"response", body) for every recorded SOAP body."""
    for e in exchanges:
        yield e.operation, "request", e.request
        if e.response is not None:
            yield e.operation, "response", e.response
