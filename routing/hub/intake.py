"""The one door every inbound adapter uses: store the raw bytes in ``INBOX``, then answer.

``Intake.accept`` returns only after JetStream acknowledged the message, so an adapter that
acknowledges its source (HTTP 2xx, XTA ``close``) after ``accept`` returned never loses one.

Every channel follows one identity rule: the message's own id (XÖV ``nachrichtenUUID``, else
the body's sha256; an intake may name one, as ``/antrag`` does with the OZG transactionId)
is the dedupe key and decides the case id. The transport's id for the delivery (XTA
MessageID, HTTP Idempotency-Key) is kept as a fact in a header and the audit trail, so a
message re-sent under a new transport id is still recognised as the same message.

Bodies above the claim-check threshold go to the object store first and ``INBOX`` carries
the reference (``claim_check``); bodies above the size limit are refused before anything is
stored (``MessageTooLarge``), unless the adapter cannot refuse (a mailbox): then the body is
kept by its claim check and the routing core quarantines it as ``too-large``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext

from poststelle.contracts.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_CONTENT_TYPE,
    H_MSG_ID,
    H_RECEIVED_AT,
    H_SOURCE_ID,
    H_TRANSPORT_ID,
    audit_subject,
    inbox_subject,
)
from poststelle.contracts.intake import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Accepted,
    IntakeUnavailable,
    MessageTooLarge,
    TooLarge,
)
from poststelle.contracts.message_identity import identify_message, issued_by
from poststelle.contracts.transient import is_transient
from poststelle.routing.ops.audit import AuditEntry, AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.claim_check import DEFAULT_CLAIM_CHECK_BYTES, store_body
from poststelle.routing.streams.topology import AUDIT, INBOX, STREAMS

__all__ = ["Intake", "received_record_id", "source_message_id_of"]

log = logging.getLogger(__name__)

_AUDIT_DEDUPE_WINDOW = next(spec.duplicate_window for spec in STREAMS if spec.name == AUDIT)
# Hub processes on several hosts stamp arrivals with their own clocks.
_CLOCK_MARGIN = 30.0


def received_record_id(dedupe_key: str) -> str:
    """The ``received`` AUDIT record's dedupe id: one record per arrival however often the
    message is re-sent while ``AUDIT`` remembers the id (its duplicate window)."""
    return f"received:{dedupe_key}"


def source_message_id_of(raw: bytes) -> str:
    """The message's own id: its ``nachrichtenUUID``, else ``sha256-<hex>`` of the body."""
    return identify_message(raw).value


def _outlived_audit_dedupe(first_received_at: str | None) -> bool:
    """Whether the original arrival is so old that AUDIT no longer dedupes its ``received``
    record. A younger original whose record was *not* deduped has no record yet (it is
    still on its way, or its intake failed): then the re-send's record is the one kept.
    Unknown (the original is gone) keeps it too."""
    if not first_received_at:
        return False
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(first_received_at)).total_seconds()
    except ValueError:
        return False
    return age > _AUDIT_DEDUPE_WINDOW + _CLOCK_MARGIN


class Intake:
    def __init__(
        self,
        js: JetStreamContext,
        audit: AuditTrail,
        counters: Counters,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        claim_check_bytes: int = DEFAULT_CLAIM_CHECK_BYTES,
    ) -> None:
        self._js = js
        self._audit = audit
        self._counters = counters
        self.max_message_bytes = max_message_bytes
        self.claim_check_bytes = claim_check_bytes

    async def accept(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
        transport_id: str | None = None,
        too_large: TooLarge = "refuse",
    ) -> Accepted:
        """Store one arrival; raises ``MessageTooLarge`` (permanent, nothing stored) or
        ``IntakeUnavailable`` (transient, nothing acknowledged)."""
        if len(raw) > self.max_message_bytes and too_large == "refuse":
            self._counters.incr("intake.too_large")
            raise MessageTooLarge(len(raw), self.max_message_bytes)
        try:
            return await self._accept(
                raw,
                channel=channel,
                adapter=adapter,
                source_message_id=source_message_id,
                content_type=content_type,
                extra_headers=extra_headers or {},
                transport_id=transport_id,
            )
        except Exception as exc:
            if is_transient(exc):
                raise IntakeUnavailable(f"the message was not stored: {exc!r}") from exc
            raise

    async def _accept(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None,
        content_type: str,
        extra_headers: dict[str, str],
        transport_id: str | None,
    ) -> Accepted:
        # The identity scan reads only the head of the body, however large it is.
        identity = (
            issued_by(channel, source_message_id) if source_message_id else identify_message(raw)
        )
        source_id, case_id = identity.value, identity.case_id
        headers = {
            # The message's own identity: the same message dedupes whichever channel
            # brings it again and whatever id its transport gave it this time.
            H_MSG_ID: identity.dedupe_key,
            H_CHANNEL: channel,
            H_ADAPTER: adapter,
            H_SOURCE_ID: source_id,
            H_CASE_ID: case_id,
            H_CONTENT_TYPE: content_type,
            H_RECEIVED_AT: datetime.now(UTC).isoformat(),
            **extra_headers,
        }
        if transport_id:
            headers[H_TRANSPORT_ID] = transport_id
        claim_checked = len(raw) > self.claim_check_bytes
        if claim_checked:
            headers.update((await store_body(self._js, raw)).headers())
        data = b"" if claim_checked else raw
        facts: dict[str, Any] = {"channel": channel, "adapter": adapter}
        if transport_id:
            facts["transport_id"] = transport_id
        received_at = headers[H_RECEIVED_AT]
        # The arrival and its ``received`` record travel together: one round trip per
        # message instead of two, and the caller still answers only after both are stored.
        # Whether the arrival is a re-send is known only from INBOX's answer, so the record
        # carries a dedupe id of its own: a re-send within AUDIT's duplicate window is
        # dropped there too; an older one is taken back below.
        stored = await asyncio.gather(
            self._js.publish(inbox_subject(channel, adapter), data, headers=headers),
            self._js.publish(
                audit_subject(case_id),
                AuditEntry(
                    case_id=case_id,
                    hop="received",
                    at=datetime.now(UTC),
                    detail={
                        **facts,
                        "source_message_id": source_id,
                        "size": len(raw),
                        "claim_checked": claim_checked,
                    },
                )
                .model_dump_json()
                .encode(),
                headers={H_MSG_ID: received_record_id(identity.dedupe_key)},
            ),
            # Both settle before a failure is raised: the caller's refusal then means no
            # publish of this attempt is still on its way.
            return_exceptions=True,
        )
        inbox_ack, record_ack = stored
        if isinstance(inbox_ack, BaseException):
            raise inbox_ack
        if isinstance(record_ack, BaseException):
            raise record_ack
        if inbox_ack.duplicate:
            self._counters.incr("intake.duplicate")
            first_received_at = await self._first_received_at(inbox_ack.seq)
            if not record_ack.duplicate and _outlived_audit_dedupe(first_received_at):
                await self._take_back(record_ack.seq, case_id)
            received_at = first_received_at or received_at
            if transport_id:
                # The repeat's transport id is worth keeping: it explains a second delivery
                # at the source (e.g. an XTA resend) without a second case.
                await self._audit.append(case_id, "duplicate", **facts)
        else:
            self._counters.incr("intake.received")
        return Accepted(
            case_id=case_id,
            message_id=source_id,
            duplicate=bool(inbox_ack.duplicate),
            stream_sequence=inbox_ack.seq,
            received_at=received_at,
        )

    async def _take_back(self, sequence: int, case_id: str) -> None:
        """A re-send after AUDIT's duplicate window: its ``received`` record is no arrival
        (INBOX said so), so it leaves the trail again. Should that fail, the trail shows one
        ``received`` too many, never one too few."""
        try:
            await self._js.delete_msg(AUDIT, sequence)
        except Exception as exc:
            log.warning(
                "extra received record left case_id=%s audit_seq=%s error=%r",
                case_id,
                sequence,
                exc,
            )

    async def _first_received_at(self, sequence: int) -> str | None:
        """The original's arrival time: a duplicate's ack names the original's sequence."""
        try:
            original = await self._js.get_msg(INBOX, sequence)
        except Exception as exc:  # gone (purged) or unreachable: the answer stays useful
            log.info("original arrival not found seq=%s error=%r", sequence, exc)
            return None
        return (original.headers or {}).get(H_RECEIVED_AT)
