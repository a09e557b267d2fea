"""Parked messages: what is in ``QUARANTINE``, and sending it through again after a fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.routing.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_DETAIL,
    H_MSG_ID,
    H_REASON,
    H_RECEIVED_AT,
    H_STEP,
    inbox_subject,
)
from poststelle.routing.topology import QUARANTINE

__all__ = ["QuarantinedMessage", "list_quarantined", "replay_quarantined"]


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

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def _records(js: JetStreamContext) -> list[tuple[int, Any]]:
    try:
        info = await js.stream_info(QUARANTINE)
    except NotFoundError:
        return []
    if not info.state.messages:
        return []
    records = []
    for sequence in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            records.append((sequence, await js.get_msg(QUARANTINE, sequence)))
        except NotFoundError:  # deleted after a replay
            continue
    return records


async def list_quarantined(
    js: JetStreamContext, *, reason: str | None = None
) -> list[QuarantinedMessage]:
    items = []
    for sequence, raw in await _records(js):
        headers = raw.headers or {}
        if reason and headers.get(H_REASON) != reason:
            continue
        items.append(
            QuarantinedMessage(
                sequence=sequence,
                time=headers.get(H_RECEIVED_AT, ""),
                step=headers.get(H_STEP, ""),
                reason=headers.get(H_REASON, ""),
                detail=headers.get(H_DETAIL, ""),
                case_id=headers.get(H_CASE_ID, ""),
                channel=headers.get(H_CHANNEL, ""),
                size=len(raw.data or b""),
            )
        )
    return items


async def replay_quarantined(
    js: JetStreamContext, *, reason: str | None = None, sequences: Sequence[int] | None = None
) -> list[int]:
    """Publish each selected record to ``INBOX`` again, then remove it from quarantine.

    The case id travels along, so the replayed message continues the same case. The replay
    gets its own dedupe id: the original arrival's id is still inside the dedupe window.
    """
    if reason is None and not sequences:
        raise ValueError("name a --reason or at least one --seq to replay")
    replayed = []
    wanted = set(sequences or [])
    for sequence, raw in await _records(js):
        headers = dict(raw.headers or {})
        if wanted and sequence not in wanted:
            continue
        if reason and headers.get(H_REASON) != reason:
            continue
        for key in (H_STEP, H_REASON, H_DETAIL):
            headers.pop(key, None)
        headers[H_MSG_ID] = f"replay:{QUARANTINE}:{sequence}"
        subject = inbox_subject(headers.get(H_CHANNEL, "replay"), headers.get(H_ADAPTER, "replay"))
        await js.publish(subject, raw.data or b"", headers=headers)
        await js.delete_msg(QUARANTINE, sequence)
        replayed.append(sequence)
    return replayed
