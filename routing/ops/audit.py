"""Every hop of every case, appended to ``AUDIT`` under ``audit.<case-id>``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from poststelle.contracts.envelope import audit_subject
from poststelle.routing.streams.topology import AUDIT

__all__ = ["AuditEntry", "AuditTrail"]


class AuditEntry(BaseModel):
    case_id: str
    hop: str
    at: datetime
    detail: dict[str, Any] = {}


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
        """The case's hops in the order JetStream stored them."""
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
