"""Parked messages: what is in ``QUARANTINE``, and sending it through again after a fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nats.js import JetStreamContext

from poststelle.routing.claim_check import body_ref_of
from poststelle.routing.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_DETAIL,
    H_REASON,
    H_RECEIVED_AT,
    H_STEP,
    inbox_subject,
)
from poststelle.routing.parked import ParkedRecord, parked_records, replay_records
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
    # ``attachments/<name>`` when the body waits in the object store (claim check).
    body_ref: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def list_quarantined(
    js: JetStreamContext, *, reason: str | None = None
) -> list[QuarantinedMessage]:
    items = []
    for record in await parked_records(js, QUARANTINE):
        if reason and record.header(H_REASON) != reason:
            continue
        body = body_ref_of(record.headers)
        items.append(
            QuarantinedMessage(
                sequence=record.sequence,
                time=record.header(H_RECEIVED_AT),
                step=record.header(H_STEP),
                reason=record.header(H_REASON),
                detail=record.header(H_DETAIL),
                case_id=record.header(H_CASE_ID),
                channel=record.header(H_CHANNEL),
                size=body.size if body else len(record.data),
                body_ref=body.ref if body else None,
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
    wanted = set(sequences or [])
    selected = [
        record
        for record in await parked_records(js, QUARANTINE)
        if (not wanted or record.sequence in wanted)
        and (not reason or record.header(H_REASON) == reason)
    ]
    return await replay_records(js, selected, target=_inbox_of, strip=(H_STEP, H_REASON, H_DETAIL))


def _inbox_of(record: ParkedRecord) -> str:
    return inbox_subject(record.header(H_CHANNEL) or "replay", record.header(H_ADAPTER) or "replay")
