"""What ``QUARANTINE`` and ``DLQ`` share: reading parked records, and sending them on again.

A parked record stays in its stream until a replay has republished it; the replay gets a
dedupe id of its own (the original's id is still inside the dedupe window) that is derived
from the record, so a replay interrupted between publish and delete repeats harmlessly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.routing.envelope import H_MSG_ID

__all__ = ["ParkedRecord", "parked_records", "replay_id", "replay_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParkedRecord:
    stream: str
    sequence: int
    subject: str
    headers: dict[str, str]
    data: bytes
    time: datetime | None

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


def replay_id(stream: str, sequence: int) -> str:
    return f"replay:{stream}:{sequence}"


async def parked_records(
    js: JetStreamContext, stream: str, *, subject: str | None = None
) -> list[ParkedRecord]:
    """Every record still in ``stream`` (optionally on one subject), oldest first.

    ``next_by_subj`` lets the server skip the gaps replays leave behind, so listing costs one
    request per record, not one per sequence number ever used.
    """
    records: list[ParkedRecord] = []
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=sequence, subject=subject, next=True)
        except NotFoundError:  # past the last record, or the stream does not exist
            return records
        assert raw.seq is not None
        records.append(
            ParkedRecord(
                stream=stream,
                sequence=raw.seq,
                subject=raw.subject or "",
                headers=dict(raw.headers or {}),
                data=raw.data or b"",
                time=raw.time,
            )
        )
        sequence = raw.seq + 1


async def replay_records(
    js: JetStreamContext,
    records: Iterable[ParkedRecord],
    *,
    target: Callable[[ParkedRecord], str],
    strip: Collection[str],
) -> list[int]:
    """Publish each record to ``target(record)`` without the ``strip`` headers, then delete it.

    Returns the sequences replayed. The delete follows JetStream's ack of the publish: a
    crash in between leaves the record parked, and replaying it again is a duplicate.
    """
    replayed = []
    for record in records:
        headers = {key: value for key, value in record.headers.items() if key not in strip}
        headers[H_MSG_ID] = replay_id(record.stream, record.sequence)
        subject = target(record)
        await js.publish(subject, record.data, headers=headers)
        await js.delete_msg(record.stream, record.sequence)
        log.info("replayed stream=%s seq=%s to=%s", record.stream, record.sequence, subject)
        replayed.append(record.sequence)
    return replayed
