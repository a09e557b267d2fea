"""Plain data the XTA client and simulator exchange with their callers (no zeep, no lxml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

__all__ = [
    "Attachment",
    "FetchedMessage",
    "MessageType",
    "PartyId",
    "ReportRecord",
    "ServiceLookup",
    "ServiceParameter",
    "StatusList",
    "TransportReport",
    "TransportStatus",
    "XtaMessage",
    "XtaMetadata",
]


@dataclass(frozen=True, slots=True)
class PartyId:
    """An XTA party identifier (``oscimeta:Identifier``), e.g. ``PartyId("dvdv:01234567")``."""

    value: str
    type: str = "xoev"
    name: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if not self.value.strip() or not self.type.strip():
            raise ValueError("party identifier and its type must not be empty")


@dataclass(frozen=True, slots=True)
class MessageType:
    """``Qualifier/MessageType``: the XÖV message type code and the payload's schema namespace."""

    code: str
    payload_schema: str
    list_uri: str = "urn:de:payloadSchema:elementName"
    list_version: str = "1.0"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class XtaMetadata:
    """The parts of ``oscimeta:MessageMetaData`` Poststelle reads and writes."""

    message_id: str
    author: PartyId
    reader: PartyId
    service: str
    message_type: MessageType
    business_scenario: str
    subject: str | None = None
    size: int | None = None
    in_reply_to: tuple[str, ...] = ()
    delivery: datetime | None = None
    test_msg: bool = False
    # DeliveryAttributes/NotBefore: the server holds the message until then; only such a
    # transport order can be withdrawn with cancelMessage.
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    content: bytes
    content_type: str = "application/octet-stream"
    filename: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class XtaMessage:
    """A content container (``ContentContainer``) with its transport metadata."""

    metadata: XtaMetadata
    content: bytes
    content_type: str = "application/xml"
    filename: str | None = None
    encoding: str | None = "UTF-8"
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """A message read from a mailbox, with the fetch iterator it belongs to (needed by close)."""

    message: XtaMessage
    request_id: str
    items_pending: int | None

    @property
    def message_id(self) -> str:
        return self.message.metadata.message_id


@dataclass(frozen=True, slots=True)
class StatusList:
    request_id: str
    entries: tuple[XtaMetadata, ...]
    # None when the server said nothing (zeep would report a missing value for 0, see client).
    items_pending: int | None = None
    no_message_reason: str | None = None


SERVICE_PARAMETER_LIST_URI = "urn:de:xta:codeliste:service.parameter.type"


@dataclass(frozen=True, slots=True)
class ServiceParameter:
    """``ServiceParameter`` of a lookup result: a technical parameter for reaching the reader
    (e.g. its encryption certificate), typed by the XTA code list of parameter types."""

    type_code: str
    resource: bytes
    list_uri: str = SERVICE_PARAMETER_LIST_URI
    list_version: str = "1.0"


@dataclass(frozen=True, slots=True)
class ServiceLookup:
    """One ``LookupServiceResult``: does ``reader`` offer ``service``?

    ``available`` is None when the server answered ``ServiceIsAvailableUnknown``.
    """

    reader: PartyId
    service: str
    available: bool | None
    parameters: tuple[ServiceParameter, ...] = ()


class TransportStatus(IntEnum):
    """``MessageStatus/Status`` of a transport report."""

    OPEN = 0
    GREEN = 1
    YELLOW = 2
    RED = 3


@dataclass(frozen=True, slots=True)
class ReportRecord:
    timestamp: datetime
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransportReport:
    message_id: str
    status: TransportStatus
    report_time: datetime
    server_identity: str
    errors: tuple[ReportRecord, ...] = field(default=())
    warnings: tuple[ReportRecord, ...] = field(default=())
    infos: tuple[ReportRecord, ...] = field(default=())
