"""What makes two arrivals the same message, whichever channel brought them.

One rule for every channel: an XÖV message is identified by its standard (the root element's
namespace) and its ``nachrichtenUUID``, which XÖV keeps when a message is sent again; a body
without one by its sha256; an id that only a channel issues (an OZG-Cloud ``transactionId``)
by that channel and the id. The transport's own id for a delivery (XTA MessageID, HTTP
``Idempotency-Key``) is a fact of that delivery, never the identity: an XTA resend gets a new
MessageID and is still the same message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from .events import deterministic_case_id

__all__ = ["MessageIdentity", "identify_message", "issued_by"]

# The XÖV header precedes the payload; scanning further only costs time on large bodies.
_HEADER_SCAN_EVENTS = 200
_HEADER_SCAN_BYTES = 64 * 1024


@dataclass(frozen=True)
class MessageIdentity:
    # What makes ``value`` unique: ``xoev:<namespace>``, ``body`` or the issuing channel.
    scope: str
    # The nachrichtenUUID, ``sha256-<hex>`` of the body, or the channel's own id.
    value: str

    @property
    def dedupe_key(self) -> str:
        """``Nats-Msg-Id`` of the arrival in ``INBOX``."""
        return f"{self.scope}:{self.value}"

    @property
    def case_id(self) -> str:
        return deterministic_case_id(self.scope, self.value)


def issued_by(channel: str, value: str) -> MessageIdentity:
    """An id the channel itself hands out (unique only there)."""
    return MessageIdentity(scope=channel, value=value)


def identify_message(raw: bytes) -> MessageIdentity:
    """The XÖV identity of ``raw``, else its body hash.

    The scan is a bounded, entity-free pull parse of the head: hostile bodies are judged
    later, by the routing core, and a 40 MB body costs no more than a small one.
    """
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False
    )
    namespace: str | None = None
    try:
        parser.feed(raw[:_HEADER_SCAN_BYTES])
        for count, (event, element) in enumerate(parser.read_events()):
            name = etree.QName(element)
            if namespace is None:
                namespace = name.namespace or ""
            elif event == "end" and name.localname == "nachrichtenUUID" and element.text:
                return MessageIdentity(scope=f"xoev:{namespace}", value=element.text.strip())
            if count > _HEADER_SCAN_EVENTS:
                break
    except etree.XMLSyntaxError:
        pass
    return MessageIdentity(scope="body", value="sha256-" + hashlib.sha256(raw).hexdigest())
