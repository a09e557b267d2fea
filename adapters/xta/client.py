"""XTA 2.1.1 web service client (zeep, SOAP 1.2, WS-Addressing).

zeep writes the requests from the WSDL and parses the replies; this module adds what XTA needs on
top: the reader/author SOAP headers, typed errors, retries with exponential backoff for transient
failures only, idempotent ``sendMessage`` (fault 9024) and workarounds for three zeep 4.3.3 quirks
on this WSDL:

- zeep drops a choice whose value is falsy, so ``ItemsPending`` 0 vanishes from the
  ``MsgBoxResponse`` header: we read that header from the raw reply envelope.
- zeep insists on at least one ``LastMsgReceived`` although the sequence around it is optional:
  an empty list is sent as ``xsd.SkipValue``.
- zeep strips CR/LF at the edges of binary MTOM parts: :class:`XtaTransport` inlines MTOM replies
  exactly before zeep parses them.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import requests
import requests.adapters
import zeep
import zeep.exceptions
from lxml import etree
from tenacity import (
    Retrying,
)
from zeep import xsd
from zeep.plugins import Plugin

from poststelle.adapters._retry import retry_policy
from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._errors import (
    FAULT_MESSAGE_ID_ALREADY_USED,
    XtaCancelDenied,
    XtaError,
    XtaInvalidMessageId,
    XtaParameterInvalid,
    XtaPermanentError,
    XtaPermissionDenied,
    XtaSyncAsyncMismatch,
    XtaTechnicalProblem,
    XtaTransientError,
)
from poststelle.adapters.xta._model import (
    Attachment,
    FetchedMessage,
    MessageType,
    PartyId,
    ReportRecord,
    ServiceLookup,
    ServiceParameter,
    StatusList,
    TransportReport,
    TransportStatus,
    XtaMessage,
    XtaMetadata,
)
from poststelle.adapters.xta._schemas import XtaSchemaLocator
from poststelle.adapters.xta._transport import XtaTransport

__all__ = ["SendOutcome", "XtaClient"]

logger = logging.getLogger(__name__)

NS_XTA = "http://xoev.de/transport/xta/211"
NS_OSCI = "http://www.osci.eu/ws/2008/05/transport"
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_META = "http://www.osci.eu/ws/2014/10/transport"

# NoMessageAvailable reason of a MsgBoxResponse whose MsgBoxRequestID the server does not know.
REASON_REQUEST_ID_INVALID = (
    "http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/RequestIdInvalid"
)

_BINDINGS = {
    "ManagementPort": f"{{{NS_XTA}}}managementHttpsBinding",
    "SendXtaPort": f"{{{NS_XTA}}}sendXTAHttpsBinding",
    "MsgBoxPort": f"{{{NS_XTA}}}msgBoxHttpsBinding",
}

_T = TypeVar("_T")


class SendOutcome(enum.Enum):
    ACCEPTED = "accepted"
    # Fault 9024: the server already holds a message with this MessageID (an earlier attempt
    # went through but its answer was lost).
    ALREADY_ACCEPTED = "already-accepted"


class _ReplyCapture(Plugin):
    """Keep the last raw reply envelope per thread (zeep loses falsy choice values)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        self._local.envelope = envelope
        return envelope, http_headers

    def take(self) -> Any:
        envelope = getattr(self._local, "envelope", None)
        self._local.envelope = None
        return envelope


_PERMANENT_BY_EXCEPTION: dict[str, type[XtaError]] = {
    "PermissionDeniedException": XtaPermissionDenied,
    "InvalidMessageIDException": XtaInvalidMessageId,
    "XTAWSTechnicalProblemException": XtaTechnicalProblem,
    "ParameterIsNotValidException": XtaParameterInvalid,
    "CancelDeniedException": XtaCancelDenied,
    "SyncAsyncException": XtaSyncAsyncMismatch,
}


class _PinnedVerifyAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, verify: bool | str) -> None:
        super().__init__()
        self._verify = verify

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        return super().send(request, stream, timeout, self._verify, cert, proxies)


class XtaClient:
    """Synchronous XTA client; one instance may be shared by threads.

    Every public method retries transient failures (connection errors, timeouts, HTTP 5xx without
    a SOAP fault, ``XTAWSTechnicalProblemException``) with exponential backoff and raises
    :class:`XtaTransientError` when the attempts are used up; SOAP faults that retrying cannot fix
    raise an :class:`XtaPermanentError` subclass at once.
    """

    def __init__(
        self,
        settings: XtaConnectionSettings,
        *,
        plugins: Sequence[Plugin] = (),
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self._session = session or requests.Session()
        if settings.client_cert is not None:
            self._session.cert = (
                (str(settings.client_cert), str(settings.client_key))
                if settings.client_key is not None
                else str(settings.client_cert)
            )
        verify = str(settings.ca_bundle) if settings.ca_bundle is not None else settings.verify_tls
        self._session.verify = verify
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify
        # (psf/requests#3829): an operator's CA for the XTA server would silently lose.
        self._session.mount("https://", _PinnedVerifyAdapter(verify))
        transport = XtaTransport(
            XtaSchemaLocator(settings.xsd_dir),
            self._session,
            (settings.connect_timeout, settings.read_timeout),
        )
        self._capture = _ReplyCapture()
        # zeep adds wsa:Action, wsa:MessageID and wsa:To by itself because the WSDL declares
        # wsam:Action on every operation; adding WsAddressingPlugin would duplicate them.
        self._zeep = zeep.Client(  # type: ignore[no-untyped-call]
            str(settings.wsdl),
            transport=transport,
            plugins=[self._capture, *plugins],
            # A container of up to 40 MB is one base64 text node of ~53 MB; libxml2 refuses
            # text nodes over 10 MB unless told. Entities and DTDs stay forbidden (zeep's
            # defaults), and the message itself is parsed again by the hub's safe parser.
            settings=zeep.Settings(xml_huge_tree=True),  # type: ignore[no-untyped-call]
        )
        self._services = {
            port: self._zeep.create_service(binding, settings.url_for(port))  # type: ignore[no-untyped-call]
            for port, binding in _BINDINGS.items()
        }

    def close_session(self) -> None:
        self._session.close()

    # -- ManagementPort -------------------------------------------------------------------------

    def check_account_active(self, account: PartyId) -> bool:
        """True when the account may use the server; False on ``PermissionDeniedException``."""
        try:
            self._call("ManagementPort", "checkAccountActive", _author_header(account))
        except XtaPermissionDenied:
            return False
        return True

    def create_message_id(self, author: PartyId) -> str:
        result = self._call("ManagementPort", "createMessageId", _author_header(author))
        with _reading("createMessageId"):
            return _text(result)

    def get_transport_report(self, author: PartyId, message_id: str) -> TransportReport:
        result = self._call(
            "ManagementPort", "getTransportReport", _author_header(author), message_id
        )
        with _reading("getTransportReport"):
            return _transport_report(result)

    def lookup_service(
        self, author: PartyId, queries: Sequence[tuple[PartyId, str]]
    ) -> tuple[ServiceLookup, ...]:
        """``lookupService``: for each (reader, service) whether the reader offers the service
        (``available`` None when the server does not know), in the order asked.

        Read from the raw reply: zeep drops ``ServiceIsAvailable`` when it is false.
        """
        if not queries:
            raise ValueError("lookup_service needs at least one (reader, service) query")
        _, envelope = self._call_raw(
            "ManagementPort",
            "lookupService",
            _author_header(author),
            LookupServiceRequestList=[
                {"LookupService": {"Reader": _party(reader), "ServiceType": service}}
                for reader, service in queries
            ],
        )
        with _reading("lookupService"):
            return _lookup_results(envelope)

    def is_service_available(self, author: PartyId, reader: PartyId, service: str) -> bool | None:
        """``lookupService`` for one reader and service: True, False, or None (unknown)."""
        for result in self.lookup_service(author, [(reader, service)]):
            if result.reader.value == reader.value and result.service == service:
                return result.available
        raise XtaPermanentError(
            f"reply does not answer the lookup of {service} at {reader.value}",
            operation="lookupService",
        )

    def cancel_message(self, author: PartyId, message_id: str) -> None:
        """``cancelMessage``: withdraw a transport order the server still holds (one sent
        with ``not_before`` that has not been reached). Raises :class:`XtaCancelDenied` when
        it can no longer be withdrawn and :class:`XtaParameterInvalid` for a MessageID the
        server does not know for this author."""
        self._call("ManagementPort", "cancelMessage", _author_header(author), message_id)

    # -- SendXtaPort ----------------------------------------------------------------------------

    def send_message(self, message: XtaMessage) -> SendOutcome:
        """Hand a message to the server under its ``metadata.message_id`` (from
        :meth:`create_message_id`). Safe to repeat: a repeated id is reported as already accepted.
        """
        header = {"MessageMetaData": _metadata_to_zeep(message)}
        try:
            self._call("SendXtaPort", "sendMessage", header, **_container_to_zeep(message))
        except XtaPermanentError as exc:
            if exc.code == FAULT_MESSAGE_ID_ALREADY_USED:
                logger.info(
                    "xta send already accepted",
                    extra={"message_id": message.metadata.message_id, "code": exc.code},
                )
                return SendOutcome.ALREADY_ACCEPTED
            raise
        return SendOutcome.ACCEPTED

    def send_message_sync(self, message: XtaMessage) -> XtaMessage:
        """``sendMessageSync``: hand a message to a synchronous service and return the
        reader's answer (its metadata from the reply's ``MessageMetaData`` header).

        Raises :class:`XtaSyncAsyncMismatch` when the reader's service is asynchronous only.
        Not idempotent as ``send_message`` is: a repeat after a lost answer meets fault 9024
        and raises, since the answer cannot be fetched again.
        """
        header = {"MessageMetaData": _metadata_to_zeep(message)}
        result = self._call("SendXtaPort", "sendMessageSync", header, **_container_to_zeep(message))
        with _reading("sendMessageSync"):
            return _message_from(result, "sendMessageSync")

    # -- MsgBoxPort -----------------------------------------------------------------------------

    def get_status_list(self, reader: PartyId, max_items: int = 100) -> StatusList:
        if max_items < 1:
            raise ValueError("max_items must be positive")
        result, envelope = self._call_raw(
            "MsgBoxPort",
            "getStatusList",
            _author_header(reader),
            ListForm="MessageMetaData",
            maxListItems=max_items,
        )
        with _reading("getStatusList"):
            request_id, pending, reason = _msgbox_response(envelope)
            entries = tuple(_metadata_from_zeep(m) for m in (result.body.MessageMetaData or []))
            return StatusList(request_id, entries, pending, reason)

    def get_next_status_list(self, reader: PartyId, request_id: str) -> StatusList:
        """``getNextStatusList``: the next page of the listing ``request_id`` (from
        :meth:`get_status_list`, whose ``max_items`` sets the page size). An exhausted listing
        has no entries and a ``no_message_reason``; an unknown ``request_id`` raises
        :class:`XtaInvalidMessageId`."""
        result, envelope = self._call_raw(
            "MsgBoxPort",
            "getNextStatusList",
            _author_header(reader),
            MsgBoxRequestID=request_id,
            LastMsgReceived=xsd.SkipValue,
        )
        with _reading("getNextStatusList"):
            found_id, pending, reason = _msgbox_response(envelope)
            if reason == REASON_REQUEST_ID_INVALID:
                raise XtaInvalidMessageId(
                    f"status list {request_id} unknown to the server",
                    operation="getNextStatusList",
                )
            body = result.body if result is not None else None
            entries = tuple(
                _metadata_from_zeep(m) for m in ((body.MessageMetaData if body else None) or [])
            )
            return StatusList(found_id or request_id, entries, pending, reason)

    def get_message(self, reader: PartyId, message_id: str) -> FetchedMessage:
        result, envelope = self._call_raw(
            "MsgBoxPort",
            "getMessage",
            _author_header(reader),
            MsgSelector={"MessageID": [message_id]},
        )
        with _reading("getMessage"):
            return _fetched(result, envelope)

    def get_next_message(
        self, reader: PartyId, request_id: str, last_received: Sequence[str] = ()
    ) -> FetchedMessage | None:
        """The next message of a fetch iterator, or None when the server has no further one
        (``NoMessageAvailable``, or ``InvalidMessageIDException`` as some servers answer)."""
        try:
            result, envelope = self._call_raw(
                "MsgBoxPort",
                "getNextMessage",
                _author_header(reader),
                MsgBoxRequestID=request_id,
                LastMsgReceived=_last_received(last_received),
            )
        except XtaInvalidMessageId:
            return None
        with _reading("getNextMessage"):
            if result.body is None or _msgbox_response(envelope)[2] is not None:
                return None
            return _fetched(result, envelope)

    def close(self, reader: PartyId, request_id: str, message_ids: Sequence[str]) -> None:
        """Confirm receipt: the server removes the listed messages from the mailbox.

        When an attempt's answer was lost and the retry finds the fetch iterator unknown
        (``InvalidMessageIDException``), the lost attempt closed it: that counts as success.
        """
        self._call_raw(
            "MsgBoxPort",
            "close",
            _author_header(reader),
            MsgBoxRequestID=request_id,
            LastMsgReceived=_last_received(message_ids),
            _accept_on_retry=XtaInvalidMessageId,
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _call(
        self, port: str, operation: str, headers: dict[str, Any], *args: Any, **kw: Any
    ) -> Any:
        return self._call_raw(port, operation, headers, *args, **kw)[0]

    def _call_raw(
        self,
        port: str,
        operation: str,
        headers: dict[str, Any],
        *args: Any,
        _accept_on_retry: type[XtaError] | None = None,
        **kw: Any,
    ) -> tuple[Any, Any]:
        method = getattr(self._services[port], operation)
        attempts = 0

        def attempt() -> tuple[Any, Any]:
            nonlocal attempts
            attempts += 1
            try:
                result = method(*args, _soapheaders=headers, **kw)
            except BaseException as exc:
                self._capture.take()
                error = _translate(operation, exc)
                if _accept_on_retry and attempts > 1 and isinstance(error, _accept_on_retry):
                    logger.info(
                        "xta call took effect before its answer was lost",
                        extra={"operation": operation, "attempt": attempts, "error": str(error)},
                    )
                    return None, None
                raise error from exc
            return result, self._capture.take()

        return self._retrying(operation, attempt)

    def _retrying(self, operation: str, fn: Callable[[], _T]) -> _T:
        policy = retry_policy(
            self.settings, XtaTransientError, logger=logger, service="xta", operation=operation
        )
        retrying = Retrying(**policy)
        return retrying(fn)


# -- errors ------------------------------------------------------------------------------------


def _translate(operation: str, exc: BaseException) -> BaseException:
    """Map a failure of one attempt to a typed XTA error (unknown failures pass unchanged)."""
    name = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, XtaError):
        return exc
    if isinstance(exc, requests.RequestException):
        # Timeouts and dropped connections (ConnectionError) alike are worth another attempt.
        return XtaTransientError(name, operation=operation)
    if isinstance(exc, zeep.exceptions.Fault):
        return _fault_error(operation, exc)
    if isinstance(exc, zeep.exceptions.TransportError):
        status = int(getattr(exc, "status_code", 0) or 0)
        if status >= 500 or status == 0:
            return XtaTransientError(f"HTTP {status}: {name}", operation=operation)
        return XtaPermanentError(f"HTTP {status}: {name}", operation=operation)
    if isinstance(exc, zeep.exceptions.Error):
        # An unreadable or schema-invalid reply (XMLParseError, ValidationError, a DTD or
        # entities zeep forbids, an unknown element): asking again gets the same answer.
        return XtaPermanentError(f"invalid message: {name}", operation=operation)
    if isinstance(exc, _UNREADABLE):
        # zeep trips over some malformed replies with these (a processing instruction where
        # an element belongs); the reply is unusable, and asking again will not mend it.
        return XtaPermanentError(f"unreadable reply: {name}", operation=operation)
    return exc


_UNREADABLE = (ValueError, TypeError, AttributeError, LookupError)


@contextlib.contextmanager
def _reading(operation: str) -> Iterator[None]:
    """Reading a parsed reply into the model: a reply that lacks what the schema makes
    optional for zeep (a missing Status, MessageID, ...) is a permanent error, not a crash."""
    try:
        yield
    except XtaError:
        raise
    except _UNREADABLE as exc:
        raise XtaPermanentError(
            f"reply lacks what {operation} needs: {type(exc).__name__}: {exc}", operation=operation
        ) from exc


def _fault_error(operation: str, fault: Any) -> XtaError:
    detail = fault.detail
    exception_name: str | None = None
    code: str | None = None
    if detail is not None:
        for child in detail:
            # A detail may hold text or comments beside elements; only elements name an error.
            if not isinstance(getattr(child, "tag", None), str):
                continue
            qname = etree.QName(child)
            if qname.namespace == NS_XTA:
                exception_name = qname.localname
                code = child.findtext(f"{{{NS_XTA}}}errorCode/code")
                break
    if exception_name in _PERMANENT_BY_EXCEPTION:
        cls = _PERMANENT_BY_EXCEPTION[exception_name]
    elif exception_name is not None:
        cls = XtaPermanentError
    else:
        # No XTA detail: SOAP 1.2 says a Receiver fault may succeed later, a Sender fault won't.
        fault_code = str(fault.code or "")
        cls = XtaTransientError if fault_code.endswith("Receiver") else XtaPermanentError
    return cls(
        fault.message or "SOAP fault", operation=operation, exception=exception_name, code=code
    )


# -- zeep value conversion ---------------------------------------------------------------------


def _party(party: PartyId) -> dict[str, Any]:
    identifier: dict[str, Any] = {"_value_1": party.value, "type": party.type}
    if party.name is not None:
        identifier["name"] = party.name
    if party.category is not None:
        identifier["category"] = party.category
    return {"Identifier": identifier}


def _author_header(party: PartyId) -> dict[str, Any]:
    return {"AuthorIdentifier": _party(party)}


def _last_received(ids: Sequence[str]) -> Any:
    # zeep quirk: an empty list fails its minOccurs check although the enclosing sequence is
    # optional; SkipValue leaves the element out, which the schema allows.
    return list(ids) if ids else xsd.SkipValue


def _content_to_zeep(
    content: bytes,
    content_type: str,
    filename: str | None,
    encoding: str | None,
    description: str | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {"_value_1": content, "contentType": content_type}
    if filename:
        value["filename"] = filename
    if encoding:
        value["encoding"] = encoding
    if description:
        value["contentDescription"] = description
    if content:
        value["size"] = len(content)
    return value


def _container_to_zeep(message: XtaMessage) -> dict[str, Any]:
    return {
        "ContentContainer": {
            "Message": _content_to_zeep(
                message.content, message.content_type, message.filename, message.encoding
            ),
            "Attachment": [
                _content_to_zeep(a.content, a.content_type, a.filename, None, a.description)
                for a in message.attachments
            ],
        }
    }


def _metadata_to_zeep(message: XtaMessage) -> dict[str, Any]:
    m = message.metadata
    message_type: dict[str, Any] = {
        "code": m.message_type.code,
        "listURI": m.message_type.list_uri,
        "listVersionID": m.message_type.list_version,
        "payloadSchema": m.message_type.payload_schema,
    }
    if m.message_type.name:
        message_type["name"] = m.message_type.name
    qualifier: dict[str, Any] = {
        "Service": m.service,
        "BusinessScenario": {"Undefined": m.business_scenario},
        "MessageType": message_type,
    }
    if m.subject:
        qualifier = {"Subject": m.subject, **qualifier}
    identification: dict[str, Any] = {"MessageID": m.message_id}
    if m.in_reply_to:
        identification["In-Reply-To"] = list(m.in_reply_to)
    size = len(message.content) + sum(len(a.content) for a in message.attachments)
    metadata: dict[str, Any] = {
        "DeliveryAttributes": {"NotBefore": m.not_before} if m.not_before else {},
        "Originators": {"Author": _party(m.author)},
        "Destinations": {"Reader": _party(m.reader)},
        "MsgIdentification": identification,
        "Qualifier": qualifier,
    }
    if size:
        metadata["MsgSize"] = size
    if m.test_msg:
        metadata["TestMsg"] = True
    return metadata


def _text(value: Any) -> str:
    """The text of a zeep simple-content value (wsa:AttributedURIType and the like)."""
    if value is None:
        return ""
    inner = getattr(value, "_value_1", value)
    return str(inner)


def _party_from_zeep(value: Any) -> PartyId:
    identifier = value.Identifier
    return PartyId(
        value=_text(identifier),
        type=str(identifier.type),
        name=identifier.name,
        category=identifier.category,
    )


def _metadata_from_zeep(value: Any) -> XtaMetadata:
    qualifier = value.Qualifier
    message_type = qualifier.MessageType
    scenario = qualifier.BusinessScenario
    business_scenario = (
        str(scenario.Undefined)
        if getattr(scenario, "Undefined", None) is not None
        else str(scenario.Defined.code)
    )
    identification = value.MsgIdentification
    delivery = value.DeliveryAttributes
    return XtaMetadata(
        message_id=_text(identification.MessageID),
        author=_party_from_zeep(value.Originators.Author),
        reader=_party_from_zeep(value.Destinations.Reader),
        service=str(qualifier.Service),
        message_type=MessageType(
            code=str(message_type.code),
            payload_schema=str(message_type.payloadSchema),
            list_uri=str(message_type.listURI),
            list_version=str(message_type.listVersionID),
            name=message_type.name,
        ),
        business_scenario=business_scenario,
        subject=qualifier.Subject,
        size=int(value.MsgSize) if value.MsgSize is not None else None,
        in_reply_to=tuple(_text(r) for r in (getattr(identification, "In-Reply-To", None) or [])),
        delivery=getattr(delivery, "Delivery", None) if delivery is not None else None,
        test_msg=value.TestMsg in (True, "true", "1"),
        not_before=getattr(delivery, "NotBefore", None) if delivery is not None else None,
    )


def _transport_report(result: Any) -> TransportReport:
    status = result.MessageStatus
    return TransportReport(
        message_id=_text(result.MessageMetaData.MsgIdentification.MessageID),
        status=TransportStatus(int(status.Status)),
        report_time=result.ReportTime,
        server_identity=str(result.XTAServerIdentity),
        errors=_records(status.ErrorList, "Error"),
        warnings=_records(status.WarnList, "Warning"),
        infos=_records(status.InfoList, "Info"),
    )


def _message_from(result: Any, operation: str) -> XtaMessage:
    """The message of a reply that carries ``MessageMetaData`` and a content container."""
    container = result.body.ContentContainer
    if container is None:
        raise XtaPermanentError(
            "encrypted content containers are not supported", operation=operation
        )
    metadata = _metadata_from_zeep(result.header.MessageMetaData)
    message = container.Message
    return XtaMessage(
        metadata=metadata,
        content=bytes(message._value_1 or b""),
        content_type=str(message.contentType),
        filename=message.filename,
        encoding=message.encoding,
        attachments=tuple(
            Attachment(
                content=bytes(a._value_1 or b""),
                content_type=str(a.contentType),
                filename=a.filename,
                description=a.contentDescription,
            )
            for a in (container.Attachment or [])
        ),
    )


def _fetched(result: Any, envelope: Any) -> FetchedMessage:
    message = _message_from(result, "getMessage")
    request_id, pending, _ = _msgbox_response(envelope)
    return FetchedMessage(message=message, request_id=request_id, items_pending=pending)


def _lookup_results(envelope: Any) -> tuple[ServiceLookup, ...]:
    """The ``LookupServiceResult`` list of a raw reply (a nil result answers nothing)."""
    if envelope is None:
        raise XtaPermanentError("no reply envelope captured", operation="lookupService")
    results: list[ServiceLookup] = []
    xsi_nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    path = (
        f"{{{NS_SOAP12}}}Body/{{{NS_XTA}}}LookupServiceResponse/"
        f"{{{NS_XTA}}}LookupServiceResultList/{{{NS_XTA}}}LookupServiceResult"
    )
    for node in envelope.iterfind(path):
        if node.get(xsi_nil) in ("true", "1"):
            continue
        identifier = node.find(f"{{{NS_META}}}Reader/{{{NS_META}}}Identifier")
        value = node.find(f"{{{NS_XTA}}}IsServiceAvailableValue")
        if identifier is None or value is None:
            raise ValueError("LookupServiceResult lacks Reader or IsServiceAvailableValue")
        known = value.findtext(f"{{{NS_XTA}}}ServiceIsAvailable")
        results.append(
            ServiceLookup(
                reader=PartyId(
                    value=(identifier.text or "").strip(),
                    type=identifier.get("type", ""),
                    name=identifier.get("name"),
                    category=identifier.get("category"),
                ),
                service=(node.findtext(f"{{{NS_XTA}}}ServiceType") or "").strip(),
                available=None if known is None else known.strip() in ("true", "1"),
                parameters=tuple(
                    _service_parameter(p) for p in node.iterfind(f"{{{NS_XTA}}}ServiceParameter")
                ),
            )
        )
    return tuple(results)


def _service_parameter(node: Any) -> ServiceParameter:
    kind = node.find(f"{{{NS_XTA}}}ParameterType")
    if kind is None:
        raise ValueError("ServiceParameter lacks its ParameterType")
    return ServiceParameter(
        type_code=(kind.findtext("code") or "").strip(),
        resource=base64.b64decode("".join((node.findtext(f"{{{NS_XTA}}}Resource") or "").split())),
        list_uri=kind.get("listURI", ""),
        list_version=kind.get("listVersionID", ""),
    )


def _msgbox_response(envelope: Any) -> tuple[str, int | None, str | None]:
    """(MsgBoxRequestID, ItemsPending, NoMessageAvailable reason) from the raw reply header.

    Read from the envelope, not from zeep's result: zeep drops the choice ``ItemsPending`` when
    its value is 0.
    """
    if envelope is None:
        raise XtaPermanentError("no reply envelope captured", operation="msgbox")
    node = envelope.find(f"{{{NS_SOAP12}}}Header/{{{NS_OSCI}}}MsgBoxResponse")
    if node is None:
        raise XtaPermanentError("reply lacks the MsgBoxResponse header", operation="msgbox")
    pending_text = node.findtext(f"{{{NS_OSCI}}}ItemsPending")
    no_message = node.find(f"{{{NS_OSCI}}}NoMessageAvailable")
    return (
        node.get("MsgBoxRequestID", ""),
        int(pending_text) if pending_text is not None else None,
        no_message.get("reason") if no_message is not None else None,
    )


def _records(container: Any, item: str) -> tuple[ReportRecord, ...]:
    if container is None:
        return ()
    return tuple(
        ReportRecord(timestamp=r.Timestamp, code=str(r.Code.code), reason=str(r.Reason))
        for r in (getattr(container, item, None) or [])
    )
