"""XTA adapter glue for the hub: an inbound mailbox poller and an outbound answer sender.

zeep is synchronous, so every XTA call runs in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from poststelle.adapters._attachments import InboundFile, attachments_header, claim_check
from poststelle.adapters._names import safe_file_name
from poststelle.adapters._poll_health import PollTask, saturation_of
from poststelle.adapters.base import (
    AdapterContext,
    AdapterSettings,
    PollHealth,
    TransportIdMemo,
)
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.adapters.xta._config import XtaConnectionSettings
from poststelle.adapters.xta._errors import (
    XtaError,
    XtaInvalidMessageId,
    XtaServiceUnavailable,
    XtaTransientError,
)
from poststelle.adapters.xta._model import (
    Attachment,
    FetchedMessage,
    MessageType,
    PartyId,
    TransportReport,
    XtaMessage,
    XtaMetadata,
)
from poststelle.adapters.xta.client import SendOutcome, XtaClient
from poststelle.contracts.envelope import H_REPLY_ROUTE as REPLY_ROUTE_HEADER
from poststelle.contracts.message_identity import identify_message
from poststelle.contracts.replies import Answer

__all__ = [
    "PollFailure",
    "PollRound",
    "PublishRaw",
    "SentAnswer",
    "TransportIdMemo",
    "XtaAdapterConfig",
    "XtaInboundAdapter",
    "XtaMailboxAdapter",
    "XtaMailboxSettings",
    "XtaOutboundSender",
    "XtaParty",
]

logger = logging.getLogger(__name__)

# Used when the incoming message did not name them (the simulator and many senders don't).
DEFAULT_SERVICE = "urn:xoev-de:xleitstelle:standard:xbau"
DEFAULT_BUSINESS_SCENARIO = "XBAU"

# Supplied by the hub: store the raw message and its attachments (the ContentContainer's
# Attachment elements) durably (awaiting JetStream's ack) and return. Raising means "not
# stored": the message stays in the mailbox and is fetched again later.
PublishRaw = Callable[[bytes, str, dict[str, Any], tuple[Attachment, ...]], Awaitable[None]]


class XtaParty(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    identifier: str = Field(min_length=1)
    type: str = Field(default="xoev", min_length=1)
    name: str | None = None

    def party(self) -> PartyId:
        return PartyId(self.identifier, self.type, self.name)


class XtaAdapterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    connection: XtaConnectionSettings
    # The mailboxes the hub reads (each an XTA reader identity of the hub).
    readers: list[XtaParty] = Field(min_length=1)
    poll_interval: float = Field(default=30.0, gt=0)
    max_list_items: int = Field(default=100, ge=1, le=10_000)


def _transport_facts(fetched: FetchedMessage, reader: PartyId) -> dict[str, Any]:
    m = fetched.message
    md = m.metadata
    return {
        "channel": "xta",
        "xta_message_id": md.message_id,
        "reader": reader.value,
        "reader_type": reader.type,
        "author": md.author.value,
        "author_type": md.author.type,
        "service": md.service,
        "business_scenario": md.business_scenario,
        "message_type": md.message_type.code,
        "payload_schema": md.message_type.payload_schema,
        "subject": md.subject,
        "in_reply_to": list(md.in_reply_to),
        "filename": m.filename,
        "content_type": m.content_type,
        "delivery": md.delivery.isoformat() if md.delivery else None,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.content)}
            for a in m.attachments
        ],
    }


@dataclass(frozen=True, slots=True)
class PollFailure:
    """One step of a poll round that failed; what it concerned stays in the mailbox."""

    reader: str
    operation: str
    xta_message_id: str | None
    error: str
    code: str | None = None

    @property
    def text(self) -> str:
        subject = f" {self.xta_message_id}" if self.xta_message_id else ""
        return f"{self.reader}{subject}: {self.error}"


@dataclass(slots=True)
class PollRound:
    """What one round over all mailboxes did."""

    received: int = 0
    # Listed twice in one status list, or gone by the time it was fetched.
    skipped: int = 0
    failures: list[PollFailure] = field(default_factory=list)
    # Ended early because the hub's intake is saturated: the rest waits in the mailbox.
    paused: bool = False


class XtaInboundAdapter:
    """Polls the configured mailboxes; a message is closed (removed from the mailbox) only after
    ``publish_raw`` returned, so a crash in between delivers it again (the hub dedupes on the
    message's own identity, its ``nachrichtenUUID``, whatever XTA MessageID it came with).

    Each message is taken on its own: a fault on one (fetch, store or close) is logged and
    leaves it in the mailbox for the next round, while the round goes on with the others.
    """

    def __init__(
        self,
        config: XtaAdapterConfig,
        publish_raw: PublishRaw,
        *,
        client: XtaClient | None = None,
        saturated: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._publish_raw = publish_raw
        # A mailbox cannot be refused like an HTTP client: the poller stops fetching instead.
        self._saturated = saturated or (lambda: False)
        self._client = client or XtaClient(config.connection)
        self._stop = asyncio.Event()
        self.health = PollHealth()

    @property
    def healthy(self) -> bool:
        """True when the last round went through without a failure."""
        return self.health.last_poll_ok

    async def poll_once(self) -> PollRound:
        """Read every mailbox once."""
        result = PollRound()
        for reader in (r.party() for r in self.config.readers):
            if self._pause(result):
                break
            try:
                listing = await asyncio.to_thread(
                    self._client.get_status_list, reader, self.config.max_list_items
                )
            except Exception as exc:
                _fail(result, reader, "getStatusList", None, exc)
                continue
            seen: set[str] = set()
            while True:
                await self._take_listed(reader, listing.entries, seen, result)
                # A mailbox holding more than one page: the rest comes with getNextStatusList
                # in the same round, unless the intake asked to pause.
                if not listing.items_pending or result.paused:
                    break
                try:
                    listing = await asyncio.to_thread(
                        self._client.get_next_status_list, reader, listing.request_id
                    )
                except Exception as exc:
                    _fail(result, reader, "getNextStatusList", None, exc)
                    break
                if all(entry.message_id in seen for entry in listing.entries):
                    break  # a server that keeps saying "pending" without new entries
        return result

    async def _take_listed(
        self,
        reader: PartyId,
        entries: tuple[XtaMetadata, ...],
        seen: set[str],
        result: PollRound,
    ) -> None:
        for entry in entries:
            if entry.message_id in seen:
                # At-least-once servers repeat entries; the first one took the message.
                result.skipped += 1
                logger.info(
                    "xta status list repeats an entry, skipped reader=%s xta_message_id=%s",
                    reader.value,
                    entry.message_id,
                    extra={"reader": reader.value, "xta_message_id": entry.message_id},
                )
                continue
            if self._pause(result):
                break
            seen.add(entry.message_id)
            await self._take(reader, entry.message_id, result)

    def _pause(self, result: PollRound) -> bool:
        """Whether to stop this round because the intake would refuse what it fetches."""
        if not result.paused and self._saturated():
            result.paused = True
            logger.warning(
                "xta poll paused, the hub's intake is saturated received=%d",
                result.received,
                extra={"received": result.received},
            )
        return result.paused

    async def _take(self, reader: PartyId, message_id: str, result: PollRound) -> None:
        """Fetch, store and close one message; a failing step is recorded, not raised."""
        try:
            fetched = await asyncio.to_thread(self._client.get_message, reader, message_id)
        except XtaInvalidMessageId:
            # Listed, then gone (closed by another poller, or withdrawn): nothing to take.
            result.skipped += 1
            logger.info(
                "xta message gone before it was fetched, skipped reader=%s xta_message_id=%s",
                reader.value,
                message_id,
                extra={"reader": reader.value, "xta_message_id": message_id},
            )
            return
        except Exception as exc:
            _fail(result, reader, "getMessage", message_id, exc)
            return
        try:
            await self._publish_raw(
                fetched.message.content,
                fetched.message_id,
                _transport_facts(fetched, reader),
                fetched.message.attachments,
            )
        except Exception as exc:
            # Not stored, so not closed: the mailbox keeps it for the next round.
            _fail(result, reader, "publish", message_id, exc)
            return
        try:
            await asyncio.to_thread(
                self._client.close, reader, fetched.request_id, [fetched.message_id]
            )
        except Exception as exc:
            # Stored but still in the mailbox: the next round fetches it again and the hub
            # recognises the duplicate.
            _fail(result, reader, "close", message_id, exc)
            return
        result.received += 1
        logger.info(
            "xta message received reader=%s xta_message_id=%s",
            reader.value,
            fetched.message_id,
            extra={"reader": reader.value, "xta_message_id": fetched.message_id},
        )

    async def run(self) -> None:
        """Poll until :meth:`stop`; failures are logged and the next round tries again."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                result = await self.poll_once()
            except Exception as exc:
                # poll_once records XTA faults itself; this is a bug, so keep the traceback.
                logger.error(
                    "xta poll failed error=%s",
                    _error_text(exc),
                    extra={"error": _error_text(exc)},
                    exc_info=exc,
                )
                self.health.record(0, [_error_text(exc)])
            else:
                self.health.record(result.received, [f.text for f in result.failures])
                if result.failures:
                    logger.warning(
                        "xta poll round incomplete received=%d skipped=%d failed=%d last_error=%s",
                        result.received,
                        result.skipped,
                        len(result.failures),
                        result.failures[-1].text,
                        extra={
                            "received": result.received,
                            "skipped": result.skipped,
                            "failed": len(result.failures),
                        },
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.config.poll_interval)

    def stop(self) -> None:
        self._stop.set()


def _error_text(exc: BaseException) -> str:
    # XtaError's str already names the operation, exception and code; others need their type.
    return str(exc) if isinstance(exc, XtaError) else f"{type(exc).__name__}: {exc}"


def _fail(
    result: PollRound,
    reader: PartyId,
    operation: str,
    message_id: str | None,
    exc: Exception,
) -> None:
    failure = PollFailure(
        reader=reader.value,
        operation=operation,
        xta_message_id=message_id,
        error=_error_text(exc),
        code=exc.code if isinstance(exc, XtaError) else None,
    )
    result.failures.append(failure)
    logger.error(
        "xta poll step failed reader=%s xta_message_id=%s operation=%s code=%s error=%s",
        failure.reader,
        failure.xta_message_id,
        failure.operation,
        failure.code,
        failure.error,
        extra={
            "reader": failure.reader,
            "xta_message_id": failure.xta_message_id,
            "operation": failure.operation,
            "code": failure.code,
            "error": failure.error,
        },
        # An XTA fault is explained by its text; anything else is a bug worth its traceback.
        exc_info=None if isinstance(exc, XtaError) else exc,
    )


@dataclass(frozen=True, slots=True)
class SentAnswer:
    message_id: str
    outcome: SendOutcome
    report: TransportReport | None


class XtaOutboundSender:
    """Sends an answer: ``createMessageId`` + ``lookupService`` + ``sendMessage`` +
    ``getTransportReport``.

    ``lookupService`` comes first so that an answer to a reader that does not offer the
    service fails at once with :class:`XtaServiceUnavailable` instead of ending as a red
    transport report nobody reads. Only a definite "not offered" stops the send: a server that
    does not know (``ServiceIsAvailableUnknown``) or cannot answer the lookup is sent to anyway.
    """

    def __init__(self, client: XtaClient, *, check_service: bool = True) -> None:
        self._client = client
        self._check_service = check_service

    async def _ensure_offered(self, author: PartyId, reader: PartyId, service: str) -> None:
        try:
            available = await asyncio.to_thread(
                self._client.is_service_available, author, reader, service
            )
        except XtaError as exc:
            logger.warning(
                "xta lookupService failed, sending anyway reader=%s service=%s error=%s",
                reader.value,
                service,
                exc,
                extra={"reader": reader.value, "service": service, "error": str(exc)},
            )
            return
        if available is False:
            raise XtaServiceUnavailable(
                f"reader {reader.value} does not offer service {service}",
                operation="lookupService",
            )

    async def new_message_id(self, author: PartyId) -> str:
        """``createMessageId``: an id for ``send``, to keep before sending with it."""
        return await asyncio.to_thread(self._client.create_message_id, author)

    async def send(
        self,
        content: bytes,
        *,
        author: PartyId,
        reader: PartyId,
        service: str,
        message_type: MessageType,
        business_scenario: str,
        filename: str | None = None,
        subject: str | None = None,
        in_reply_to: tuple[str, ...] = (),
        message_id: str | None = None,
    ) -> SentAnswer:
        """Send ``content``. Pass the ``message_id`` of an earlier attempt to resend idempotently
        (the hub should store the id from the first attempt before sending)."""
        if self._check_service:
            await self._ensure_offered(author, reader, service)
        if message_id is None:
            message_id = await asyncio.to_thread(self._client.create_message_id, author)
        message = XtaMessage(
            metadata=XtaMetadata(
                message_id=message_id,
                author=author,
                reader=reader,
                service=service,
                message_type=message_type,
                business_scenario=business_scenario,
                subject=subject,
                in_reply_to=in_reply_to,
            ),
            content=content,
            filename=filename,
        )
        outcome = await asyncio.to_thread(self._client.send_message, message)
        try:
            report = await asyncio.to_thread(self._client.get_transport_report, author, message_id)
        except XtaError as exc:
            # The message is accepted; a missing report is worth logging, not failing the send.
            logger.warning(
                "xta transport report unavailable",
                extra={"xta_message_id": message_id, "error": str(exc)},
            )
            report = None
        logger.info(
            "xta answer sent",
            extra={
                "xta_message_id": message_id,
                "outcome": outcome.value,
                "status": report.status.name if report else None,
            },
        )
        return SentAnswer(message_id, outcome, report)


class XtaMailboxSettings(AdapterSettings):
    """Settings of the ``xta`` inbound adapter (``[[inbound]] kind = "xta"``)."""

    connection: XtaConnectionSettings
    readers: list[XtaParty] = Field(min_length=1)
    poll_interval: float = Field(default=30.0, gt=0)
    max_list_items: int = Field(default=100, ge=1, le=10_000)


class XtaMailboxAdapter:
    """The XTA mailbox poller as an SDK inbound adapter.

    Each fetched message is published under its own identity (``nachrichtenUUID``, else the
    body's sha256), as on every channel: a resend under a new XTA MessageID is the same
    message. The XTA MessageID is kept as the transport id and as ``in_reply_to`` of the reply
    route; the sender (XTA author) and the mailbox it arrived in travel along too, so answers
    go back to the sender from the same mailbox. The container's attachments (an XBau
    application's plans) are claim-checked into the ``attachments`` store before the message
    is published, as the OZG intake does with its file parts, and the CaseEvent references
    them. A message over the size limit (``intake.max_message_bytes``, attachments included)
    cannot be refused at a mailbox: it is kept (claim check) and quarantined as ``too-large``.
    """

    kind: ClassVar[Literal["inbound"]] = "inbound"
    settings_model: ClassVar[type[AdapterSettings]] = XtaMailboxSettings

    def __init__(
        self,
        *,
        name: str,
        settings: XtaMailboxSettings,
        context: AdapterContext,
        client: XtaClient | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._publish = context.publisher("XTA")
        self._store_attachment = context.extras.get("store_attachment")
        self.poller = XtaInboundAdapter(
            XtaAdapterConfig(
                connection=settings.connection,
                readers=settings.readers,
                poll_interval=settings.poll_interval,
                max_list_items=settings.max_list_items,
            ),
            self._publish_raw,
            client=client,
            saturated=saturation_of(context.extras),
        )
        self._poll = PollTask()
        self._sender: XtaOutboundSender | None = None

    async def _publish_raw(
        self,
        body: bytes,
        xta_message_id: str,
        facts: dict[str, Any],
        attachments: tuple[Attachment, ...],
    ) -> None:
        reply = {
            "reader": str(facts["author"]),
            "reader_type": str(facts["author_type"]),
            "author": str(facts["reader"]),
            "author_type": str(facts["reader_type"]),
            "service": str(facts.get("service") or ""),
            "business_scenario": str(facts.get("business_scenario") or ""),
            "in_reply_to": xta_message_id,
        }
        headers = {REPLY_ROUTE_HEADER: json.dumps(reply, separators=(",", ":"))}
        if attachments:
            files = [
                InboundFile(
                    name=safe_file_name(a.filename, f"attachment-{index}"),
                    media_type=a.content_type,
                    content=a.content,
                )
                for index, a in enumerate(attachments, 1)
            ]
            # Under the case id the intake gives the message (its nachrichtenUUID): a refetch
            # after a crash finds the same objects and publishes the same references.
            case_id = identify_message(body).case_id
            headers.update(
                attachments_header(await claim_check(case_id, files, self._store_attachment))
            )
        await self._publish(
            body,
            channel="xta",
            adapter=self.name,
            content_type=str(facts.get("content_type") or "application/xml"),
            extra_headers=headers,
            transport_id=xta_message_id,
            too_large="quarantine",
        )

    async def start(self) -> None:
        self._poll.start(self.poller.run, name=f"xta-{self.name}")

    async def stop(self) -> None:
        self.poller.stop()
        await self._poll.stop()

    def health(self) -> dict[str, object]:
        return {
            "ok": self._poll.running,
            "readers": [r.identifier for r in self.settings.readers],
            **self.poller.health.report(),
        }

    async def answer(self, answer: Answer) -> dict[str, object]:
        """Send an answer back to the sender of the case's message, from the mailbox it
        arrived in; the transport report's status goes to the case's audit trail. Each call
        is a new XTA message: the hub's answer worker uses ``answer_once``."""
        return await self._send_answer(answer, None)

    async def answer_once(self, answer: Answer, memo: TransportIdMemo) -> dict[str, object]:
        """``answer`` under one XTA MessageID per answer, whatever number of attempts: the id
        of the first attempt is kept in ``memo`` *before* ``sendMessage``, so an attempt after
        a crash between ``sendMessage`` and the hub's ack resends under it, the server answers
        fault 9024 ("MessageID ist bereits vergeben") and the answer counts as sent
        (``outcome`` ``already-accepted``) instead of reaching the mailbox twice."""
        return await self._send_answer(answer, memo)

    async def _send_answer(self, answer: Answer, memo: TransportIdMemo | None) -> dict[str, object]:
        route = answer.reply_route
        if not route.get("reader") or not route.get("author") or not answer.message_type:
            raise PermanentDeliveryError(f"case {answer.case_id} has no XTA reply route")
        if self._sender is None:
            self._sender = XtaOutboundSender(XtaClient(self.settings.connection))
        author = PartyId(route["author"], route.get("author_type") or "xoev")
        try:
            message_id = await self._message_id(self._sender, author, memo)
            sent = await self._sender.send(
                answer.content,
                author=author,
                reader=PartyId(route["reader"], route.get("reader_type") or "xoev"),
                service=route.get("service") or DEFAULT_SERVICE,
                message_type=MessageType(answer.message_type, answer.namespace or ""),
                business_scenario=route.get("business_scenario") or DEFAULT_BUSINESS_SCENARIO,
                filename=f"{answer.message_type}.xml",
                in_reply_to=(answer.in_reply_to,) if answer.in_reply_to else (),
                message_id=message_id,
            )
        except XtaTransientError as exc:
            raise RetryableDeliveryError(f"XTA send: {exc}") from exc
        except XtaError as exc:
            raise PermanentDeliveryError(f"XTA send refused: {exc}") from exc
        return {
            "xta_message_id": sent.message_id,
            "outcome": sent.outcome.value,
            "transport_status": sent.report.status.name if sent.report else "unknown",
        }

    @staticmethod
    async def _message_id(
        sender: XtaOutboundSender, author: PartyId, memo: TransportIdMemo | None
    ) -> str | None:
        """The MessageID of an earlier attempt, else a new one, kept before it is used."""
        if memo is None:
            return None
        try:
            known = await memo.recall()
        except Exception as exc:  # cannot tell whether it was sent: do not risk a second one
            raise RetryableDeliveryError(f"XTA MessageID of an earlier attempt: {exc!r}") from exc
        if known:
            return known
        message_id = await sender.new_message_id(author)
        try:
            await memo.remember(message_id)
        except Exception as exc:  # unkept, a resend could not be recognised: do not send
            raise RetryableDeliveryError(f"XTA MessageID not kept: {exc!r}") from exc
        return message_id
