"""The rejected message as an XBau 1100 Rückweisung carries it.

XBau 2.6 (``xbau-kernmodul-datentypen.xsd``, type ``Rueckweisung``) puts the refused message
into ``rueckweisungDaten/nachricht`` as ``xs:base64Binary``: "die zurückgewiesene
Fachnachricht ohne Attachments". It needs the message itself, not its attachments. Large
messages are large because of inline attachments (RFC 2397 ``data:`` URIs in
``anhang/dokumentid``, which the hub claim-checks), so without them even a claim-checked
message fits into one answer; what does not fit is refused with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from lxml import etree

from ._errors import MessageRejected
from ._safexml import parse_xml

__all__ = ["MAX_REJECTED_MESSAGE_BYTES", "rejected_message"]

# The 1100 travels as one stream message in OUTBOX: base64 grows the embedded message by a
# third, and the answer stays below the claim-check threshold (512 KiB) of every message.
MAX_REJECTED_MESSAGE_BYTES = 384 * 1024
_DATA_URI = "data:"


def _content_digest(data_uri: str) -> str:
    _, _, payload = data_uri.partition(";base64,")
    try:
        content = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        content = data_uri.encode()
    return hashlib.sha256(content).hexdigest()


def rejected_message(raw: bytes) -> bytes:
    """``raw`` without its inline attachments: each ``dokumentid`` that is a ``data:`` URI
    becomes ``urn:sha256:<digest of the content>`` (the digest the CaseEvent's attachment
    reference carries). Raises ``ValueError`` when the result is still too large."""
    message = raw
    if _DATA_URI.encode() in raw:
        try:
            root = parse_xml(raw)
        except MessageRejected:
            root = None  # not XML the hub can read: carried as it came, if it fits
        if root is not None:
            stripped = False
            for element in root.iter():
                if not isinstance(element.tag, str) or etree.QName(element).localname != (
                    "dokumentid"
                ):
                    continue
                text = (element.text or "").strip()
                if text.startswith(_DATA_URI):
                    element.text = f"urn:sha256:{_content_digest(text)}"
                    stripped = True
            if stripped:
                message = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    if len(message) > MAX_REJECTED_MESSAGE_BYTES:
        raise ValueError(
            f"the rejected message has {len(message)} bytes without its attachments; an "
            f"XBau 1100 carries at most {MAX_REJECTED_MESSAGE_BYTES} bytes of it"
        )
    return message
