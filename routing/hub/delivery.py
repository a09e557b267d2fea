"""Delivery workers: durable pull consumers that hand messages to adapters.

``DeliveryWorker`` feeds one back end from ``CASES``; ``AnswerWorker`` feeds an origin's
adapter from ``OUTBOX``. Both share one failure policy: a retryable error naks with a delay
that grows with the delivery count (FastStream's and JetStream's own redelivery would be
immediate: a hot loop), a permanent one records the message in ``DLQ`` with the reason and
terminates it, and so does the last allowed attempt.

``DeliveryWorker`` works a fetched batch as one: every event is handed to the back end
(concurrently; a back end that takes the stored bytes as they are gets them unparsed), then
the ``delivered`` AUDIT records of all that arrived are published together, and each event
is acked once its back end has confirmed it and its record is stored. An event that failed
is nak'd or dead-lettered on its own; the rest of its batch is not held back by it.

Effectively once: what a back end confirmed goes to the delivered-ledger (KV ``delivered``,
key back end + event id) once its ``delivered`` record is stored, published with the batch's
acks. Every event fetched is looked up there first (the lookups of a batch concurrently); one
found is acked without calling the back end again and audited as ``delivery-repeat-recognised``.
So a back end sees an event twice only if the hub or the server dies in the window between
the back end's confirmation and the ledger entry being stored (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, FetchTimeoutError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from poststelle.adapters.base import (
    DeliversStoredEvents,
    OutboundAdapter,
    StoredCaseEvent,
    TransportIdMemo,
)
from poststelle.adapters.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from poststelle.contracts.envelope import (
    H_CASE_ID,
    H_ORIGINAL_SUBJECT,
    safe_token,
)
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.replies import Answer
from poststelle.routing.federation.isolation import backend_consumer_name
from poststelle.routing.hub.caseregistry import update_case
from poststelle.routing.ops import tracing
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.dlq import publish_dead_letter
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import (
    BACKEND_CONSUMED_BY,
    CASES,
    DELIVERED_BUCKET,
    OUTBOX,
)

__all__ = [
    "AnswerWorker",
    "AnsweringAdapter",
    "AnswersOnce",
    "ConsumerWorker",
    "DeliveryWorker",
    "consumer_name",
    "durable_consumer_config",
    "ensure_backend_consumer",
    "ledger_key",
    "retry_delay",
]

log = logging.getLogger(__name__)

# The core writes a case's record right after publishing its event; a delivery faster than
# that write waits for it this often, this long, before leaving the state to the audit trail.
_RECORD_WAITS = 5
_RECORD_WAIT = 0.1
# How long a batch's ``delivered`` records may take to be stored before their events are
# nak'd instead of acked (the back end has them: a redelivery is harmless, a lost record not).
_RECORD_STORE_TIMEOUT = 10.0
# An event id that is a KV key token as it is; any other is hashed into one.
_KEY_TOKEN = re.compile(r"[-_=A-Za-z0-9]{1,200}")


def ledger_key(durable: str, event_id: str) -> str:
    """The delivered-ledger key of one event at one back end (its durable consumer's name)."""
    token = event_id if _KEY_TOKEN.fullmatch(event_id) else _digest(event_id)
    return f"{durable}.{token}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def consumer_name(tenant: str, backend: str) -> str:
    """One durable consumer per back end, whether the hub runs it (file drop, webhook) or
    the back end itself does with its own credentials (native NATS): the same name, so the
    server's permissions (``poststelle nats-config``) cover both."""
    return backend_consumer_name(safe_token(tenant), safe_token(backend))


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential back-off: 1 s, 2 s, 4 s ... at most five minutes."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


def durable_consumer_config(max_deliver: int, *, consumed_by: str = "hub") -> ConsumerConfig:
    """``consumed_by`` goes into the consumer's metadata: ``stats`` counts a native back
    end's events as delivered once stored (``ops/stats.py``), a hub-run one's once acked."""
    return ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=60.0,
        max_deliver=max_deliver,
        max_ack_pending=1000,
        metadata={BACKEND_CONSUMED_BY: consumed_by},
    )


def backend_subject(tenant: str, backend: str) -> str:
    return f"case.{safe_token(tenant)}.{safe_token(backend)}.>"


async def ensure_backend_consumer(
    js: JetStreamContext, tenant: str, backend: str, max_deliver: int
) -> str:
    """The durable consumer a native back end pulls from with its own credentials (which
    may not create consumers: ``poststelle nats-config`` grants pull and ack only). Its
    metadata marks it as consumed by the back end: the hub's part of a delivery ends when
    JetStream stored the event under the back end's subject."""
    durable = consumer_name(tenant, backend)
    config = durable_consumer_config(max_deliver, consumed_by="backend")
    config.durable_name = durable
    config.filter_subject = backend_subject(tenant, backend)
    await js.add_consumer(CASES, config)
    return durable


class ConsumerWorker:
    """One durable pull consumer; subclasses say what handling a message means."""

    stream: str
    counter_prefix: str
    # Messages of one batch may be handed over concurrently unless their order matters.
    in_order: bool = True

    def __init__(
        self,
        js: JetStreamContext,
        *,
        durable: str,
        subject: str,
        audit: AuditTrail,
        counters: Counters,
        max_deliver: int = 10,
        batch_size: int = 32,
    ) -> None:
        self._js = js
        self.durable = durable
        self._subject = subject
        self._audit = audit
        self._counters = counters
        self._max_deliver = max_deliver
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    async def handle(self, msg: Msg) -> None:
        raise NotImplementedError

    async def on_start(self) -> None:
        return None

    async def on_stop(self) -> None:
        return None

    async def run(self) -> None:
        await self.on_start()
        subscription = await self._js.pull_subscribe(
            self._subject,
            durable=self.durable,
            stream=self.stream,
            config=durable_consumer_config(self._max_deliver),
        )
        log.info("worker started durable=%s subject=%s", self.durable, self._subject)
        try:
            while not self._stopping.is_set():
                try:
                    batch = await subscription.fetch(self._batch_size, timeout=0.5)
                except (FetchTimeoutError, TimeoutError):
                    continue
                await self._process_batch(batch)
        finally:
            await self.on_stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _process_batch(self, batch: list[Msg]) -> None:
        if self.in_order:
            for msg in batch:
                await self._process(msg)
        else:
            await asyncio.gather(*(self._process(msg) for msg in batch))

    async def _process(self, msg: Msg) -> None:
        started = time.perf_counter()
        try:
            with tracing.span(
                f"poststelle {self.counter_prefix}",
                parent=msg.headers,
                kind=tracing.SpanKind.CONSUMER,
                attributes={"poststelle.consumer": self.durable},
            ):
                await self.handle(msg)
        except (PermanentDeliveryError, RetryableDeliveryError) as exc:
            await self._failed(msg, exc)
            return
        self._counters.metrics.delivery_seconds(self.durable, time.perf_counter() - started)
        await msg.ack_sync()
        self._counted("delivered")

    def _counted(self, outcome: str) -> None:
        self._counters.incr(f"{self.counter_prefix}.{outcome}")
        self._counters.metrics.delivery(self.durable, outcome)

    async def _failed(self, msg: Msg, exc: DeliveryError) -> None:
        """A permanent failure or the last allowed attempt goes to ``DLQ``; any other
        retryable one is nak'd with a growing delay."""
        attempt = msg.metadata.num_delivered
        if isinstance(exc, PermanentDeliveryError):
            await self._dead_letter(msg, str(exc))
            return
        if attempt >= self._max_deliver:
            await self._dead_letter(msg, f"retries exhausted: {exc}")
            return
        delay = retry_delay(attempt)
        log.warning(
            "delivery failed durable=%s attempt=%s retry_in=%.1fs error=%s",
            self.durable,
            attempt,
            delay,
            exc,
        )
        self._counted("retried")
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        case_id = (msg.headers or {}).get(H_CASE_ID, "")
        await publish_dead_letter(
            self._js,
            self.durable,
            msg.metadata.sequence.stream,
            msg.data,
            {**(msg.headers or {}), H_ORIGINAL_SUBJECT: msg.subject},
            reason="delivery-failed",
            detail=" ".join(reason.split())[:1000],
        )
        await msg.term()
        self._counted("dead_lettered")
        log.warning("dead-lettered durable=%s case_id=%s reason=%s", self.durable, case_id, reason)
        if case_id:
            await self._audit.append(case_id, "dead-lettered", consumer=self.durable, reason=reason)


class DeliveryWorker(ConsumerWorker):
    """``CASES`` → one back end."""

    stream = CASES
    counter_prefix = "delivery"
    # One event per case so far, and each carries its own idempotency key: order is free.
    in_order = False

    def __init__(
        self,
        js: JetStreamContext,
        backend: OutboundAdapter,
        audit: AuditTrail,
        counters: Counters,
        *,
        max_deliver: int = 10,
        batch_size: int = 32,
    ) -> None:
        super().__init__(
            js,
            durable=consumer_name(backend.tenant, backend.name),
            subject=backend_subject(backend.tenant, backend.name),
            audit=audit,
            counters=counters,
            max_deliver=max_deliver,
            batch_size=batch_size,
        )
        self.backend = backend
        self._takes_stored = backend if isinstance(backend, DeliversStoredEvents) else None
        self._ledger: KeyValue | None = None

    async def on_start(self) -> None:
        try:
            self._ledger = await self._js.key_value(DELIVERED_BUCKET)
        except (NotFoundError, BadRequestError):
            # A hub whose topology predates the ledger: at-least-once as before, said once.
            log.warning("no delivered-ledger bucket=%s durable=%s", DELIVERED_BUCKET, self.durable)
        await self.backend.start()

    async def on_stop(self) -> None:
        await self.backend.stop()

    async def _process_batch(self, batch: list[Msg]) -> None:
        handed = await asyncio.gather(*(self._hand_over_once(msg) for msg in batch))
        delivered = [
            (msg, taken[0]) for msg, taken in zip(batch, handed, strict=True) if taken is not None
        ]
        entries = [taken[1] for taken in handed if taken is not None]
        if delivered:
            await self._confirm(delivered)
        await self._entries_stored(entries)

    async def _hand_over_once(self, msg: Msg) -> tuple[StoredCaseEvent, asyncio.Future[Any]] | None:
        """``_hand_over`` unless the ledger says the back end already confirmed the event:
        then it is acked and audited as a recognised repeat (``None``: nothing to confirm).
        An event the back end confirmed has its ledger entry published at once, not after
        the rest of its batch: the window a crash can repeat it in is one publish long."""
        try:
            stored = _stored_event(msg.data)
        except PermanentDeliveryError as exc:
            await self._failed(msg, exc)
            return None
        if self._ledger is None or not await self._confirmed_before(stored):
            if await self._hand_over(msg, stored) is None:
                return None
            return stored, await self._ledger_entry(stored)
        await msg.ack()
        self._counters.incr(f"{self.counter_prefix}.repeats_recognised")
        self._counters.metrics.delivery(self.durable, "repeat_recognised")
        log.info(
            "repeat recognised, not delivered again durable=%s case_id=%s event_id=%s",
            self.durable,
            stored.case_id,
            stored.id,
        )
        await self._audit.append(
            stored.case_id,
            "delivery-repeat-recognised",
            tenant=self.backend.tenant,
            backend=self.backend.name,
            event_id=stored.id,
            attempt=msg.metadata.num_delivered,
        )
        return None

    async def _confirmed_before(self, stored: StoredCaseEvent) -> bool:
        assert self._ledger is not None
        try:
            await self._ledger.get(ledger_key(self.durable, stored.id))
        except KeyNotFoundError:
            return False
        except Exception as exc:  # the ledger unreadable: deliver (at least once) rather than stall
            log.warning("delivered-ledger unreadable durable=%s error=%r", self.durable, exc)
            return False
        return True

    async def _hand_over(
        self, msg: Msg, stored: StoredCaseEvent | None = None
    ) -> StoredCaseEvent | None:
        """The event to the back end; ``None`` when it did not arrive (the message has then
        been nak'd or dead-lettered with its reason)."""
        started = time.perf_counter()
        try:
            with tracing.span(
                "poststelle delivery",
                parent=msg.headers,
                kind=tracing.SpanKind.CONSUMER,
                attributes={
                    "poststelle.consumer": self.durable,
                    "poststelle.case_id": (msg.headers or {}).get(H_CASE_ID, ""),
                },
            ):
                if stored is None:
                    stored = _stored_event(msg.data)
                if self._takes_stored is not None:
                    await self._takes_stored.deliver_stored(stored)
                else:
                    await self.backend.deliver(_case_event(stored))
        except (PermanentDeliveryError, RetryableDeliveryError) as exc:
            await self._failed(msg, exc)
            return None
        self._counters.metrics.delivery_seconds(self.durable, time.perf_counter() - started)
        return stored

    async def _confirm(self, delivered: list[tuple[Msg, StoredCaseEvent]]) -> None:
        """Record what arrived, then ack it: the ``delivered`` AUDIT records of the whole
        batch are published together (one wait instead of a round trip per event), with the
        case registry's ``delivered`` state beside them."""
        records = [
            await self._audit.append_async(
                stored.case_id,
                "delivered",
                tenant=self.backend.tenant,
                backend=self.backend.name,
                event_id=stored.id,
                attempt=msg.metadata.num_delivered,
            )
            for msg, stored in delivered
        ]
        await asyncio.gather(
            asyncio.wait(records, timeout=_RECORD_STORE_TIMEOUT),
            *(self._record_delivered(stored.case_id) for _, stored in delivered),
        )
        for (msg, stored), record in zip(delivered, records, strict=True):
            if record.done() and record.exception() is None:
                await msg.ack()
                self._counted("delivered")
                continue
            # The back end has the event but the trail does not say so yet: deliver it
            # again later (harmless, the event id is its idempotency key) rather than ack it.
            error = record.exception() if record.done() else "not stored in time"
            record.cancel()
            # Its ledger entry would make the redelivery a recognised repeat, with no
            # ``delivered`` record ever: withdrawn, the redelivery goes to the back end again.
            await self._forget(stored)
            delay = retry_delay(msg.metadata.num_delivered)
            log.warning(
                "delivered but not recorded durable=%s case_id=%s retry_in=%.1fs error=%r",
                self.durable,
                stored.case_id,
                delay,
                error,
            )
            await msg.nak(delay=delay)

    async def _forget(self, stored: StoredCaseEvent) -> None:
        if self._ledger is None:
            return
        try:
            await self._ledger.delete(ledger_key(self.durable, stored.id))
        except Exception as exc:  # left: the redelivery is then audited as a recognised repeat
            log.warning("delivered-ledger entry not withdrawn event_id=%s error=%r", stored.id, exc)

    async def _ledger_entry(self, stored: StoredCaseEvent) -> asyncio.Future[Any]:
        """The ledger entry of a confirmed event, published without waiting for its ack."""
        if self._ledger is None:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        key = ledger_key(self.durable, stored.id)
        return await self._js.publish_async(
            f"$KV.{DELIVERED_BUCKET}.{key}", stored.case_id.encode()
        )

    async def _entries_stored(self, entries: list[asyncio.Future[Any]]) -> None:
        """Wait for the batch's ledger entries; a missing one costs only the protection
        against a repeat after a crash (the event is acked and recorded), so it is logged."""
        if not entries:
            return
        await asyncio.wait(entries, timeout=_RECORD_STORE_TIMEOUT)
        missing = sum(1 for e in entries if not e.done() or e.exception() is not None)
        for entry in entries:
            if not entry.done():
                entry.cancel()
        if missing:
            self._counters.incr(f"{self.counter_prefix}.ledger_missing", missing)
            log.warning(
                "delivered-ledger entries not stored durable=%s count=%d", self.durable, missing
            )

    async def _record_delivered(self, case_id: str) -> None:
        """``delivered`` (with its time) in the case registry: once, whatever came later
        (a reply's state is newer and stays; the revision check keeps its update)."""
        at = datetime.now(UTC).isoformat()

        def delivered(record: dict[str, Any]) -> bool:
            if record.get("delivered_at"):  # a redelivery: already recorded
                return False
            record["delivered_at"] = at
            if record.get("state") == "routed":
                record["state"] = "delivered"
            return True

        try:
            for _ in range(_RECORD_WAITS):
                if await update_case(self._js, case_id, delivered) is not None:
                    return
                await asyncio.sleep(_RECORD_WAIT)
            log.warning("delivered case has no registry record case_id=%s", case_id)
        except Exception as exc:  # the back end has it: a bookkeeping failure must not redeliver
            log.warning("delivered state not recorded case_id=%s error=%r", case_id, exc)


def _stored_event(raw: bytes) -> StoredCaseEvent:
    try:
        return StoredCaseEvent.from_json(raw)
    except ValidationError as exc:
        raise PermanentDeliveryError(f"not a CaseEvent: {_errors(exc)}") from exc


def _case_event(stored: StoredCaseEvent) -> CaseEvent:
    """The full model, for back ends that take one (and so validate every field first)."""
    try:
        return stored.event()
    except ValidationError as exc:
        raise PermanentDeliveryError(f"not a CaseEvent: {_errors(exc)}") from exc


def _errors(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    return f"{exc.error_count()} errors, first at {where}: {first['msg']}"


class AnsweringAdapter(Protocol):
    """An inbound adapter that can also answer its origin (XTA mailbox, portal)."""

    name: str

    async def answer(self, answer: Answer) -> dict[str, object]: ...


@runtime_checkable
class AnswersOnce(Protocol):
    """An answering adapter whose transport gives each message an id it refuses to take
    twice (XTA's MessageID, fault 9024): it keeps the id of the first attempt in ``memo``
    before sending, so a resend after a crash is recognised instead of duplicated."""

    name: str

    async def answer_once(self, answer: Answer, memo: TransportIdMemo) -> dict[str, object]: ...


class _LedgerMemo:
    """One ``OUTBOX`` record's transport id in the delivered-ledger bucket (same TTL)."""

    def __init__(self, ledger: KeyValue, key: str) -> None:
        self._ledger = ledger
        self._key = key

    async def recall(self) -> str | None:
        try:
            entry = await self._ledger.get(self._key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def remember(self, transport_id: str) -> None:
        await self._ledger.put(self._key, transport_id.encode())


class AnswerWorker(ConsumerWorker):
    """``OUTBOX`` → the origin's adapter, which answers in the origin's language."""

    stream = OUTBOX
    counter_prefix = "answer"
    # A status must reach the origin before the decision that follows it.
    in_order = True

    def __init__(
        self,
        js: JetStreamContext,
        adapter: AnsweringAdapter,
        audit: AuditTrail,
        counters: Counters,
        *,
        max_deliver: int = 10,
    ) -> None:
        super().__init__(
            js,
            durable=f"answer-{safe_token(adapter.name)}",
            subject=f"outbox.*.{safe_token(adapter.name)}",
            audit=audit,
            counters=counters,
            max_deliver=max_deliver,
        )
        self.adapter = adapter
        self._once = adapter if isinstance(adapter, AnswersOnce) else None
        self._ledger: KeyValue | None = None

    async def on_start(self) -> None:
        if self._once is None:
            return
        try:
            self._ledger = await self._js.key_value(DELIVERED_BUCKET)
        except (NotFoundError, BadRequestError):
            log.warning("no delivered-ledger bucket=%s durable=%s", DELIVERED_BUCKET, self.durable)

    async def handle(self, msg: Msg) -> None:
        answer = Answer.from_message(msg.data, dict(msg.headers or {}))
        if self._once is not None and self._ledger is not None:
            # The stream sequence: the same for every delivery of this record, new for a replay.
            key = f"{self.durable}.outbox-{msg.metadata.sequence.stream}"
            facts = await self._once.answer_once(answer, _LedgerMemo(self._ledger, key))
        else:
            facts = await self.adapter.answer(answer)
        await self._audit.append(
            answer.case_id,
            "answered",
            adapter=self.adapter.name,
            kind=answer.kind,
            message_type=answer.message_type,
            **facts,
        )
