"""XML building and reading for the XTA simulator (lxml only, independent of zeep on purpose:
the simulator is a second implementation of the wire format, so round trips test both)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from poststelle.adapters.xta._model import (
    Attachment,
    MessageType,
    PartyId,
    ReportRecord,
    ServiceParameter,
    TransportReport,
    XtaMessage,
    XtaMetadata,
)

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_META = "http://www.osci.eu/ws/2014/10/transport"
NS_OSCI = "http://www.osci.eu/ws/2008/05/transport"
NS_XTA = "http://xoev.de/transport/xta/211"
NS_XOP = "http://www.w3.org/2004/08/xop/include"

NSMAP = {"s": NS_SOAP12, "wsa": NS_WSA, "oscimeta": NS_META, "osci": NS_OSCI, "xta": NS_XTA}

FEHLERNUMMER_LIST_URI = "urn:de:xta:webservice:codeliste:fehlernummer"
RECORD_LIST_URI = "urn:de:xta:codeliste:record.type"


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def sub(parent: Any, ns: str, local: str, text: str | None = None, **attrs: str | None) -> Any:
    el = etree.SubElement(parent, q(ns, local), {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_safely(data: bytes) -> Any:
    parser = etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False
    )
    return etree.fromstring(data, parser)


# -- writing -----------------------------------------------------------------------------------


def _party(parent: Any, local: str, party: PartyId) -> None:
    el = sub(parent, NS_META, local)
    sub(
        el,
        NS_META,
        "Identifier",
        party.value,
        type=party.type,
        name=party.name,
        category=party.category,
    )


def metadata_element(parent: Any, m: XtaMetadata) -> Any:
    md = sub(parent, NS_META, "MessageMetaData", TestMsg="true" if m.test_msg else None)
    delivery = sub(md, NS_META, "DeliveryAttributes")
    if m.not_before is not None:
        sub(delivery, NS_META, "NotBefore", iso(m.not_before))
    if m.delivery is not None:
        sub(delivery, NS_META, "Delivery", iso(m.delivery))
    originators = sub(md, NS_META, "Originators")
    _party(originators, "Author", m.author)
    destinations = sub(md, NS_META, "Destinations")
    _party(destinations, "Reader", m.reader)
    ident = sub(md, NS_META, "MsgIdentification")
    sub(ident, NS_WSA, "MessageID", m.message_id)
    for ref in m.in_reply_to:
        sub(ident, NS_META, "In-Reply-To", ref)
    qualifier = sub(md, NS_META, "Qualifier")
    if m.subject:
        sub(qualifier, NS_META, "Subject", m.subject)
    sub(qualifier, NS_META, "Service", m.service)
    scenario = sub(qualifier, NS_META, "BusinessScenario")
    sub(scenario, NS_META, "Undefined", m.business_scenario)
    mt = sub(
        qualifier,
        NS_META,
        "MessageType",
        listURI=m.message_type.list_uri,
        listVersionID=m.message_type.list_version,
        payloadSchema=m.message_type.payload_schema,
    )
    etree.SubElement(mt, "code").text = m.message_type.code
    if m.message_type.name:
        etree.SubElement(mt, "name").text = m.message_type.name
    if m.size:
        sub(md, NS_META, "MsgSize", str(m.size))
    return md


def _content(
    parent: Any,
    local: str,
    content: bytes,
    content_type: str,
    filename: str | None,
    encoding: str | None,
    description: str | None,
    xop_id: str | None,
) -> Any:
    el = sub(
        parent,
        NS_XTA,
        local,
        contentType=content_type,
        filename=filename,
        encoding=encoding,
        contentDescription=description,
        size=str(len(content)) if content else None,
    )
    if xop_id is not None:
        sub(el, NS_XOP, "Include", href=f"cid:{xop_id}")
    else:
        el.text = base64.b64encode(content).decode("ascii")
    return el


def container_element(parent: Any, message: XtaMessage, xop_id: str | None = None) -> Any:
    """With ``xop_id`` the message's bytes are the MTOM part of that id and each attachment's
    the part ``<xop_id>-attachment-<n>`` (n from 1); the caller attaches them."""
    gcc = sub(parent, NS_XTA, "GenericContentContainer")
    cc = sub(gcc, NS_XTA, "ContentContainer")
    _content(
        cc,
        "Message",
        message.content,
        message.content_type,
        message.filename,
        message.encoding,
        None,
        xop_id,
    )
    for index, a in enumerate(message.attachments, 1):
        part = f"{xop_id}-attachment-{index}" if xop_id else None
        _content(cc, "Attachment", a.content, a.content_type, a.filename, None, a.description, part)
    return gcc


def transport_report_element(parent: Any, report: TransportReport, metadata: XtaMetadata) -> Any:
    tr = sub(parent, NS_XTA, "TransportReport")
    metadata_element(tr, metadata)
    sub(tr, NS_XTA, "ReportTime", iso(report.report_time))
    sub(tr, NS_XTA, "XTAServerIdentity", report.server_identity)
    status = sub(tr, NS_XTA, "MessageStatus")
    sub(status, NS_XTA, "Status", str(int(report.status)))
    for list_name, item_name, records in (
        ("ErrorList", "Error", report.errors),
        ("WarnList", "Warning", report.warnings),
        ("InfoList", "Info", report.infos),
    ):
        if not records:
            continue
        lst = sub(status, NS_XTA, list_name)
        for r in records:
            rec = sub(lst, NS_XTA, item_name)
            sub(rec, NS_XTA, "Timestamp", iso(r.timestamp))
            code = sub(rec, NS_XTA, "Code", listURI=RECORD_LIST_URI, listVersionID="1.0")
            etree.SubElement(code, "code").text = r.code
            sub(rec, NS_XTA, "Reason", r.reason)
    return tr


def envelope(action: str, relates_to: str | None, message_id: str) -> tuple[Any, Any, Any]:
    env = etree.Element(q(NS_SOAP12, "Envelope"), nsmap=NSMAP)
    header = sub(env, NS_SOAP12, "Header")
    sub(header, NS_WSA, "Action", action)
    sub(header, NS_WSA, "MessageID", message_id)
    if relates_to:
        sub(header, NS_WSA, "RelatesTo", relates_to)
    body = sub(env, NS_SOAP12, "Body")
    return env, header, body


def fault_envelope(
    action: str,
    relates_to: str | None,
    message_id: str,
    *,
    exception: str | None,
    code: str | None,
    reason: str,
    sender: bool,
) -> Any:
    env, _, body = envelope(action, relates_to, message_id)
    fault = sub(body, NS_SOAP12, "Fault")
    code_el = sub(fault, NS_SOAP12, "Code")
    sub(code_el, NS_SOAP12, "Value", "s:Sender" if sender else "s:Receiver")
    reason_el = sub(fault, NS_SOAP12, "Reason")
    text = sub(reason_el, NS_SOAP12, "Text", reason)
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "de")
    if exception is not None:
        detail = sub(fault, NS_SOAP12, "Detail")
        exc = sub(detail, NS_XTA, exception)
        error_code = sub(
            exc, NS_XTA, "errorCode", listURI=FEHLERNUMMER_LIST_URI, listVersionID="1.0"
        )
        etree.SubElement(error_code, "code").text = code or "9000"
        etree.SubElement(error_code, "name").text = reason
    return env


# -- reading -----------------------------------------------------------------------------------


def _party_from(el: Any) -> PartyId:
    ident = el.find(q(NS_META, "Identifier"))
    return PartyId(
        value=(ident.text or "").strip(),
        type=ident.get("type", ""),
        name=ident.get("name"),
        category=ident.get("category"),
    )


def party_from_header(header: Any) -> PartyId | None:
    author = header.find(q(NS_META, "Author")) if header is not None else None
    if author is None or author.find(q(NS_META, "Identifier")) is None:
        return None
    return _party_from(author)


def metadata_from(md: Any) -> XtaMetadata:
    qualifier = md.find(q(NS_META, "Qualifier"))
    mt = qualifier.find(q(NS_META, "MessageType"))
    scenario = qualifier.find(q(NS_META, "BusinessScenario"))
    undefined = scenario.findtext(q(NS_META, "Undefined"))
    ident = md.find(q(NS_META, "MsgIdentification"))
    size = md.findtext(q(NS_META, "MsgSize"))
    not_before = md.findtext(f"{q(NS_META, 'DeliveryAttributes')}/{q(NS_META, 'NotBefore')}")
    return XtaMetadata(
        message_id=(ident.findtext(q(NS_WSA, "MessageID")) or "").strip(),
        author=_party_from(md.find(f"{q(NS_META, 'Originators')}/{q(NS_META, 'Author')}")),
        reader=_party_from(md.find(f"{q(NS_META, 'Destinations')}/{q(NS_META, 'Reader')}")),
        service=(qualifier.findtext(q(NS_META, "Service")) or "").strip(),
        message_type=MessageType(
            code=(mt.findtext("code") or "").strip(),
            payload_schema=mt.get("payloadSchema", ""),
            list_uri=mt.get("listURI", ""),
            list_version=mt.get("listVersionID", ""),
            name=mt.findtext("name"),
        ),
        business_scenario=(
            undefined
            if undefined is not None
            else scenario.findtext(f"{q(NS_META, 'Defined')}/code") or ""
        ),
        subject=qualifier.findtext(q(NS_META, "Subject")),
        size=int(size) if size else None,
        in_reply_to=tuple(r.text or "" for r in ident.findall(q(NS_META, "In-Reply-To"))),
        test_msg=md.get("TestMsg") in ("true", "1"),
        not_before=datetime.fromisoformat(not_before.strip()) if not_before else None,
    )


def _content_from(el: Any) -> tuple[bytes, str, str | None, str | None, str | None]:
    return (
        base64.b64decode("".join((el.text or "").split())),
        el.get("contentType", "application/octet-stream"),
        el.get("filename"),
        el.get("encoding"),
        el.get("contentDescription"),
    )


def message_from(md: Any, gcc: Any) -> XtaMessage:
    cc = gcc.find(q(NS_XTA, "ContentContainer"))
    if cc is None:
        raise ValueError("only unencrypted ContentContainer is supported")
    content, content_type, filename, encoding, _ = _content_from(cc.find(q(NS_XTA, "Message")))
    attachments = []
    for a in cc.findall(q(NS_XTA, "Attachment")):
        a_content, a_type, a_name, _, a_desc = _content_from(a)
        attachments.append(Attachment(a_content, a_type, a_name, a_desc))
    metadata = metadata_from(md)
    return XtaMessage(
        metadata=metadata,
        content=content,
        content_type=content_type,
        filename=filename,
        encoding=encoding,
        attachments=tuple(attachments),
    )


def lookup_result_element(
    parent: Any,
    reader: PartyId,
    service: str,
    available: bool | None,
    parameters: tuple[ServiceParameter, ...] = (),
) -> Any:
    result = sub(parent, NS_XTA, "LookupServiceResult")
    _party(result, "Reader", reader)
    sub(result, NS_XTA, "ServiceType", service)
    value = sub(result, NS_XTA, "IsServiceAvailableValue")
    if available is None:
        sub(value, NS_XTA, "ServiceIsAvailableUnknown", "true")
    else:
        sub(value, NS_XTA, "ServiceIsAvailable", "true" if available else "false")
    for p in parameters:
        param = sub(result, NS_XTA, "ServiceParameter")
        kind = sub(param, NS_XTA, "ParameterType", listURI=p.list_uri, listVersionID=p.list_version)
        etree.SubElement(kind, "code").text = p.type_code
        sub(param, NS_XTA, "Resource", base64.b64encode(p.resource).decode("ascii"))
    return result


def lookup_queries(request: Any) -> list[tuple[PartyId, str]]:
    """(reader, service) of every ``LookupService`` in a ``LookupServiceRequest``."""
    queries = []
    for item in request.iterfind(
        f"{q(NS_XTA, 'LookupServiceRequestList')}/{q(NS_XTA, 'LookupService')}"
    ):
        reader = item.find(q(NS_META, "Reader"))
        if reader is None or reader.find(q(NS_META, "Identifier")) is None:
            raise ValueError("LookupService lacks its Reader")
        queries.append(
            (_party_from(reader), (item.findtext(q(NS_XTA, "ServiceType")) or "").strip())
        )
    return queries


def record(code: str, reason: str, when: datetime) -> ReportRecord:
    return ReportRecord(timestamp=when, code=code, reason=reason)
