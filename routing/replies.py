"""The way back: back-end replies → ``REPLIES`` → answer for the origin → ``OUTBOX``.

``ReplyIntake`` is the one door for replies (HTTP, file drop ``in/``, native publishers go
straight to ``REPLIES``). ``ReplyRouter`` binds each reply to its case through the ``cases``
registry, builds the answer in the origin's language and queues it for the origin's adapter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, KeyNotFoundError
from pydantic import ValidationError

from poststelle.contracts.answers import build_answer
from poststelle.contracts.replies import (
    Answer,
    CaseReply,
    answered_message,
    in_reply_to,
    reply_event,
)
from poststelle.routing.audit import AuditTrail
from poststelle.routing.envelope import (
    H_CASE_ID,
    H_DETAIL,
    H_MSG_ID,
    H_REASON,
    H_RECEIVED_AT,
    H_STEP,
    quarantine_subject,
    safe_token,
)
from poststelle.routing.metrics import Counters
from poststelle.routing.topology import CASES_BUCKET, REPLIES

__all__ = ["REPLY_ROUTER_DURABLE", "ReplyIntake", "ReplyRouter", "UnknownCaseError"]

log = logging.getLogger(__name__)

REPLY_ROUTER_DURABLE = "reply-router"
_STATE_AFTER = {
    "receipt": "acknowledged",
    "status": "in-review",
    "decision": "decided",
    "rejection": "rejected",
}


class UnknownCaseError(LookupError):
    pass


async def load_case(js: JetStreamContext, case_id: str) -> dict[str, Any] | None:
    kv = await js.key_value(CASES_BUCKET)
    try:
        entry = await kv.get(safe_token(case_id))
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    record: dict[str, Any] = json.loads(entry.value)
    return record


def reply_subject(record: dict[str, Any], kind: str) -> str:
    tenant, backend = safe_token(record["tenant"]), safe_token(record["backend"])
    return f"reply.{tenant}.{backend}.{safe_token(kind)}"


class ReplyIntake:
    def __init__(self, js: JetStreamContext, audit: AuditTrail) -> None:
        self._js = js
        self._audit = audit

    async def accept(self, case_id: str, reply: CaseReply, *, via: str) -> str:
        """Store the reply in ``REPLIES``; returns its idempotency key."""
        record = await load_case(self._js, case_id)
        if record is None:
            raise UnknownCaseError(f"no case {case_id!r} is registered")
        key = reply.idempotency_key()
        ack = await self._js.publish(
            reply_subject(record, reply.kind),
            reply.model_dump_json().encode(),
            headers={H_MSG_ID: f"reply:{case_id}:{key}", H_CASE_ID: case_id},
        )
        if not ack.duplicate:
            await self._audit.append(
                case_id, "reply-received", kind=reply.kind, via=via, reply_id=key
            )
        return key


class ReplyRouter:
    def __init__(self, js: JetStreamContext, audit: AuditTrail, counters: Counters) -> None:
        self._js = js
        self._audit = audit
        self._counters = counters
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        subscription = await self._js.pull_subscribe(
            "reply.>",
            durable=REPLY_ROUTER_DURABLE,
            stream=REPLIES,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=60.0,
                max_deliver=20,
            ),
        )
        while not self._stopping.is_set():
            try:
                batch = await subscription.fetch(32, timeout=0.5)
            except (FetchTimeoutError, TimeoutError):
                continue
            for msg in batch:
                try:
                    await self._route(msg)
                except Exception:
                    log.exception("reply routing failed; redelivering later")
                    await msg.nak(delay=5.0)
                    continue
                await msg.ack_sync()

    async def _route(self, msg: Msg) -> None:
        case_id = (msg.headers or {}).get(H_CASE_ID, "")
        try:
            reply = CaseReply.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._quarantine(msg, case_id, "invalid-reply", str(exc))
            return
        record = await load_case(self._js, case_id)
        if record is None:
            await self._quarantine(msg, case_id, "unknown-case", f"no case {case_id!r}")
            return
        origin = record["origin"]
        try:
            answer = self._answer_for(case_id, record, reply)
        except ValueError as exc:
            await self._quarantine(msg, case_id, "cannot-answer", str(exc))
            return
        channel, adapter = safe_token(origin["channel"]), safe_token(origin["adapter"])
        await self._js.publish(
            f"outbox.{channel}.{adapter}",
            answer.content,
            headers={**answer.headers(), H_MSG_ID: f"outbox:{msg.metadata.sequence.stream}"},
        )
        kv = await self._js.key_value(CASES_BUCKET)
        record["state"] = _STATE_AFTER[reply.kind]
        record["last_reply"] = reply.model_dump(mode="json", exclude_none=True)
        await kv.put(safe_token(case_id), json.dumps(record, default=str).encode())
        await self._audit.append(
            case_id,
            "answer-queued",
            kind=reply.kind,
            message_type=answer.message_type,
            adapter=origin["adapter"],
        )
        self._counters.incr("replies.routed")

    def _answer_for(self, case_id: str, record: dict[str, Any], reply: CaseReply) -> Answer:
        origin = record["origin"]
        route = dict(origin.get("reply_route") or {})
        if origin["channel"] == "xta":
            content = build_answer(reply_event(case_id, reply, answered_message(record)))
            message_type, namespace = Answer.xoev_message_type(reply.kind)
            return Answer(
                case_id=case_id,
                kind=reply.kind,
                content=content,
                content_type="application/xml",
                message_type=message_type,
                namespace=namespace,
                reply_route=route,
                in_reply_to=in_reply_to(route, origin.get("source_message_id")),
            )
        status = {
            "case_id": case_id,
            "kind": reply.kind,
            "state": _STATE_AFTER[reply.kind],
            "reply": reply.model_dump(mode="json", exclude_none=True),
            "source_message_id": origin.get("source_message_id"),
        }
        return Answer(
            case_id=case_id,
            kind=reply.kind,
            content=json.dumps(status).encode(),
            content_type="application/json",
            reply_route=route,
            in_reply_to=in_reply_to(route, origin.get("source_message_id")),
        )

    async def _quarantine(self, msg: Msg, case_id: str, reason: str, detail: str) -> None:
        log.warning("reply quarantined case_id=%s reason=%s", case_id, reason)
        headers = {
            **(msg.headers or {}),
            H_MSG_ID: f"quarantine:reply:{msg.metadata.sequence.stream}",
            H_STEP: "reply",
            H_REASON: reason,
            H_DETAIL: " ".join(detail.split())[:1000],
            H_RECEIVED_AT: datetime.now(UTC).isoformat(),
        }
        await self._js.publish(quarantine_subject("reply", reason), msg.data, headers=headers)
        self._counters.incr("replies.quarantined")
        if case_id:
            await self._audit.append(case_id, "reply-quarantined", reason=reason)
