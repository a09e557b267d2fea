"""The routing core: ``INBOX`` → inspect → route → ``CASES`` (or ``QUARANTINE``).

It works in batches: one fetch (it returns what is there, so a small backlog gives a small
batch), every arrival inspected and routed with its outputs published as it goes, then one
wait for all their pub-acks with one deadline. Awaiting each JetStream ack on the hot path
would cost a factor of five in throughput. ``publish_async`` only queues, so every
``_FLUSH_INTERVAL`` of work the core lets the loop run: the flusher writes what is queued and
a CaseEvent leaves within milliseconds of being built, not at the end of a 256-message batch.

A raw message is acked in ``INBOX`` only after everything it caused (case event, registry
entry, audit hop or quarantine record) has been acknowledged by JetStream; an arrival whose
outputs were not all stored is nak'd alone, the rest of its batch is acked. A crash in
between redelivers it, and deterministic ids turn the replay into recognised duplicates.

A routed arrival makes two publishes: the CaseEvent and its ``cases`` registry record. The
``routed`` hop of the audit trail is that record (``CaseRecord.routed``): ``AuditTrail.read``
and so ``poststelle trace`` derive it from there instead of a third publish per message.

A claim-checked arrival (``H_BODY_REF``) is read from the object store first: a missing or
altered object is quarantined with the reason, a store that does not answer is retried with
a delay. Its quarantine record keeps the reference, not the bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, NotFoundError

from poststelle.contracts.answers import RejectionReason, ReplyEvent, build_answer, latin_text
from poststelle.contracts.envelope import (
    H_ADAPTER,
    H_ATTACHMENTS,
    H_CASE_ID,
    H_CHANNEL,
    H_DETAIL,
    H_MSG_ID,
    H_ORIGIN_STATE,
    H_PORTAL,
    H_REASON,
    H_REFUSED,
    H_REPLY_ROUTE,
    H_SOURCE_ID,
    H_STEP,
    case_subject,
    quarantine_subject,
    safe_token,
)
from poststelle.contracts.events import AttachmentRef, CaseEvent, Origin
from poststelle.contracts.inspection import (
    InspectedMessage,
    MessageInspector,
    MessageRejected,
    attachment_object_name,
    attachment_refs,
)
from poststelle.contracts.replies import (
    Answer,
    AnswerInvalidError,
    answered_message,
    check_answer,
    in_reply_to,
)
from poststelle.contracts.transient import is_transient
from poststelle.routing.federation.states import federation_subject, state_for_ars
from poststelle.routing.hub.config import FederationConfig
from poststelle.routing.hub.delivery import retry_delay
from poststelle.routing.ops import tracing
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.claim_check import (
    BodyMissing,
    BodyRef,
    body_ref_of,
    load_body,
    put_once,
)
from poststelle.routing.streams.originals import stream_ref
from poststelle.routing.streams.topology import CASES_BUCKET, INBOX, ROUTER_DURABLE
from poststelle.routing.table.static import RouteResolver, RoutingFacts

__all__ = ["UNEXPECTED_REASON", "CaseRecord", "RoutingCore"]

log = logging.getLogger(__name__)

# Headers are bounded by the server's max_control_line; long parser messages are cut.
_MAX_DETAIL = 1000
# How long a batch waits for the pub-acks of all its outputs, together.
_PUBLISH_TIMEOUT = 10.0
# CPU work between two turns of the loop: ``publish_async`` only queues, nats-py's flusher
# writes when the loop is free. Short enough for a CaseEvent to leave ~5 ms after it was
# built, long enough for the turn (a few µs) not to count.
_FLUSH_INTERVAL = 0.005
_MAX_REJECTION_ERRORS = 20
# Rejections that are the sender's fault, answered with an XBau 1100 under this Fehlerkennzahl
# (codelist xbau-fehlerkennzahlen 2.2): X001 "nicht valide zu dem Schema", S999 "nicht
# spezifikationskonform aus anderen Gründen" for a failed Schematron rule of the standard.
_SENDER_FAULTS = {"schema-invalid": "X001", "schematron-invalid": "S999"}
# Broker trouble passes, so the arrival is tried again later. These broker errors do not: they
# are about this message (too large, bad subject or header) and would recur on every attempt.
# The quarantine reason of a step that failed in a way no check foresaw.
UNEXPECTED_REASON = "unexpected-error"
# The stream behind the ``cases`` KV bucket.
_CASES_KV_STREAM = f"KV_{CASES_BUCKET}"


# What ``json.dumps(..., separators=(",", ":"), default=str)`` builds anew for every call.
_RECORD_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


@dataclass
class _Progress:
    """The step an arrival is in, so an unforeseen failure is quarantined under it."""

    step: str = "inspect"
    # The standard once inspection named it: a label of the settled-message metric.
    standard: str = "unknown"


@dataclass
class CaseRecord:
    """The ``cases`` KV entry: what the reply path needs to find the way back."""

    case_id: str
    state: str
    origin: dict[str, Any]
    tenant: str
    backend: str
    standard: str
    version: str
    message_type: str
    nachrichten_uuid: str | None
    author: str | None
    reader: str | None
    # What an answer in the origin's language refers to (XÖV header of the message).
    answered: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # The portal that submitted it (with API keys on): the only portal that may read it.
    portal: str | None = None
    # Where the original message is kept (ref, sha256, size), for an answer that carries it
    # (XBau 1100); the reply path loads it from there only then (``routing.streams.originals``).
    original: dict[str, Any] = field(default_factory=dict)
    # The audit trail's ``routed`` hop (rule, event id; its time is ``created``): stored with
    # the record instead of a third publish per message (``AuditTrail.read`` shows it).
    routed: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _RECORD_JSON.encode(self.__dict__).encode()


def _publish_failure(outputs: list[asyncio.Future[Any]]) -> BaseException | None:
    """Why not every output of an arrival was stored, or ``None``. Every future's exception is
    retrieved, so none is reported as never retrieved."""
    failure: BaseException | None = None
    for future in outputs:
        if future.cancelled():
            failure = failure or TimeoutError(f"no pub-ack within {_PUBLISH_TIMEOUT} s")
            continue
        exc = future.exception()
        if exc is not None and failure is None:
            failure = exc
    return failure


# What an answer must refer to, kept in the case record: XBau's header facts, and xdomea's
# ProzessID and institutions (xdomea has no message UUID; its answers quote the ProzessID).
_ANSWERED_FACTS = (
    "erstellungszeitpunkt",
    "author_name",
    "reader_name",
    "referenz_antragsservice",
    "prozess_id",
    "absender_institution",
    "empfaenger_institution",
)


def _answered_facts(inspected: InspectedMessage) -> dict[str, Any]:
    fields = inspected.fields
    return {key: fields[key] for key in _ANSWERED_FACTS if fields.get(key) is not None}


def _original_location(event: CaseEvent) -> dict[str, Any]:
    original = event.data.original
    if original is None or not original.ref:
        return {}
    return {"ref": original.ref, "sha256": original.sha256, "size": original.size}


def _claim_checked_by_intake(msg: Msg) -> list[AttachmentRef]:
    raw = _header(msg, H_ATTACHMENTS)
    if not raw:
        return []
    try:
        return [AttachmentRef.model_validate(item) for item in json.loads(raw)]
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise MessageRejected("intake", "bad-attachment-refs", str(exc)) from exc


def _reply_route(msg: Msg) -> dict[str, str]:
    raw = _header(msg, H_REPLY_ROUTE)
    try:
        route = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(route, dict):
        return {}
    return {str(key): str(value) for key, value in route.items()}


def _refusal(msg: Msg) -> tuple[str, str, str] | None:
    """(step, reason, detail) of an arrival its adapter refused (``H_REFUSED``)."""
    raw = _header(msg, H_REFUSED)
    if not raw:
        return None
    try:
        refused = json.loads(raw)
    except ValueError:
        refused = None
    if not isinstance(refused, dict):
        return "intake", "bad-refusal", f"unreadable {H_REFUSED} header"
    return (
        str(refused.get("step") or "intake"),
        str(refused.get("reason") or "refused"),
        str(refused.get("detail") or ""),
    )


def _header(msg: Msg, name: str, default: str = "") -> str:
    return (msg.headers or {}).get(name, default)


class RoutingCore:
    def __init__(
        self,
        js: JetStreamContext,
        resolver: RouteResolver,
        audit: AuditTrail,
        counters: Counters,
        *,
        inspector: MessageInspector,
        federation: FederationConfig | None = None,
        peer_jetstream: Callable[[str], JetStreamContext] | None = None,
        batch_size: int = 256,
    ) -> None:
        self._state = federation.state if federation else None
        self._peers = frozenset(federation.peers) if federation else frozenset()
        self._js = js
        # A peer's JetStream (its domain, over the leaf link): claim-checked bodies of cases
        # it forwards stay in its object store, the sourced INBOX message has the reference.
        self._peer_jetstream = peer_jetstream
        self._inspector = inspector
        self.resolver = resolver
        self._audit = audit
        self._counters = counters
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    async def subscribe(self) -> Any:
        """The ``router`` pull subscription (``run`` fetches from it; tests drive batches)."""
        return await self._js.pull_subscribe(
            "inbox.>",
            durable=ROUTER_DURABLE,
            stream=INBOX,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=60.0,
                max_deliver=20,
                # A full batch must always fit, or the consumer stalls without a word.
                max_ack_pending=max(1000, self._batch_size * 4),
            ),
        )

    async def run(self) -> None:
        subscription = await self.subscribe()
        log.info("routing core started durable=%s batch=%s", ROUTER_DURABLE, self._batch_size)
        while not self._stopping.is_set():
            try:
                # nats-py asks with no_wait first: whatever is there comes back at once.
                batch = await subscription.fetch(self._batch_size, timeout=0.5)
            except (FetchTimeoutError, TimeoutError):
                continue
            await self.process_batch(batch)

    def stop(self) -> None:
        self._stopping.set()

    async def process_batch(self, batch: list[Msg]) -> None:
        """Inspect and route every arrival, publishing its outputs as it goes; then wait once
        for every pub-ack of the batch and ack each arrival whose outputs were all stored."""
        handled: list[tuple[Msg, list[asyncio.Future[Any]], str, str]] = []
        clock = time.perf_counter
        turn_at = clock() + _FLUSH_INTERVAL
        observe = self._counters.metrics.core_seconds.observe
        for msg in batch:
            started = clock()
            try:
                futures, outcome, standard = await self._handle(msg)
            except Exception as exc:  # only transient errors get here: _handle parks the rest
                self._counters.metrics.core_retries.inc()
                # The store or the server is away: later, with a growing delay.
                delay = retry_delay(msg.metadata.num_delivered or 1)
                log.warning(
                    "inbox message not handled yet inbox_msg=%s retry_in=%s error=%r",
                    _header(msg, H_MSG_ID),
                    delay,
                    exc,
                )
                await msg.nak(delay=delay)
                continue
            handled.append((msg, futures, outcome, standard))
            now = clock()
            observe(now - started)
            if now >= turn_at:
                # Let the flusher write what is queued (and the read loop take pub-acks).
                await asyncio.sleep(0)
                turn_at = clock() + _FLUSH_INTERVAL
        await self._settle(handled)

    async def _settle(self, handled: list[tuple[Msg, list[asyncio.Future[Any]], str, str]]) -> None:
        """One deadline for every output of the batch; then each arrival on its own: acked
        when all its outputs were stored, else nak'd to be tried again."""
        outputs = [future for _, futures, _, _ in handled for future in futures]
        if outputs:
            _, late = await asyncio.wait(outputs, timeout=_PUBLISH_TIMEOUT)
            for future in late:
                # Frees its slot in nats-py's pending-publish semaphore; a pub-ack that still
                # comes is dropped, the redelivery dedupes against what it acknowledged.
                future.cancel()
        settled = self._counters.metrics.settled
        for msg, futures, outcome, standard in handled:
            failure = _publish_failure(futures)
            if failure is not None:  # the server did not take it: try the whole message again
                log.warning(
                    "publish not acknowledged, redelivering inbox_msg=%s error=%r",
                    _header(msg, H_MSG_ID),
                    failure,
                )
                self._counters.metrics.core_retries.inc()
                await msg.nak(delay=2.0)
                continue
            # Everything the arrival caused is stored; a lost ack only means a redelivery
            # that deterministic ids turn into duplicates, so no round trip per message.
            await msg.ack()
            self._counters.incr(f"core.{outcome}")
            settled(_header(msg, H_CHANNEL, "unknown"), standard, outcome)

    def _check_attached(self, msg: Msg, body_ref: BodyRef | None) -> None:
        """The message limit holds for a message with the files its intake claim-checked
        beside it (XTA and FIT-Connect attachments, ``/antrag`` file parts), as it holds for
        the body: a source that cannot be refused had them kept, and a replay after the
        limit is raised delivers them."""
        if not _header(msg, H_ATTACHMENTS):
            return
        files = _claim_checked_by_intake(msg)
        if not files:
            return  # the body alone is checked where it is loaded
        attached = sum(ref.size or 0 for ref in files)
        size = body_ref.size if body_ref is not None else len(msg.data)
        limit = self._inspector.max_bytes
        if size + attached > limit:
            largest = max(files, key=lambda ref: ref.size or 0)
            raise MessageRejected(
                "parse",
                "too-large",
                f"the message has {size} bytes and its {len(files)} attachments "
                f"{attached} bytes (largest: {largest.name!r}, {largest.size} bytes), "
                f"{size + attached} bytes together; the limit is {limit} bytes",
            )

    async def _body(self, msg: Msg, body_ref: BodyRef | None) -> bytes:
        """The arrival's bytes: the message's data, or the claim-checked object."""
        self._check_attached(msg, body_ref)
        if body_ref is None:
            return bytes(msg.data)
        if body_ref.size > self._inspector.max_bytes:
            # Kept by the intake for a source that cannot be refused (an XTA mailbox).
            raise MessageRejected(
                "parse",
                "too-large",
                f"the message has {body_ref.size} bytes, "
                f"the limit is {self._inspector.max_bytes} bytes",
            )
        origin = _header(msg, H_ORIGIN_STATE)
        store = self._js
        if origin and origin in self._peers and self._peer_jetstream is not None:
            store = self._peer_jetstream(origin)
        try:
            return await load_body(store, body_ref)
        except BodyMissing as exc:
            raise MessageRejected("intake", "body-missing", str(exc)) from exc

    async def _handle(self, msg: Msg) -> tuple[list[asyncio.Future[Any]], str, str]:
        """Route one arrival; a failure of a step that is not the broker's quarantines the
        arrival under that step at once, instead of redelivering it forever."""
        case_id = _header(msg, H_CASE_ID)
        progress = _Progress()
        try:
            if tracing.enabled():
                futures, outcome = await self._traced_steps(msg, case_id, progress)
            else:  # the hot path builds nothing for tracing it does not do
                futures, outcome = await self._steps(msg, case_id, progress)
            return futures, outcome, progress.standard
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception(
                "routing step failed, quarantining case_id=%s step=%s", case_id, progress.step
            )
            detail = f"{type(exc).__name__}: {exc}"
            futures = await self._quarantine(msg, case_id, progress.step, UNEXPECTED_REASON, detail)
            return futures, "quarantined", progress.standard

    async def _traced_steps(
        self, msg: Msg, case_id: str, progress: _Progress
    ) -> tuple[list[asyncio.Future[Any]], str]:
        with tracing.span(
            "poststelle route",
            parent=msg.headers,
            kind=tracing.SpanKind.CONSUMER,
            attributes={"poststelle.case_id": case_id},
        ):
            futures, outcome = await self._steps(msg, case_id, progress)
            tracing.annotate(
                **{"poststelle.outcome": outcome, "poststelle.standard": progress.standard}
            )
        return futures, outcome

    async def _steps(
        self, msg: Msg, case_id: str, progress: _Progress
    ) -> tuple[list[asyncio.Future[Any]], str]:
        refused = _refusal(msg)
        if refused is not None:
            # Kept as it arrived, for the record and a replay once the sender has fixed it.
            progress.step = "quarantine"
            return await self._quarantine(msg, case_id, *refused), "quarantined"
        body_ref = body_ref_of(msg.headers)
        try:
            raw = await self._body(msg, body_ref)
            inspected = self._inspector.inspect(
                raw, content_type=_header(msg, "Content-Type") or None
            )
        except MessageRejected as rejected:
            progress.step = "quarantine"
            futures = await self._quarantine(
                msg, case_id, rejected.step, rejected.reason, rejected.detail
            )
            # A schema-invalid message is the sender's fault (schema-unusable is ours). The
            # 1100 carries it without attachments, so a claim-checked body is answered too.
            if rejected.reason in _SENDER_FAULTS:
                progress.step = "reject"
                futures += await self._reject_to_sender(msg, raw, case_id, rejected)
            return futures, "quarantined"
        progress.standard = inspected.standard
        peer = state_for_ars(inspected.region)
        if self._state and peer != self._state and peer in self._peers:
            progress.step = "forward"
            return await self._forward(msg, case_id, inspected, peer), "forwarded"
        progress.step = "route"
        facts = RoutingFacts(
            standard=inspected.standard,
            message_type=inspected.message_type,
            channel=_header(msg, H_CHANNEL),
            leistung=inspected.leistung,
            ars=inspected.region,
            reader=inspected.reader,
        )
        target = self.resolver.resolve(facts)
        if target is None:
            detail = (
                f"no routing rule for {inspected.standard} {inspected.message_type} "
                f"leistung={inspected.leistung} ars={inspected.region} "
                f"reader={inspected.reader}"
            )
            return await self._quarantine(
                msg, case_id, "route", "unroutable", detail
            ), "quarantined"
        progress.step = "case-event"
        try:
            event = await self._case_event(
                msg, raw, body_ref, case_id, inspected, target.tenant, target.backend
            )
        except MessageRejected as rejected:
            return await self._quarantine(
                msg, case_id, rejected.step, rejected.reason, rejected.detail
            ), "quarantined"
        record = CaseRecord(
            case_id=case_id,
            state="routed",
            origin=event.data.origin.model_dump(),
            tenant=target.tenant,
            backend=target.backend,
            standard=inspected.standard,
            version=inspected.version,
            message_type=inspected.message_type,
            nachrichten_uuid=inspected.nachrichten_uuid,
            author=inspected.author,
            reader=inspected.reader,
            answered=_answered_facts(inspected),
            portal=_header(msg, H_PORTAL) or None,
            original=_original_location(event),
            routed={"rule": target.rule, "event_id": event.id},
        )
        traceparent = tracing.current_traceparent()
        if traceparent:
            # A reply comes as a new request: it joins the case's trace through this.
            record.routed["traceparent"] = traceparent
        progress.step = "publish"
        futures = [
            await self._js.publish_async(
                case_subject(target.tenant, target.backend, inspected.message_type),
                event.model_dump_json().encode(),
                headers=tracing.inject({H_MSG_ID: event.id, H_CASE_ID: case_id}),
            ),
        ]
        record_subject = f"$KV.{CASES_BUCKET}.{safe_token(case_id)}"
        if not await self._recorded_before(msg, record_subject):
            # A KV put is a publish to the bucket's subject; batching it keeps the hot path
            # async. The record is the audit trail's ``routed`` hop too (``CaseRecord.routed``).
            futures.append(await self._js.publish_async(record_subject, record.encode()))
        return futures, "routed"

    async def _recorded_before(self, msg: Msg, record_subject: str) -> bool:
        """Whether a redelivered arrival's case record is stored already. Writing it again
        would erase what happened since (``delivered``, a reply's state); a first delivery
        cannot have one, so only redeliveries pay the lookup."""
        if (msg.metadata.num_delivered or 1) <= 1:
            return False
        try:
            await self._js.get_last_msg(_CASES_KV_STREAM, record_subject)
        except NotFoundError:
            return False
        return True

    async def _case_event(
        self,
        msg: Msg,
        raw: bytes,
        body_ref: BodyRef | None,
        case_id: str,
        inspected: InspectedMessage,
        tenant: str,
        backend: str,
    ) -> CaseEvent:
        origin = Origin(
            channel=_header(msg, H_CHANNEL, "unknown"),
            adapter=_header(msg, H_ADAPTER, "unknown"),
            source_message_id=_header(msg, H_SOURCE_ID) or _header(msg, H_MSG_ID),
            reply_route=_reply_route(msg),
        )
        attachments = [
            *_claim_checked_by_intake(msg),
            *attachment_refs(case_id, inspected.attachments),
        ]
        await self._claim_check(case_id, inspected)
        original = AttachmentRef(
            name=f"{inspected.message_type}.{inspected.format}",
            media_type=_header(msg, "Content-Type", "application/xml"),
            kind="original",
            size=len(raw),
            sha256=body_ref.sha256 if body_ref else hashlib.sha256(raw).hexdigest(),
            # A claim-checked original is in the object store; a small one stays in INBOX.
            ref=body_ref.ref if body_ref else stream_ref(msg.metadata.sequence.stream),
        )
        data = inspected.case_event_data(
            case_id=case_id,
            origin=origin,
            tenant=tenant,
            backend=backend,
            attachments=attachments,
            original=original,
        )
        return CaseEvent.received(data)

    async def _claim_check(self, case_id: str, inspected: InspectedMessage) -> None:
        """Inline attachments leave the event for the object store; names are content
        addressed per case, so a redelivered message finds them stored already."""
        for attachment in inspected.attachments:
            if attachment.kind != "inline" or not attachment.content:
                continue
            digest = attachment.sha256 or hashlib.sha256(attachment.content).hexdigest()
            await put_once(self._js, attachment_object_name(case_id, digest), attachment.content)

    async def _forward(
        self, msg: Msg, case_id: str, inspected: InspectedMessage, peer: str
    ) -> list[asyncio.Future[Any]]:
        """A case for another state's municipality goes, raw and unchanged, to that state's
        hub, which routes it on its own table."""
        assert self._state is not None
        headers = {key: value for key, value in (msg.headers or {}).items()}
        headers[H_MSG_ID] = _header(msg, H_MSG_ID)
        headers[H_ORIGIN_STATE] = self._state
        tracing.inject(headers)
        return [
            await self._js.publish_async(
                federation_subject(peer, self._state), msg.data, headers=headers
            ),
            await self._audit.append_async(
                case_id, "forwarded", state=peer, region=inspected.region
            ),
        ]

    async def _reject_to_sender(
        self, msg: Msg, raw: bytes, case_id: str, rejected: MessageRejected
    ) -> list[asyncio.Future[Any]]:
        """An XÖV sender learns why its message was refused: an XBau 1100 Rückweisung with
        the schema errors goes back the way the message came. Senders without a reply
        route (plain HTTP) already know from the quarantine listing and the audit trail."""
        route = _reply_route(msg)
        header = self._inspector.header_facts(raw) if route else None
        if header is None or header.standard != "xbau" or not header.nachrichten_uuid:
            return []
        record = {
            "case_id": case_id,
            "message_type": header.message_type,
            "nachrichten_uuid": header.nachrichten_uuid,
            "author": header.author,
            "reader": header.reader,
            "answered": _answered_facts(header),
        }
        code = _SENDER_FAULTS[rejected.reason]
        # The errors quote the message, which may hold what the 1100's text cannot carry.
        errors = [
            RejectionReason(code=code, text=latin_text(str(e)[:2000]))
            for e in rejected.errors[:_MAX_REJECTION_ERRORS]
        ] or [RejectionReason(code=code, text=latin_text(rejected.detail[:2000]))]
        try:
            answered = answered_message(record).model_copy(update={"raw": raw})
            content = build_answer(
                ReplyEvent(case_id=case_id, kind="rejection", answered=answered, errors=errors)
            )
        except ValueError as exc:
            log.warning("no rejection answer possible case_id=%s reason=%s", case_id, exc)
            return []
        message_type, namespace = Answer.xoev_message_type("rejection")
        answer = Answer(
            case_id=case_id,
            kind="rejection",
            content=content,
            content_type="application/xml",
            message_type=message_type,
            namespace=namespace,
            reply_route=route,
            in_reply_to=in_reply_to(route, _header(msg, H_SOURCE_ID)),
        )
        try:
            check_answer(self._inspector, answer)
        except AnswerInvalidError as exc:
            # Not sent: the sender would refuse it. The arrival is parked already; the trail
            # says why no 1100 followed.
            log.warning("rejection answer invalid case_id=%s reason=%s", case_id, exc.reason)
            return [
                await self._audit.append_async(
                    case_id, "answer-refused", kind="rejection", reason=exc.reason, detail=str(exc)
                )
            ]
        channel, adapter = safe_token(_header(msg, H_CHANNEL)), safe_token(_header(msg, H_ADAPTER))
        return [
            await self._js.publish_async(
                f"outbox.{channel}.{adapter}",
                content,
                headers=tracing.inject(
                    {
                        **answer.headers(),
                        H_MSG_ID: f"outbox:rejection:{_header(msg, H_MSG_ID)}",
                    }
                ),
            ),
            await self._audit.append_async(
                case_id, "answer-queued", kind="rejection", message_type=message_type
            ),
        ]

    async def _quarantine(
        self, msg: Msg, case_id: str, step: str, reason: str, detail: str
    ) -> list[asyncio.Future[Any]]:
        log.info("quarantined case_id=%s step=%s reason=%s", case_id, step, reason)
        headers = {key: value for key, value in (msg.headers or {}).items() if key != H_MSG_ID}
        headers.update(
            {
                # One quarantine record per arrival, however often the arrival is redelivered.
                H_MSG_ID: f"quarantine:{_header(msg, H_MSG_ID)}",
                H_STEP: step,
                H_REASON: reason,
                H_DETAIL: " ".join(detail.split())[:_MAX_DETAIL],
            }
        )
        tracing.inject(headers)
        return [
            await self._js.publish_async(
                quarantine_subject(step, reason), msg.data, headers=headers
            ),
            await self._audit.append_async(
                case_id, "quarantined", step=step, reason=reason, detail=detail[:_MAX_DETAIL]
            ),
        ]
