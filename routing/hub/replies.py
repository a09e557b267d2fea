"""The way back: back-end replies → ``REPLIES`` → answer for the origin → ``OUTBOX``.

``ReplyIntake`` is the one door for replies (HTTP, file drop ``in/``, native publishers go
straight to ``REPLIES``). ``ReplyRouter`` binds each reply to its case through the ``cases``
registry, builds the answer in the origin's language (``answer_for``) and queues it for the
origin's adapter. Every XÖV answer is validated against its registered contract before it
is queued, as an arrival is (``check_answer``): one the standard refuses is never sent. A
reply that cannot become a valid answer is quarantined by the router; over HTTP the intake
tries ``answer_for`` first and refuses it synchronously instead. An answer
that carries the original message (XBau 1100) reads it by the case record's reference
(``routing.streams.originals``); one whose original is gone cannot be answered.
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
from nats.js.errors import FetchTimeoutError
from pydantic import ValidationError

from poststelle.contracts.answers import KINDS_CARRYING_ORIGINAL, build_answer
from poststelle.contracts.answers_xdomea import (
    XdomeaAnswered,
    build_xdomea_answer,
    xdomea_namespace,
)
from poststelle.contracts.envelope import (
    H_CASE_ID,
    H_DETAIL,
    H_MSG_ID,
    H_REASON,
    H_RECEIVED_AT,
    H_STEP,
    quarantine_subject,
    safe_token,
)
from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.replies import (
    Answer,
    AnswerInvalidError,
    CannotAnswerError,
    CaseReply,
    ForeignCaseError,
    answered_message,
    check_answer,
    in_reply_to,
    reply_event,
)
from poststelle.routing.hub.caseregistry import load_case, update_case
from poststelle.routing.ops import tracing
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.originals import OriginalGone, OriginalLoader, original_loader
from poststelle.routing.streams.topology import REPLIES

__all__ = [
    "REPLY_ROUTER_DURABLE",
    "ReplyIntake",
    "ReplyRouter",
    "UnknownCaseError",
    "answer_for",
]

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


def reply_subject(record: dict[str, Any], kind: str) -> str:
    tenant, backend = safe_token(record["tenant"]), safe_token(record["backend"])
    return f"reply.{tenant}.{backend}.{safe_token(kind)}"


def _subject_backend(subject: str) -> tuple[str, str]:
    """(tenant, backend) of ``reply.<tenant>.<backend>.<kind>``."""
    parts = subject.split(".")
    return (parts[1], parts[2]) if len(parts) == 4 else ("", "")


def _answers_in_xbau(record: dict[str, Any]) -> bool:
    """XTA carries XÖV messages only; an XBau message that came by FIT-Connect (authorities
    exchanging XBau over it) is answered in XBau as well. Every other origin gets the JSON
    status."""
    channel = record["origin"]["channel"]
    return channel == "xta" or (channel == "fitconnect" and record.get("standard") == "xbau")


async def answer_for(
    case_id: str,
    record: dict[str, Any],
    reply: CaseReply,
    load_original: OriginalLoader,
    *,
    inspector: MessageInspector,
) -> Answer:
    """The answer to ``reply`` in the language of the case's origin: for a case that came by
    XTA a message of its standard (xdomea 0504/0505/0506/0507, else XBau), XBau for an XBau
    message that came by FIT-Connect, a JSON status otherwise. Raises ``CannotAnswerError``
    when the reply cannot be expressed there, ``AnswerInvalidError`` (one of those) when the
    built XÖV message fails its contract's validation with ``inspector``. ``load_original``
    is called only for an answer that carries the original message (XBau 1100); a gone
    original cannot be answered."""
    origin = record["origin"]
    route = dict(origin.get("reply_route") or {})
    xml = await _xml_answer(case_id, record, reply, load_original)
    if xml is not None:
        content, message_type, namespace = xml
        answer = Answer(
            case_id=case_id,
            kind=reply.kind,
            content=content,
            content_type="application/xml",
            message_type=message_type,
            namespace=namespace,
            reply_route=route,
            in_reply_to=in_reply_to(route, origin.get("source_message_id")),
        )
        check_answer(inspector, answer)
        return answer
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


async def _xml_answer(
    case_id: str, record: dict[str, Any], reply: CaseReply, load_original: OriginalLoader
) -> tuple[bytes, str, str] | None:
    """(content, message type, namespace) of the XÖV answer, ``None`` for an origin that gets
    the JSON status."""
    try:
        if record["origin"]["channel"] == "xta" and record.get("standard") == "xdomea":
            xdomea = XdomeaAnswered.from_record(record)
            content, message_type = build_xdomea_answer(xdomea, reply)
            return content, message_type, xdomea_namespace(xdomea.version)
        if not _answers_in_xbau(record):
            return None
        answered = answered_message(record)
        if reply.kind in KINDS_CARRYING_ORIGINAL:
            raw = await _original(case_id, record, load_original)
            answered = answered.model_copy(update={"raw": raw})
        content = build_answer(reply_event(case_id, reply, answered))
    except ValueError as exc:
        raise CannotAnswerError(str(exc)) from exc
    message_type, namespace = Answer.xoev_message_type(reply.kind)
    return content, message_type, namespace


async def _original(case_id: str, record: dict[str, Any], load: OriginalLoader) -> bytes:
    original = record.get("original") or {}
    if not original.get("ref"):
        # Routed before case records kept the reference: nothing to load it by.
        raise CannotAnswerError(f"case {case_id!r} keeps no reference to its original message")
    try:
        return await load(original)
    except OriginalGone as exc:
        raise CannotAnswerError(f"{exc}; an XBau 1100 must carry the rejected message") from exc


class ReplyIntake:
    def __init__(
        self, js: JetStreamContext, audit: AuditTrail, inspector: MessageInspector
    ) -> None:
        self._js = js
        self._audit = audit
        self._inspector = inspector
        self._load_original = original_loader(js)

    async def accept(
        self,
        case_id: str,
        reply: CaseReply,
        *,
        via: str,
        backend: tuple[str, str] | None = None,
        check_answer: bool = False,
    ) -> str:
        """Store the reply in ``REPLIES``; returns its idempotency key.

        ``backend`` (tenant, name) is who replies: only the case's own back end may.
        ``check_answer`` builds and validates the answer first and raises
        ``CannotAnswerError`` (``AnswerInvalidError`` with the schema errors) instead of
        storing a reply the router could only quarantine (for callers who can be told now).
        """
        record = await load_case(self._js, case_id)
        if record is None:
            raise UnknownCaseError(f"no case {case_id!r} is registered")
        if backend is not None and backend != (record["tenant"], record["backend"]):
            raise ForeignCaseError(f"case {case_id!r} is not routed to {'/'.join(backend)}")
        if check_answer:
            await answer_for(case_id, record, reply, self._load_original, inspector=self._inspector)
        key = reply.idempotency_key()
        # The reply joins its case's trace (the routing span kept in the case record).
        with tracing.span(
            "poststelle reply",
            parent=tracing.parent_of((record.get("routed") or {}).get("traceparent")),
            kind=tracing.SpanKind.PRODUCER,
            attributes={"poststelle.case_id": case_id, "poststelle.reply_kind": reply.kind},
        ):
            ack = await self._js.publish(
                reply_subject(record, reply.kind),
                reply.model_dump_json().encode(),
                headers=tracing.inject({H_MSG_ID: f"reply:{case_id}:{key}", H_CASE_ID: case_id}),
            )
        if not ack.duplicate:
            await self._audit.append(
                case_id, "reply-received", kind=reply.kind, via=via, reply_id=key
            )
        return key


class ReplyRouter:
    def __init__(
        self,
        js: JetStreamContext,
        audit: AuditTrail,
        counters: Counters,
        inspector: MessageInspector,
    ) -> None:
        self._js = js
        self._audit = audit
        self._counters = counters
        self._inspector = inspector
        self._load_original = original_loader(js)
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
                    with tracing.span(
                        "poststelle reply-route",
                        parent=msg.headers,
                        kind=tracing.SpanKind.CONSUMER,
                    ):
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
        if _subject_backend(msg.subject) != (
            safe_token(record["tenant"]),
            safe_token(record["backend"]),
        ):
            detail = f"{msg.subject} does not belong to case {case_id!r}'s back end"
            await self._quarantine(msg, case_id, "foreign-case", detail)
            return
        try:
            answer = await answer_for(
                case_id, record, reply, self._load_original, inspector=self._inspector
            )
        except AnswerInvalidError as exc:
            await self._quarantine(msg, case_id, exc.reason, str(exc))
            return
        except CannotAnswerError as exc:
            await self._quarantine(msg, case_id, "cannot-answer", str(exc))
            return
        channel, adapter = safe_token(origin["channel"]), safe_token(origin["adapter"])
        await self._js.publish(
            f"outbox.{channel}.{adapter}",
            answer.content,
            headers=tracing.inject(
                {**answer.headers(), H_MSG_ID: f"outbox:{msg.metadata.sequence.stream}"}
            ),
        )
        last_reply = reply.model_dump(mode="json", exclude_none=True)

        def answered(current: dict[str, Any]) -> bool:
            current.update(state=_STATE_AFTER[reply.kind], last_reply=last_reply)
            return True

        await update_case(self._js, case_id, answered)
        await self._audit.append(
            case_id,
            "answer-queued",
            kind=reply.kind,
            message_type=answer.message_type,
            adapter=origin["adapter"],
        )
        self._counters.incr("replies.routed")
        self._counters.metrics.reply("routed")

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
        self._counters.metrics.reply("quarantined")
        if case_id:
            await self._audit.append(case_id, "reply-quarantined", reason=reason)
