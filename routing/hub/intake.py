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
import time
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError

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
    IntakeBusy,
    IntakeUnavailable,
    MessageTooLarge,
    TooLarge,
)
from poststelle.contracts.message_identity import identify_message, issued_by
from poststelle.contracts.transient import RETRY_AFTER, is_transient
from poststelle.routing.ops import tracing
from poststelle.routing.ops.audit import AuditEntry, AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.claim_check import DEFAULT_CLAIM_CHECK_BYTES, store_body
from poststelle.routing.streams.topology import AUDIT, INBOX, ROUTER_DURABLE, STREAMS

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_MAX_IN_FLIGHT",
    "Intake",
    "IntakeAdmission",
    "received_record_id",
    "source_message_id_of",
]

log = logging.getLogger(__name__)

_AUDIT_DEDUPE_WINDOW = next(spec.duplicate_window for spec in STREAMS if spec.name == AUDIT)
# Hub processes on several hosts stamp arrivals with their own clocks.
_CLOCK_MARGIN = 30.0


# Concurrent intake requests: each holds at most one body (``http.max_body_bytes``) in memory.
DEFAULT_MAX_IN_FLIGHT = 64
# Arrivals the routing core has not taken yet (its INBOX consumer's ``num_pending``): above
# it the hub is falling behind, and taking more only grows the disk and the wait.
DEFAULT_MAX_BACKLOG = 20_000
# Seconds between two looks at the backlog: one consumer-info round trip per interval,
# never one per request.
BACKLOG_SAMPLE_INTERVAL = 0.5
# JetStream's answers for a stream at its limits with discard policy ``new``
# (maximum messages / bytes exceeded, per-subject limit, storage resources exceeded).
_STREAM_FULL_CODES = frozenset({10077, 10047, 10078, 10028, 10023})


def _stream_full(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.err_code in _STREAM_FULL_CODES


class IntakeAdmission:
    """Admission control for every intake: refuse early instead of queueing without bound.

    Two limits: requests in flight (HTTP bodies being read or stored; over it ``429``) and
    the routing core's backlog (INBOX messages its consumer has not taken; over it ``503``).
    The backlog is sampled in the background at most every ``sample_interval`` seconds, so
    a refusal costs no broker round trip; until the first sample it counts as zero.
    """

    def __init__(
        self,
        counters: Counters,
        *,
        js: JetStreamContext | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        retry_after: int = RETRY_AFTER,
        sample_interval: float = BACKLOG_SAMPLE_INTERVAL,
    ) -> None:
        self._js = js
        self._counters = counters
        self.max_in_flight = max_in_flight
        self.max_backlog = max_backlog
        self.retry_after = retry_after
        self._sample_interval = sample_interval
        self.in_flight = 0
        self.backlog = 0
        self._sampled_at = float("-inf")
        self._sampling: asyncio.Task[None] | None = None

    def enter(self) -> None:
        """Take an in-flight slot or raise ``IntakeBusy``."""
        if self.in_flight >= self.max_in_flight:
            self._counters.incr("intake.refused_in_flight")
            self._counters.metrics.intake_refused("in_flight")
            raise IntakeBusy(
                f"{self.in_flight} requests in flight, the limit is {self.max_in_flight}",
                status=429,
                retry_after=self.retry_after,
            )
        self.check_backlog()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def check_backlog(self) -> None:
        """Raise ``IntakeBusy`` (503) while the last sampled backlog is over the limit."""
        self._sample_soon()
        if self.backlog > self.max_backlog:
            self._counters.incr("intake.refused_backlog")
            self._counters.metrics.intake_refused("backlog")
            raise IntakeBusy(
                f"the routing core is {self.backlog} arrivals behind, the limit is "
                f"{self.max_backlog}",
                status=503,
                retry_after=self.retry_after,
            )

    def saturated(self) -> bool:
        """Whether an arrival now would be refused (a poller's cue to pause)."""
        self._sample_soon()
        return self.in_flight >= self.max_in_flight or self.backlog > self.max_backlog

    def bind(self, js: JetStreamContext) -> None:
        """Sample the backlog through ``js`` (the hub connects after building adapters)."""
        self._js = js

    def stop(self) -> None:
        if self._sampling is not None:
            self._sampling.cancel()

    def _sample_soon(self) -> None:
        now = time.monotonic()
        if now - self._sampled_at < self._sample_interval:
            return
        if self._sampling is not None and not self._sampling.done():
            return
        self._sampled_at = now
        self._sampling = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        if self._js is None:
            return
        try:
            info = await self._js.consumer_info(INBOX, ROUTER_DURABLE, timeout=1.0)
        except Exception as exc:  # the next request samples again; the last value stays
            log.debug("backlog not sampled error=%r", exc)
            return
        self.backlog = info.num_pending or 0


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
        admission: IntakeAdmission | None = None,
    ) -> None:
        self._js = js
        self.admission = admission
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
        metrics = self._counters.metrics
        if len(raw) > self.max_message_bytes and too_large == "refuse":
            self._counters.incr("intake.too_large")
            metrics.intake(channel, "too_large")
            raise MessageTooLarge(len(raw), self.max_message_bytes)
        if self.admission is not None:
            # Every channel meets the backlog limit here; HTTP met it (and the in-flight
            # limit) before its body was read.
            self.admission.check_backlog()
        started = time.perf_counter()
        try:
            with tracing.span(
                "poststelle intake",
                kind=tracing.SpanKind.PRODUCER,
                attributes={"poststelle.channel": channel, "poststelle.adapter": adapter},
            ):
                accepted = await self._accept(
                    raw,
                    channel=channel,
                    adapter=adapter,
                    source_message_id=source_message_id,
                    content_type=content_type,
                    extra_headers=extra_headers or {},
                    transport_id=transport_id,
                )
        except Exception as exc:
            if _stream_full(exc):
                # A stream at its limits refuses (discard ``new``): nothing stored is lost,
                # and the arrival is worth a retry once the hub has caught up.
                self._counters.incr("intake.stream_full")
                metrics.intake_refused("stream_full")
                raise IntakeBusy(
                    f"the message was not stored, a stream is full: {exc}",
                    status=503,
                    retry_after=RETRY_AFTER,
                ) from exc
            metrics.intake(channel, "unavailable")
            if is_transient(exc):
                raise IntakeUnavailable(f"the message was not stored: {exc!r}") from exc
            raise
        metrics.intake_seconds(channel, time.perf_counter() - started)
        metrics.intake(channel, "duplicate" if accepted.duplicate else "received")
        return accepted

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
        tracing.inject(headers)
        tracing.annotate(**{"poststelle.case_id": case_id})
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
