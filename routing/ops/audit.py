"""Every hop of every case, appended to ``AUDIT`` under ``audit.<case-id>``.

One hop is kept elsewhere: the routing core stores a case's ``routed`` hop (rule, event id,
time) in the case's ``cases`` registry record, which it writes anyway, instead of a third
publish per routed message. ``read`` puts it back in its place among the others, so the
trail that ``poststelle trace`` shows is the same. The record outlives the trail: the
bucket keeps it without an age limit, ``AUDIT`` keeps a year. Records written before the
hop moved have no ``routed`` facts; their hop is an ``AUDIT`` record as before.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError

from poststelle.contracts.envelope import audit_subject, safe_token
from poststelle.routing.streams.topology import AUDIT, CASES_BUCKET

__all__ = ["ROUTED_HOP", "AuditEntry", "AuditTrail", "routed_hop"]

# The hop the routing core keeps in the case's registry record (``CaseRecord.routed``).
ROUTED_HOP = "routed"


class AuditEntry(BaseModel):
    case_id: str
    hop: str
    at: datetime
    detail: dict[str, Any] = {}


def routed_hop(record: dict[str, Any]) -> AuditEntry | None:
    """The ``routed`` hop kept in a ``cases`` record, with the details the ``AUDIT`` record
    had; ``None`` for a record without one (written before the hop moved there)."""
    routed = record.get("routed")
    if not isinstance(routed, dict) or not routed:
        return None
    try:
        return AuditEntry(
            case_id=str(record.get("case_id", "")),
            hop=ROUTED_HOP,
            at=record.get("created"),  # type: ignore[arg-type]  # pydantic parses the ISO time
            detail={
                "tenant": record.get("tenant"),
                "backend": record.get("backend"),
                "rule": routed.get("rule"),
                "event_id": routed.get("event_id"),
                "message_type": record.get("message_type"),
                # With tracing on: the trace the case's spans belong to (docs/observability.md).
                **({"traceparent": routed["traceparent"]} if routed.get("traceparent") else {}),
            },
        )
    except ValidationError:
        return None


def _in_place(entries: list[AuditEntry], hop: AuditEntry) -> list[AuditEntry]:
    """``entries`` (in stored order) with ``hop`` before the first entry written after it."""
    position = next(
        (index for index, entry in enumerate(entries) if entry.at > hop.at), len(entries)
    )
    return [*entries[:position], hop, *entries[position:]]


class AuditTrail:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    def _encode(self, case_id: str, hop: str, detail: dict[str, Any]) -> bytes:
        entry = AuditEntry(case_id=case_id, hop=hop, at=datetime.now(UTC), detail=detail)
        return entry.model_dump_json().encode()

    async def append(self, case_id: str, hop: str, **detail: Any) -> None:
        await self._js.publish(audit_subject(case_id), self._encode(case_id, hop, detail))

    async def append_async(self, case_id: str, hop: str, **detail: Any) -> asyncio.Future[Any]:
        """For batch paths: the caller awaits the returned ack future with the rest."""
        return await self._js.publish_async(
            audit_subject(case_id), self._encode(case_id, hop, detail)
        )

    async def read(self, case_id: str) -> list[AuditEntry]:
        """The case's hops in the order JetStream stored them, the ``routed`` hop from the
        case's registry record in its place by time."""
        entries = await self.read_recorded(case_id)
        routed = await self.read_routed(case_id)
        return entries if routed is None else _in_place(entries, routed)

    async def read_routed(self, case_id: str) -> AuditEntry | None:
        """The ``routed`` hop kept in the case's ``cases`` record, if it is kept there."""
        try:
            kv = await self._js.key_value(CASES_BUCKET)
            entry = await kv.get(safe_token(case_id))
        except NotFoundError:  # no bucket, no record, or a deleted one
            return None
        if entry.value is None:
            return None
        try:
            record = json.loads(entry.value)
        except ValueError:
            return None
        return routed_hop(record) if isinstance(record, dict) else None

    async def read_recorded(self, case_id: str) -> list[AuditEntry]:
        """The case's ``AUDIT`` records in the order JetStream stored them."""
        try:
            info = await self._js.stream_info(AUDIT, subjects_filter=audit_subject(case_id))
        except NotFoundError:
            return []
        expected = (info.state.subjects or {}).get(audit_subject(case_id), 0)
        if not expected:
            return []
        subscription = await self._js.pull_subscribe(
            audit_subject(case_id),
            stream=AUDIT,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        entries: list[AuditEntry] = []
        try:
            while len(entries) < expected:
                for msg in await subscription.fetch(expected - len(entries), timeout=2.0):
                    entries.append(AuditEntry.model_validate(json.loads(msg.data)))
        finally:
            await subscription.unsubscribe()
        return entries
