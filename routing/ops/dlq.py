"""Dead letters: deliveries that will not happen without an operator, and replaying them.

Two paths lead into ``DLQ``, both keyed ``dlq:<consumer>:<stream seq>`` so that a message
is recorded once whichever path sees it first:

- a delivery worker that gets a permanent error, or a retryable one on its last attempt,
  records the message itself (``ConsumerWorker._dead_letter``);
- a message whose handler never answered (a worker that crashed or hung past ``ack_wait``)
  reaches ``max_deliver`` silently: JetStream keeps it in its stream and only raises the
  advisory ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>``. The
  ``DeadLetterRecorder`` turns those advisories into DLQ records.

Advisories are core NATS messages, published once and lost when nobody listens. The hub's
topology therefore captures them in the ``ADVISORIES`` stream, and the recorder reads that
stream through a durable consumer: advisories raised while the hub is down wait there.
What this does not cover: an advisory raised while the ``ADVISORIES`` stream itself could
not store it (before the topology first existed, or a cluster without quorum). Those
messages still sit in their source stream behind the consumer's ack floor; finding them
needs a scan of the stream against the consumer's state, which JetStream's API does not
expose per message.

``MSG_TERMINATED`` advisories are not read: only the hub's own workers terminate messages,
and they write the DLQ record before they terminate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import FetchTimeoutError, NotFoundError

from poststelle.contracts.envelope import (
    H_CASE_ID,
    H_DETAIL,
    H_MSG_ID,
    H_ORIGINAL_SUBJECT,
    H_REASON,
    dead_letter_id,
    dlq_subject,
)
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.ops.parked import (
    ParkedRecord,
    Progress,
    ReplayResult,
    replay_selected,
    walk_parked,
)
from poststelle.routing.streams.topology import ADVISORIES, DEAD_LETTER_SOURCES, DLQ

__all__ = [
    "MAX_DELIVERIES_REASON",
    "RECORDER_DURABLE",
    "DeadLetter",
    "DeadLetterRecorder",
    "ReplayResult",
    "list_dead_letters",
    "publish_dead_letter",
    "replay_dead_letters",
]

log = logging.getLogger(__name__)

RECORDER_DURABLE = "dlq-recorder"
MAX_DELIVERIES_REASON = "max deliveries (ack timeouts)"
_MAX_DELIVER_TYPE = "io.nats.jetstream.advisory.v1.max_deliver"
_RETRY_DELAY = 5.0


@dataclass(frozen=True)
class _Advisory:
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int

    @classmethod
    def parse(cls, raw: bytes) -> _Advisory:
        """Raises ``ValueError`` for anything that is not a max-deliveries advisory."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(body, dict) or body.get("type") != _MAX_DELIVER_TYPE:
            raise ValueError("not a max-deliveries advisory")
        try:
            return cls(
                stream=str(body["stream"]),
                consumer=str(body["consumer"]),
                stream_seq=int(body["stream_seq"]),
                deliveries=int(body.get("deliveries", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"incomplete advisory: {exc!r}") from exc


async def publish_dead_letter(
    js: JetStreamContext,
    consumer: str,
    stream_sequence: int,
    data: bytes,
    headers: Mapping[str, str],
    *,
    reason: str,
    detail: str,
) -> PubAck:
    """Record ``consumer``'s message #``stream_sequence`` in ``DLQ``: its body and ``headers``
    (with ``H_ORIGINAL_SUBJECT`` where the subject is known, which a replay goes back to),
    plus why. The record's id makes a second record of the same message a duplicate."""
    record = {
        **headers,
        H_MSG_ID: dead_letter_id(consumer, stream_sequence),
        H_CASE_ID: headers.get(H_CASE_ID, ""),
        H_REASON: reason,
        H_DETAIL: detail,
    }
    return await js.publish(dlq_subject(consumer), data, headers=record)


class DeadLetterRecorder:
    """Reads ``ADVISORIES`` and records each exhausted message in ``DLQ``, once."""

    def __init__(
        self,
        js: JetStreamContext,
        audit: AuditTrail,
        counters: Counters,
        *,
        streams: Sequence[str] = DEAD_LETTER_SOURCES,
        batch_size: int = 32,
    ) -> None:
        self._js = js
        self._audit = audit
        self._counters = counters
        self._streams = frozenset(streams)
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        subscription = await self._js.pull_subscribe(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>",
            durable=RECORDER_DURABLE,
            stream=ADVISORIES,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=60.0,
                max_deliver=-1,
            ),
        )
        log.info("dead-letter recorder started durable=%s", RECORDER_DURABLE)
        while not self._stopping.is_set():
            try:
                batch = await subscription.fetch(self._batch_size, timeout=0.5)
            except (FetchTimeoutError, TimeoutError):
                continue
            for msg in batch:
                try:
                    await self.record(msg.data)
                except Exception:
                    # The advisory stays: a failed record is tried again, never skipped.
                    log.exception("dead-letter recording failed; retrying later")
                    await msg.nak(delay=_RETRY_DELAY)
                    continue
                await msg.ack_sync()

    async def record(self, advisory_body: bytes) -> bool:
        """Record the message an advisory names; ``False`` when there was nothing new."""
        try:
            advisory = _Advisory.parse(advisory_body)
        except ValueError as exc:
            log.warning("advisory ignored reason=%s", exc)
            return False
        if advisory.stream not in self._streams:
            return False
        headers: dict[str, str] = {}
        data = b""
        detail = f"{MAX_DELIVERIES_REASON}: {advisory.deliveries} deliveries without an ack"
        try:
            original = await self._js.get_msg(advisory.stream, advisory.stream_seq)
        except NotFoundError:
            # Aged out or deleted: the record still tells the operator what was lost.
            detail += f"; the original ({advisory.stream} #{advisory.stream_seq}) is gone"
        else:
            headers = dict(original.headers or {})
            data = original.data or b""
            headers[H_ORIGINAL_SUBJECT] = original.subject or ""
        case_id = headers.get(H_CASE_ID, "")
        ack = await publish_dead_letter(
            self._js,
            advisory.consumer,
            advisory.stream_seq,
            data,
            headers,
            reason="max-deliveries",
            detail=detail,
        )
        if ack.duplicate:  # the worker got there first
            return False
        self._counters.incr("dlq.recorded")
        self._counters.metrics.dead_letters_recorded.inc()
        log.warning(
            "dead-lettered from advisory stream=%s consumer=%s seq=%s case_id=%s",
            advisory.stream,
            advisory.consumer,
            advisory.stream_seq,
            case_id,
        )
        if case_id:
            await self._audit.append(
                case_id, "dead-lettered", consumer=advisory.consumer, reason=detail
            )
        return True


# -- operator side ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    consumer: str
    case_id: str
    reason: str
    time: str
    size: int
    subject: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# Replays publish only where the hub's own streams listen, whatever a header claims.
_REPLAYABLE_PREFIXES = ("inbox.", "case.", "reply.", "outbox.")


def _replay_target(record: ParkedRecord) -> str:
    subject = record.header(H_ORIGINAL_SUBJECT)
    tokens = subject.split(".")
    if not subject.startswith(_REPLAYABLE_PREFIXES) or any(
        token in ("", "*", ">") for token in tokens
    ):
        return ""
    return subject


def _consumer_of(record: ParkedRecord) -> str:
    return record.subject.removeprefix("dlq.")


async def _selected(
    js: JetStreamContext,
    consumer: str | None,
    sequences: Sequence[int] | None = None,
    *,
    after: int = 0,
    until: int | None = None,
    bodies: bool = False,
) -> AsyncGenerator[ParkedRecord, None]:
    subject = dlq_subject(consumer) if consumer else None
    wanted = frozenset(sequences or ())
    if wanted:
        after = max(after, min(wanted) - 1)
        until = min(until, max(wanted)) if until is not None else max(wanted)
    walk = walk_parked(js, DLQ, subject=subject, after=after, until=until, bodies=bodies)
    async with contextlib.aclosing(walk) as records:
        async for record in records:
            if not wanted or record.sequence in wanted:
                yield record


async def list_dead_letters(
    js: JetStreamContext,
    *,
    consumer: str | None = None,
    after: int = 0,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Records above sequence ``after``, oldest first, at most ``limit`` of them."""
    letters: list[DeadLetter] = []
    if limit is not None and limit <= 0:
        return letters
    async with contextlib.aclosing(_selected(js, consumer, after=after)) as records:
        async for record in records:
            letters.append(
                DeadLetter(
                    sequence=record.sequence,
                    consumer=_consumer_of(record),
                    case_id=record.header(H_CASE_ID),
                    reason=record.header(H_DETAIL) or record.header(H_REASON),
                    time=record.time.isoformat() if record.time else "",
                    size=record.size,
                    subject=record.header(H_ORIGINAL_SUBJECT),
                )
            )
            if limit is not None and len(letters) >= limit:
                break
    return letters


async def replay_dead_letters(
    js: JetStreamContext,
    *,
    consumer: str | None = None,
    sequences: Sequence[int] | None = None,
    progress: Progress | None = None,
    actor: str | None = None,
) -> ReplayResult:
    """Publish each selected record to its original subject again, then delete it.

    The consumer that gave up on it sees it as a new message; a CaseEvent keeps its event id,
    so the back end's idempotency key is the one of the first attempt.
    """
    if consumer is None and not sequences:
        raise ValueError("name a --consumer or at least one --seq to replay")

    def select(until: int | None, bodies: bool) -> AsyncGenerator[ParkedRecord, None]:
        return _selected(js, consumer, sequences, until=until, bodies=bodies)

    return await replay_selected(
        js,
        select,
        replayable=lambda record: bool(_replay_target(record)),
        target=_replay_target,
        strip=(H_REASON, H_DETAIL, H_ORIGINAL_SUBJECT),
        progress=progress,
        actor=actor,
    )
