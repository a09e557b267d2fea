"""zeep transport for XTA: offline schema loading and exact MTOM attachments."""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import requests
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from poststelle.adapters.xta._schemas import XtaSchemaLocator

__all__ = ["XtaTransport", "inline_xop"]

logger = logging.getLogger(__name__)

_XOP_INCLUDE = "{http://www.w3.org/2004/08/xop/include}Include"


class XtaTransport(Transport):
    """A zeep transport that never fetches schemas remotely and undoes zeep's MTOM trimming.

    - ``load`` reads every WSDL/XSD location through :class:`XtaSchemaLocator` (this is where the
      broken SOAP 1.2 envelope import of ``OSCI2_02.xsd`` is repaired).
    - ``post`` turns an MTOM (``multipart/related``) reply into a plain SOAP envelope with the
      binary parts inlined as base64 before zeep sees it: zeep 4.3.3 strips CR/LF at both edges of
      a binary part, which corrupts any payload that starts or ends with a line break.
    """

    def __init__(
        self,
        locator: XtaSchemaLocator,
        session: requests.Session,
        operation_timeout: float | tuple[float, float] | None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            session=session, operation_timeout=operation_timeout, timeout=10
        )
        self._locator = locator

    def load(self, url: str) -> bytes:
        data: bytes = self._locator.read(url)
        return data

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        response: requests.Response = super().post(  # type: ignore[no-untyped-call]
            address, message, headers
        )
        content_type = response.headers.get("Content-Type", "")
        if content_type.lower().startswith("multipart/related"):
            try:
                envelope = inline_xop(response.content, content_type)
            except (ValueError, etree.XMLSyntaxError) as exc:  # binascii.Error is a ValueError
                # zeep's own kind of unreadable reply, which the client reports as permanent.
                raise zeep.exceptions.XMLParseError(  # type: ignore[no-untyped-call]
                    f"malformed MTOM reply: {exc}"
                ) from exc
            # Mutating the response keeps zeep's own status handling intact.
            response._content = envelope
            response.headers["Content-Type"] = "application/soap+xml; charset=utf-8"
        return response


def _boundary(content_type: str) -> bytes:
    match = re.search(r'boundary="?([^";]+)"?', content_type, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"multipart reply without boundary: {content_type!r}")
    return match.group(1).encode("ascii")


def _split_parts(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart body exactly as RFC 2046 defines it (the CRLF before a delimiter
    belongs to the delimiter; nothing else is trimmed)."""
    delimiter = b"\r\n--" + boundary
    # Prepending CRLF lets the first delimiter match the same pattern as the others.
    chunks = (b"\r\n" + body).split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        # Skip transport padding up to the CRLF that ends the delimiter line.
        chunk = chunk.split(b"\r\n", 1)[1] if b"\r\n" in chunk else b""
        raw_headers, _, content = chunk.partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in raw_headers.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def inline_xop(body: bytes, content_type: str) -> bytes:
    """Return the root SOAP envelope of an MTOM message with every ``xop:Include`` replaced by
    the base64 text of the part it references."""
    parts = _split_parts(body, _boundary(content_type))
    if not parts:
        raise ValueError("multipart reply without parts")
    _, root_content = parts[0]
    attachments: dict[str, bytes] = {}
    for headers, content in parts[1:]:
        content_id = headers.get("content-id", "").strip("<>")
        if headers.get("content-transfer-encoding", "binary").lower() == "base64":
            content = base64.b64decode(content)
        attachments[content_id] = content
    # huge_tree: a 40 MB container's base64 text exceeds libxml2's 10 MB text-node limit.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    doc = etree.fromstring(root_content, parser)
    for include in doc.iter(_XOP_INCLUDE):
        href = include.get("href", "")
        content_id = unquote_cid(href)
        if content_id not in attachments:
            raise ValueError(f"MTOM reply references missing part {href!r}")
        parent = include.getparent()
        if parent is None:
            raise ValueError("xop:Include at the document root")
        parent.remove(include)
        parent.text = base64.b64encode(attachments[content_id]).decode("ascii")
    logger.debug("xta mtom reply inlined", extra={"parts": len(parts) - 1})
    return bytes(etree.tostring(doc, xml_declaration=True, encoding="utf-8"))


def unquote_cid(href: str) -> str:
    from urllib.parse import unquote

    return unquote(href[4:]) if href.startswith("cid:") else href
