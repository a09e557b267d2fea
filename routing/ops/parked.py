"""What ``QUARANTINE`` and ``DLQ`` share: reading parked records, and sending them on again.

Records are read through a short-lived ephemeral consumer that fetches in batches: the
server skips the gaps replays leave behind, whatever was deleted, and 10,000 records cost
a few dozen round trips instead of one request per record. A walk stops at the stream's
last sequence when it began, so records a replay parks again are not read (or replayed)
twice in the same run.

A parked record stays in its stream until a replay has republished it; the replay gets a
dedupe id of its own (the original's id is still inside the dedupe window) that is derived
from the record, so a replay interrupted between publish and delete repeats harmlessly.
Each replay also leaves an entry in the ``REPLAYS`` ledger (same dedupe id), which is what
lets ``poststelle stats`` tell replays from arrivals. A replay that names its ``actor``
(the console's user, the CLI's login name) adds a ``replayed`` hop with it to each case's
audit trail, just before the publish: who sent the message through again, from where, to
where.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, NotFoundError

from poststelle.contracts.envelope import H_CASE_ID, H_MSG_ID
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.streams.topology import replay_ledger_subject

__all__ = [
    "ParkedRecord",
    "Progress",
    "ReplayResult",
    "Select",
    "replay_id",
    "replay_records",
    "replay_selected",
    "walk_parked",
]

log = logging.getLogger(__name__)

# Headers JetStream adds to what a consumer delivers; they are not part of the record.
_DELIVERY_HEADERS = ("Nats-Msg-Size",)
_FETCH_TIMEOUT = 2.0
# Bodies are fetched only for replays; a smaller batch bounds the memory large records take.
_HEADER_BATCH = 1000
_BODY_BATCH = 64
# Replays are pipelined: this many publishes in flight, then their ledger entries and deletes.
_REPLAY_WINDOW = 64

# Called after each replayed window with (records replayed so far, records selected in all).
Progress = Callable[[int, int], None]
# The records an operator chose: ``select(until, bodies)`` walks them up to sequence ``until``.
Select = Callable[[int | None, bool], AsyncGenerator["ParkedRecord", None]]


@dataclass(frozen=True)
class ParkedRecord:
    stream: str
    sequence: int
    subject: str
    headers: dict[str, str]
    data: bytes
    time: datetime | None
    # The stored body's size: ``data`` is empty when only headers were read.
    size: int

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True)
class ReplayResult:
    replayed: list[int] = field(default_factory=list)
    # Records that were selected but cannot be replayed (the caller says why): they stay.
    skipped: list[int] = field(default_factory=list)


def replay_id(stream: str, sequence: int) -> str:
    return f"replay:{stream}:{sequence}"


async def walk_parked(
    js: JetStreamContext,
    stream: str,
    *,
    subject: str | None = None,
    after: int = 0,
    until: int | None = None,
    bodies: bool = False,
) -> AsyncGenerator[ParkedRecord, None]:
    """Records in ``stream`` (optionally matching ``subject``) with a sequence above
    ``after``, up to ``until`` or the last record present when the walk began, oldest first.

    Without ``bodies`` only headers travel (listing 10,000 records stays fast and small).
    """
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return
    last = int(info.state.last_seq or 0)
    if until is not None:
        last = min(last, until)
    if last <= after:
        return
    name = f"walk-{uuid.uuid4().hex}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            filter_subject=subject or ">",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            ack_policy=AckPolicy.NONE,
            headers_only=not bodies,
            mem_storage=True,
            # The server removes the consumer by itself if this process dies mid-walk.
            inactive_threshold=30.0,
        ),
    )
    subscription = await js.pull_subscribe_bind(name, stream=stream)
    try:
        pending = (await subscription.consumer_info()).num_pending or 0
        batch = _BODY_BATCH if bodies else _HEADER_BATCH
        while pending:
            try:
                msgs = await subscription.fetch(batch, timeout=_FETCH_TIMEOUT)
            except (FetchTimeoutError, TimeoutError):
                return
            for msg in msgs:
                metadata = msg.metadata
                sequence = metadata.sequence.stream
                if sequence > last:
                    return
                headers = dict(msg.headers or {})
                size = int(headers.get("Nats-Msg-Size", len(msg.data)))
                for delivery_header in _DELIVERY_HEADERS:
                    headers.pop(delivery_header, None)
                yield ParkedRecord(
                    stream=stream,
                    sequence=sequence,
                    subject=msg.subject,
                    headers=headers,
                    data=msg.data if bodies else b"",
                    time=metadata.timestamp,
                    size=size,
                )
                pending = metadata.num_pending
                if sequence == last:
                    return
    finally:
        # Either may be gone already, or the connection closing; the server's inactivity
        # threshold removes what is left.
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)


async def _delete(js: JetStreamContext, stream: str, sequence: int) -> None:
    """``delete_msg`` without the secure erase nats-py always asks for: overwriting the
    stored copy would protect nothing (the replay just published the same bytes) and makes
    each delete some 30 times slower."""
    request = json.dumps({"seq": sequence, "no_erase": True}).encode()
    await js._api_request(f"{js._prefix}.STREAM.MSG.DELETE.{stream}", request)


async def replay_selected(
    js: JetStreamContext,
    select: Select,
    *,
    replayable: Callable[[ParkedRecord], bool],
    target: Callable[[ParkedRecord], str],
    strip: Collection[str],
    progress: Progress | None = None,
    actor: str | None = None,
) -> ReplayResult:
    """Replay what ``select`` yields and ``replayable`` accepts; the rest is ``skipped``.

    A first pass over headers only counts the selection (for ``progress``) and fixes its
    end: what is parked meanwhile, including records this replay parks again, waits for
    the next replay.
    """
    selected, skipped, last = 0, [], 0
    async with contextlib.aclosing(select(None, False)) as records:
        async for record in records:
            last = record.sequence
            if replayable(record):
                selected += 1
            else:
                skipped.append(record.sequence)
    if not selected:
        return ReplayResult(skipped=skipped)
    async with contextlib.aclosing(_only(select(last, True), replayable)) as records:
        replayed = await replay_records(
            js,
            records,
            target=target,
            strip=strip,
            total=selected,
            progress=progress,
            actor=actor,
        )
    return ReplayResult(replayed=replayed, skipped=skipped)


async def _only(
    records: AsyncGenerator[ParkedRecord, None], keep: Callable[[ParkedRecord], bool]
) -> AsyncGenerator[ParkedRecord, None]:
    async with contextlib.aclosing(records) as walk:
        async for record in walk:
            if keep(record):
                yield record


async def replay_records(
    js: JetStreamContext,
    records: AsyncIterator[ParkedRecord],
    *,
    target: Callable[[ParkedRecord], str],
    strip: Collection[str],
    total: int = 0,
    progress: Progress | None = None,
    actor: str | None = None,
) -> list[int]:
    """Publish each record to ``target(record)`` without the ``strip`` headers, note it in
    the ``REPLAYS`` ledger, then delete it. Returns the sequences replayed.

    The ledger entry and the delete follow JetStream's ack of the publish: a crash in
    between leaves the record parked, and replaying it again is a duplicate on both the
    target and the ledger, so the count stays exact once the replay has been repeated.
    """
    replayed: list[int] = []
    window: list[ParkedRecord] = []
    async for record in records:
        window.append(record)
        if len(window) >= _REPLAY_WINDOW:
            replayed += await _replay_window(js, window, target, strip, actor)
            window = []
            if progress:
                progress(len(replayed), total)
    if window:
        replayed += await _replay_window(js, window, target, strip, actor)
        if progress:
            progress(len(replayed), total)
    return replayed


async def _replay_window(
    js: JetStreamContext,
    records: list[ParkedRecord],
    target: Callable[[ParkedRecord], str],
    strip: Collection[str],
    actor: str | None,
) -> list[int]:
    subjects = [target(record) for record in records]
    if actor is not None:
        await _audit_replays(js, records, subjects, actor)
    published = []
    for record, subject in zip(records, subjects, strict=True):
        headers = {key: value for key, value in record.headers.items() if key not in strip}
        headers[H_MSG_ID] = replay_id(record.stream, record.sequence)
        published.append(await js.publish_async(subject, record.data, headers=headers))
    await asyncio.gather(*published)
    ledger = []
    for record, subject in zip(records, subjects, strict=True):
        entry = {
            "stream": record.stream,
            "sequence": record.sequence,
            "subject": subject,
            "case_id": record.header(H_CASE_ID),
        }
        ledger.append(
            await js.publish_async(
                replay_ledger_subject(record.stream, subject),
                json.dumps(entry).encode(),
                headers={H_MSG_ID: replay_id(record.stream, record.sequence)},
            )
        )
    await asyncio.gather(*ledger)
    await asyncio.gather(*(_delete(js, record.stream, record.sequence) for record in records))
    for record, subject in zip(records, subjects, strict=True):
        log.info(
            "replayed stream=%s seq=%s to=%s by=%s",
            record.stream,
            record.sequence,
            subject,
            actor or "-",
        )
    return [record.sequence for record in records]


async def _audit_replays(
    js: JetStreamContext, records: list[ParkedRecord], subjects: list[str], actor: str
) -> None:
    """One ``replayed`` hop per case, stored before the publish: the hops the replayed
    message causes (routed, delivered) follow it in the trail. A replay that fails after it
    is run again and leaves a second hop. A record without a case id (a dead letter whose
    original was gone) has no trail to extend; the log line still names the actor."""
    audit = AuditTrail(js)
    acks = [
        await audit.append_async(
            record.header(H_CASE_ID),
            "replayed",
            by=actor,
            stream=record.stream,
            sequence=record.sequence,
            to=subject,
        )
        for record, subject in zip(records, subjects, strict=True)
        if record.header(H_CASE_ID)
    ]
    await asyncio.gather(*acks)
