"""Parked messages: what is in ``QUARANTINE``, and sending it through again after a fix."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nats.js import JetStreamContext

from poststelle.contracts.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_DETAIL,
    H_MSG_ID,
    H_REASON,
    H_RECEIVED_AT,
    H_STEP,
    inbox_subject,
    safe_token,
)
from poststelle.routing.ops.parked import (
    ParkedRecord,
    Progress,
    ReplayResult,
    replay_selected,
    walk_parked,
)
from poststelle.routing.streams.claim_check import body_ref_of
from poststelle.routing.streams.topology import QUARANTINE

__all__ = [
    "REPLY_STEP",
    "QuarantinedMessage",
    "list_quarantined",
    "replay_quarantined",
]

# Quarantined back-end replies: they came from REPLIES, so INBOX is no place to replay them.
REPLY_STEP = "reply"


@dataclass(frozen=True)
class QuarantinedMessage:
    sequence: int
    time: str
    step: str
    reason: str
    detail: str
    case_id: str
    channel: str
    size: int
    # ``attachments/<name>`` when the body waits in the object store (claim check).
    body_ref: str | None = None
    # The arrival's dedupe id (``xoev:<namespace>:<nachrichtenUUID>``, ``body:sha256-...``):
    # it tells the standard without reading the body.
    identity: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _subject(reason: str | None) -> str | None:
    # The reason is the subject's last token: the server filters, not this process.
    return f"quarantine.*.{safe_token(reason)}" if reason else None


async def list_quarantined(
    js: JetStreamContext,
    *,
    reason: str | None = None,
    after: int = 0,
    limit: int | None = None,
) -> list[QuarantinedMessage]:
    """Records above sequence ``after``, oldest first, at most ``limit`` of them."""
    items: list[QuarantinedMessage] = []
    if limit is not None and limit <= 0:
        return items
    async with contextlib.aclosing(_selected(js, reason, frozenset(), after=after)) as records:
        async for record in records:
            items.append(_message(record))
            if limit is not None and len(items) >= limit:
                break
    return items


def _message(record: ParkedRecord) -> QuarantinedMessage:
    body = body_ref_of(record.headers)
    return QuarantinedMessage(
        sequence=record.sequence,
        time=record.header(H_RECEIVED_AT),
        step=record.header(H_STEP),
        reason=record.header(H_REASON),
        detail=record.header(H_DETAIL),
        case_id=record.header(H_CASE_ID),
        channel=record.header(H_CHANNEL),
        size=body.size if body else record.size,
        body_ref=body.ref if body else None,
        identity=record.header(H_MSG_ID).removeprefix("quarantine:"),
    )


async def replay_quarantined(
    js: JetStreamContext,
    *,
    reason: str | None = None,
    sequences: Sequence[int] | None = None,
    progress: Progress | None = None,
    actor: str | None = None,
) -> ReplayResult:
    """Publish each selected record to ``INBOX`` again, then remove it from quarantine.

    The case id travels along, so the replayed message continues the same case. The replay
    gets its own dedupe id: the original arrival's id is still inside the dedupe window.
    Quarantined replies are selected but skipped: they are not arrivals.
    """
    if reason is None and not sequences:
        raise ValueError("name a --reason or at least one --seq to replay")
    wanted = frozenset(sequences or ())

    def select(until: int | None, bodies: bool) -> AsyncGenerator[ParkedRecord, None]:
        return _selected(js, reason, wanted, until=until, bodies=bodies)

    return await replay_selected(
        js,
        select,
        replayable=lambda record: record.header(H_STEP) != REPLY_STEP,
        target=_inbox_of,
        strip=(H_STEP, H_REASON, H_DETAIL),
        progress=progress,
        actor=actor,
    )


async def _selected(
    js: JetStreamContext,
    reason: str | None,
    wanted: frozenset[int],
    *,
    after: int = 0,
    until: int | None = None,
    bodies: bool = False,
) -> AsyncGenerator[ParkedRecord, None]:
    if wanted:
        after = max(after, min(wanted) - 1)
        until = min(until, max(wanted)) if until is not None else max(wanted)
    walk = walk_parked(
        js, QUARANTINE, subject=_subject(reason), after=after, until=until, bodies=bodies
    )
    async with contextlib.aclosing(walk) as records:
        async for record in records:
            if wanted and record.sequence not in wanted:
                continue
            if reason and record.header(H_REASON) != reason:
                continue
            yield record


def _inbox_of(record: ParkedRecord) -> str:
    return inbox_subject(record.header(H_CHANNEL) or "replay", record.header(H_ADAPTER) or "replay")
