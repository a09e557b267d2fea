"""The one door every inbound adapter uses: store the raw bytes in ``INBOX``, then answer.

``Intake.accept`` returns only after JetStream acknowledged the message, so an adapter that
acknowledges its source (HTTP 2xx, XTA ``close``) after ``accept`` returned never loses one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree
from nats.js import JetStreamContext

from poststelle.contracts.events import deterministic_case_id
from poststelle.routing.audit import AuditTrail
from poststelle.routing.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_CONTENT_TYPE,
    H_MSG_ID,
    H_RECEIVED_AT,
    H_SOURCE_ID,
    inbox_subject,
)
from poststelle.routing.metrics import Counters
from poststelle.routing.topology import INBOX

__all__ = ["Accepted", "Intake", "source_message_id_of"]

log = logging.getLogger(__name__)

# The XÖV header precedes the payload; scanning further only costs time on large bodies.
_HEADER_SCAN_EVENTS = 200


@dataclass(frozen=True)
class Accepted:
    case_id: str
    message_id: str
    duplicate: bool
    stream_sequence: int
    received_at: str = ""
    """When the hub first accepted this message (ISO 8601); a duplicate keeps the
    original's time."""


def source_message_id_of(raw: bytes) -> str:
    """The message's natural idempotency key.

    XÖV keeps ``nachrichtenUUID`` when a message is sent again, so that is the key when the
    header has one; otherwise the body's sha256 makes identical re-sends collapse. The scan
    is a bounded, entity-free pull parse: hostile bodies are judged later, by the core.
    """
    parser = etree.XMLPullParser(
        events=("end",), resolve_entities=False, no_network=True, load_dtd=False
    )
    try:
        parser.feed(raw[: 64 * 1024])
        for count, (_, element) in enumerate(parser.read_events()):
            if etree.QName(element).localname == "nachrichtenUUID" and element.text:
                return str(element.text).strip()
            if count > _HEADER_SCAN_EVENTS:
                break
    except etree.XMLSyntaxError:
        pass
    return "sha256-" + hashlib.sha256(raw).hexdigest()


class Intake:
    def __init__(self, js: JetStreamContext, audit: AuditTrail, counters: Counters) -> None:
        self._js = js
        self._audit = audit
        self._counters = counters

    async def accept(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
    ) -> Accepted:
        source_id = source_message_id or source_message_id_of(raw)
        case_id = deterministic_case_id(channel, source_id)
        headers = {
            # Channel + source id: the same message re-sent through the same channel dedupes.
            H_MSG_ID: f"{channel}:{source_id}",
            H_CHANNEL: channel,
            H_ADAPTER: adapter,
            H_SOURCE_ID: source_id,
            H_CASE_ID: case_id,
            H_CONTENT_TYPE: content_type,
            H_RECEIVED_AT: datetime.now(UTC).isoformat(),
            **(extra_headers or {}),
        }
        ack = await self._js.publish(inbox_subject(channel, adapter), raw, headers=headers)
        received_at = headers[H_RECEIVED_AT]
        if ack.duplicate:
            self._counters.incr("intake.duplicate")
            received_at = await self._first_received_at(ack.seq) or received_at
        else:
            self._counters.incr("intake.received")
            await self._audit.append(
                case_id,
                "received",
                channel=channel,
                adapter=adapter,
                source_message_id=source_id,
                inbox_seq=ack.seq,
                size=len(raw),
            )
        return Accepted(
            case_id=case_id,
            message_id=source_id,
            duplicate=bool(ack.duplicate),
            stream_sequence=ack.seq,
            received_at=received_at,
        )

    async def _first_received_at(self, sequence: int) -> str | None:
        """The original's arrival time: a duplicate's ack names the original's sequence."""
        try:
            original = await self._js.get_msg(INBOX, sequence)
        except Exception as exc:  # gone (purged) or unreachable: the answer stays useful
            log.info("original arrival not found seq=%s error=%r", sequence, exc)
            return None
        return (original.headers or {}).get(H_RECEIVED_AT)
