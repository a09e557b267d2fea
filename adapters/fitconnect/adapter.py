"""The FIT-Connect receiving adapter: the hub as a destination (Zustellpunkt).

Each poll round lists the destination's waiting submissions and takes them one by one:

1. fetch the submission, its attachments and the case's event log; verify the Zustelldienst's
   ``submit-submission`` SET and that its authentication tags are those of the JWEs fetched;
2. decrypt the metadata (destination's key), validate it against the metadata schema, decrypt
   the data and the attachments and check each SHA-512 the metadata gives;
3. accepted: claim-check the attachments, store the data in ``INBOX`` (the hub's intake, which
   returns after JetStream's ack), *then* send ``accept-submission``;
   refused: store the submission as fetched (still encrypted) in ``INBOX`` with the refusal
   (``H_REFUSED``: the routing core quarantines it with the reason), *then* send
   ``reject-submission`` with the problems.

A step that fails for a passing reason (the API, the broker) leaves the submission waiting at
the Zustelldienst: it is listed again next round, and the intake recognises what it stored
already (the submission id is the message's identity on this channel).

A back end's answer to such a case goes back as a *reply* in the same FIT-Connect case when
the sender offered the FIT-Connect reply channel (``replyChannel.fitConnect`` with its
``encryptionPublicKey``): encrypted for the sender's key and sent through the reply resources
with the destination's own client (``_reply``). Each poll round then looks for the sender's
verdict on the replies sent (``accept-reply``/``reject-reply`` in the reply's events) and
records it in the case's trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from poststelle.adapters._attachments import InboundFile, attachments_header, claim_check
from poststelle.adapters._poll_health import PollTask, saturation_of
from poststelle.adapters.base import (
    AdapterContext,
    AdapterSettings,
    PollHealth,
    Publish,
    TransportIdMemo,
)
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.adapters.fitconnect._client import (
    FitConnectClient,
    FitConnectError,
    FitConnectPermanentError,
)
from poststelle.adapters.fitconnect._config import FitConnectConnectionSettings
from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    decrypt,
    load_key,
    protected_header,
)
from poststelle.adapters.fitconnect._metadata import (
    MetadataRejected,
    MetadataValidator,
    check_content,
    data_schema,
    decrypt_content,
    encryption_issue,
    tags_mismatch,
)
from poststelle.adapters.fitconnect._reply import (
    FITCONNECT_REPLY_CHANNEL,
    reply_encryption_key,
    send_reply,
)
from poststelle.adapters.fitconnect._routes import RoutedDestination
from poststelle.adapters.fitconnect._set import (
    ACCEPT_REPLY,
    ACCEPT_SUBMISSION,
    REJECT_REPLY,
    REJECT_SUBMISSION,
    SUBMIT_SUBMISSION,
    AuthenticationTags,
    Problem,
    ProblemsFound,
    SecurityEvent,
    read_event,
    read_reported_event,
    security_event,
)
from poststelle.contracts.envelope import H_REFUSED, H_REPLY_ROUTE, safe_token
from poststelle.contracts.message_identity import issued_by
from poststelle.contracts.replies import Answer

__all__ = [
    "CHANNEL",
    "REFUSED_STEP",
    "REPLY_ACCEPTED_HOP",
    "REPLY_REJECTED_HOP",
    "FitConnectAdapter",
    "FitConnectSettings",
    "PollRound",
    "TransportIdMemo",
]

logger = logging.getLogger(__name__)

CHANNEL = "fitconnect"
# schemaUri of a reply that is the hub's JSON case status (not an XÖV message).
STATUS_SCHEMA_URI = "urn:poststelle:case-status:1"
# The quarantine step of a submission the adapter refused; the reason is the problem's type.
REFUSED_STEP = "fitconnect"
# The case's audit hops for the sender's verdict on a reply.
REPLY_ACCEPTED_HOP = "fitconnect-reply-accepted"
REPLY_REJECTED_HOP = "fitconnect-reply-rejected"
_MAX_DETAIL = 900


class FitConnectSettings(AdapterSettings):
    """Settings of the ``fitconnect`` inbound adapter (``[[inbound]] kind = "fitconnect"``).

    ``decryption_key`` and ``signing_key`` are the destination's private JWKs (files);
    ``metadata_schema`` is FITKO's ``metadata.schema.v1.0.0.json``.
    """

    connection: FitConnectConnectionSettings
    destination_id: str
    decryption_key: Path
    signing_key: Path
    metadata_schema: Path
    poll_interval: float = Field(default=30.0, gt=0)
    max_list_items: int = Field(default=100, ge=1, le=10_000)
    # Routing API answers (docs/fitconnect.md): the tenants this destination takes cases for
    # (empty: every tenant of the hub) and the name it gives.
    tenants: list[str] = Field(default_factory=list)
    destination_name: str | None = None

    @field_validator("destination_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    @field_validator("decryption_key", "signing_key", "metadata_schema")
    @classmethod
    def _file(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value


@dataclass(slots=True)
class PollRound:
    """What one round did: accepted, rejected (and quarantined), and what failed (waits)."""

    accepted: int = 0
    rejected: int = 0
    failures: list[str] = field(default_factory=list)
    paused: bool = False

    @property
    def received(self) -> int:
        return self.accepted + self.rejected


@dataclass(frozen=True, slots=True)
class _Fetched:
    submission: dict[str, Any]
    attachments: dict[str, str]

    @property
    def submission_id(self) -> str:
        return str(self.submission["submissionId"])

    @property
    def case_id(self) -> str:
        return str(self.submission["caseId"])

    def tags(self) -> AuthenticationTags:
        data = self.submission.get("encryptedData")
        return AuthenticationTags.of(
            str(self.submission.get("encryptedMetadata", "")),
            str(data) if data else None,
            self.attachments,
        )

    def raw(self) -> bytes:
        """The submission as it came, encrypted parts included: what a refusal keeps."""
        return json.dumps(
            {**self.submission, "attachments": self.attachments}, separators=(",", ":")
        ).encode()


@dataclass(frozen=True, slots=True)
class _Opened:
    metadata: dict[str, Any]
    data: bytes
    media_type: str
    attachments: dict[str, bytes]
    # The tags checked against submit-submission: what accept-submission names.
    tags: AuthenticationTags


class _Refused(ProblemsFound):
    """The submission does not pass: stored as fetched and answered with reject-submission."""


def _verdict(tokens: list[str], reply_id: str) -> SecurityEvent | None:
    """The sender's last ``accept-reply`` or ``reject-reply`` on ``reply_id`` among a
    reply's events, if it gave one."""
    verdict = None
    for token in tokens:
        try:
            event = read_reported_event(token)
        except CryptoError:
            continue
        if event.reply_id == reply_id and event.event in (ACCEPT_REPLY, REJECT_REPLY):
            verdict = event
    return verdict


class FitConnectAdapter:
    """The destination's poller as an SDK inbound adapter (see the module docstring)."""

    kind: ClassVar[Literal["inbound"]] = "inbound"
    settings_model: ClassVar[type[AdapterSettings]] = FitConnectSettings

    def __init__(
        self,
        *,
        name: str,
        settings: FitConnectSettings,
        context: AdapterContext,
        client: FitConnectClient | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._publish: Publish = context.publisher("FIT-Connect")
        self._store_attachment = context.extras.get("store_attachment")
        self._saturated: Callable[[], bool] = saturation_of(context.extras) or (lambda: False)
        self._decryption_key = load_key(settings.decryption_key, private=True, purpose="decryption")
        self._signing_key = load_key(settings.signing_key, private=True, purpose="signing")
        self._metadata = MetadataValidator(settings.metadata_schema)
        self._client = client
        self._record_hop = context.extras.get("record_hop")
        # Replies sent whose verdict the sender has not given yet (reply id -> the cases).
        self._awaiting_file = context.data_dir / "fitconnect" / f"{safe_token(name)}-replies.json"
        self._awaiting: dict[str, dict[str, str]] | None = None
        self._service_keys: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._poll = PollTask()
        self.health_facts = PollHealth()

    @property
    def client(self) -> FitConnectClient:
        if self._client is None:
            self._client = FitConnectClient(self.settings.connection)
        return self._client

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._poll.running:
            self._stop.clear()
            self._poll.start(self._run, name=f"fitconnect-{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        await self._poll.stop()

    def health(self) -> dict[str, object]:
        return {
            "ok": self._poll.running,
            "destination": self.settings.destination_id,
            **self.health_facts.report(),
        }

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = await self.poll_once()
            except Exception as exc:  # poll_once records API faults itself: this is a bug
                logger.error("fitconnect poll failed error=%r", exc, exc_info=exc)
                self.health_facts.record(0, [f"{type(exc).__name__}: {exc}"])
            else:
                self.health_facts.record(result.received, result.failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.poll_interval)

    # -- discovery ---------------------------------------------------------------------------

    def serves(self, tenant: str) -> bool:
        """Whether this destination takes the cases the routing table gives ``tenant``."""
        return not self.settings.tenants or tenant in self.settings.tenants

    def routed_destination(self) -> RoutedDestination:
        """This destination as a Routing API answer names it."""
        return RoutedDestination(
            destination_id=self.settings.destination_id,
            submission_url=self.settings.connection.base_url,
            signing_key=self._signing_key,
            name=self.settings.destination_name or self.name,
        )

    # -- one round -----------------------------------------------------------------------------

    async def poll_once(self) -> PollRound:
        result = PollRound()
        try:
            listed = await self.client.list_submissions(
                self.settings.destination_id, limit=self.settings.max_list_items
            )
        except FitConnectError as exc:
            self._fail(result, None, "list", exc)
            return result
        for entry in listed:
            if self._saturated():
                result.paused = True
                logger.warning("fitconnect poll paused, the hub's intake is saturated")
                break
            await self._take(str(entry.get("submissionId")), result)
        await self._watch_replies(result)
        return result

    def _fail(
        self, result: PollRound, submission_id: str | None, step: str, exc: Exception
    ) -> None:
        text = f"{submission_id or self.settings.destination_id} {step}: {exc}"
        result.failures.append(text)
        logger.error(
            "fitconnect step failed submission_id=%s step=%s error=%s",
            submission_id,
            step,
            exc,
            extra={"submission_id": submission_id, "step": step, "error": str(exc)},
            # API faults explain themselves; anything else is a bug worth its traceback.
            exc_info=None if isinstance(exc, FitConnectError | CryptoError) else exc,
        )

    async def _take(self, submission_id: str, result: PollRound) -> None:
        """One submission; whatever fails is recorded and leaves it waiting, and the round
        goes on with the others."""
        step = "fetch"
        try:
            fetched = await self._fetch(submission_id)
            step = "open"
            try:
                opened = await self._open(fetched)
            except _Refused as refused:
                await self._refuse(fetched, refused.problems, result)
                return
            await self._accept(fetched, opened, result)
        except Exception as exc:
            self._fail(result, submission_id, step, exc)

    async def _fetch(self, submission_id: str) -> _Fetched:
        submission = await self.client.submission(submission_id)
        attachments = {
            str(attachment_id): await self.client.attachment(submission_id, str(attachment_id))
            for attachment_id in submission.get("attachments") or []
        }
        return _Fetched(submission, attachments)

    async def _verified_submit_event(self, fetched: _Fetched) -> AuthenticationTags:
        """The tags the Zustelldienst signed for this submission (its ``submit-submission``)."""
        problems: list[Problem] = []
        # The keys fetched after the log are as new as any token in it: once per log is
        # enough, though the destination's and the sender's SETs name kids it never has.
        may_fetch = True
        for token in await self.client.events(fetched.case_id):
            try:
                keys, fetched_now = await self._keys_for(token, may_fetch=may_fetch)
                may_fetch = may_fetch and not fetched_now
                event = read_event(token, keys)
            except CryptoError as exc:
                problems.append(Problem("invalid-event-log", "Ereignisprotokoll", str(exc), "log"))
                continue
            if event.event == SUBMIT_SUBMISSION and event.submission_id == fetched.submission_id:
                return event.tags()
        raise _Refused(
            problems
            or [Problem("invalid-event-log", "Ereignisprotokoll", "no submit-submission", "log")]
        )

    async def _keys_for(self, token: str, *, may_fetch: bool) -> tuple[dict[str, Any], bool]:
        """The Zustelldienst's keys, and whether they were fetched again: when a token names
        a kid not known yet (the service rotated its key) and ``may_fetch``."""
        try:
            kid = str(protected_header(token, "SET").get("kid"))
        except CryptoError:
            return self._service_keys, False  # read_event says what is wrong with it
        if kid in self._service_keys or not may_fetch:
            return self._service_keys, False
        fetched = await self.client.service_keys()
        self._service_keys = {}
        for key_id, jwk in fetched.items():
            with contextlib.suppress(CryptoError):
                self._service_keys[key_id] = load_key(jwk, private=False, purpose="service")
        return self._service_keys, True

    async def _open(self, fetched: _Fetched) -> _Opened:
        """Decrypt and check everything; ``_Refused`` with every problem found."""
        try:
            tags = fetched.tags()
        except CryptoError as exc:
            raise _Refused([encryption_issue("submission", exc)]) from exc
        signed = await self._verified_submit_event(fetched)
        if signed != tags:
            raise _Refused([tags_mismatch("submission")])
        try:
            plain = decrypt(
                str(fetched.submission.get("encryptedMetadata")),
                self._decryption_key,
                what="metadata",
            )
        except CryptoError as exc:
            raise _Refused([encryption_issue("metadata", exc)]) from exc
        try:
            metadata = self._metadata.parse(plain)
        except MetadataRejected as exc:
            raise _Refused(exc.problems) from exc
        channel = metadata.get("replyChannel")
        if isinstance(channel, dict) and FITCONNECT_REPLY_CHANNEL in channel:
            # Refused now rather than found unusable when the answer is due.
            try:
                reply_encryption_key(channel)
            except CryptoError as exc:
                raise _Refused(
                    [
                        Problem(
                            "schema-violation",
                            "Schema-Fehler",
                            f"replyChannel/fitConnect/encryptionPublicKey: {exc}",
                            "metadata",
                        )
                    ]
                ) from exc
        encrypted_data = fetched.submission.get("encryptedData")
        data, attachments, problems = decrypt_content(
            str(encrypted_data) if encrypted_data else None,
            fetched.attachments,
            self._decryption_key,
        )
        if problems:
            raise _Refused(problems)
        try:
            check_content(metadata, data, attachments)
        except MetadataRejected as exc:
            raise _Refused(exc.problems) from exc
        service = (metadata.get("publicServiceType") or {}).get("identifier")
        announced = (fetched.submission.get("serviceType") or {}).get("identifier")
        if service and announced and service != announced:
            raise _Refused(
                [
                    Problem(
                        "service-mismatch",
                        "Leistung stimmt nicht",
                        f"metadata names {service}, the submission {announced}",
                        "metadata",
                    )
                ]
            )
        if data is None:
            # The hub routes on the data (an XÖV message, a form): a submission of only
            # attachments has nothing to route on.
            raise _Refused([Problem("missing-data", "Fachdaten fehlen", "no data", "data")])
        schema = data_schema(metadata)
        media_type = schema[1] if schema else "application/json"
        return _Opened(metadata, data, media_type, attachments, tags)

    # -- outcomes ------------------------------------------------------------------------------

    def _reply_route(self, fetched: _Fetched, metadata: dict[str, Any] | None) -> str:
        route = {
            "destination_id": self.settings.destination_id,
            "submission_id": fetched.submission_id,
            "fitconnect_case_id": fetched.case_id,
        }
        service = (fetched.submission.get("serviceType") or {}).get("identifier")
        if service:
            route["service"] = str(service)
        channel = (metadata or {}).get("replyChannel")
        if channel:
            route["reply_channel"] = json.dumps(channel, separators=(",", ":"))
        return json.dumps(route, separators=(",", ":"))

    def _files(self, opened: _Opened) -> list[InboundFile]:
        """The attachments with the name and type the sender's metadata gives them."""
        if not opened.attachments:
            return []
        structure = opened.metadata["contentStructure"]
        described = {a["attachmentId"]: a for a in structure["attachments"]}
        return [
            InboundFile(
                name=str(described[attachment_id].get("filename") or attachment_id),
                media_type=str(described[attachment_id]["mimeType"]),
                content=content,
            )
            for attachment_id, content in opened.attachments.items()
        ]

    async def _accept(self, fetched: _Fetched, opened: _Opened, result: PollRound) -> None:
        submission_id = fetched.submission_id
        try:
            case_id = issued_by(CHANNEL, submission_id).case_id
            refs = await claim_check(case_id, self._files(opened), self._store_attachment)
            headers = {H_REPLY_ROUTE: self._reply_route(fetched, opened.metadata)}
            if refs:
                headers.update(attachments_header(refs))
            await self._publish(
                opened.data,
                channel=CHANNEL,
                adapter=self.name,
                source_message_id=submission_id,
                content_type=opened.media_type,
                extra_headers=headers,
                transport_id=submission_id,
                too_large="quarantine",
            )
        except Exception as exc:
            # Not stored, so not accepted: the Zustelldienst keeps it for the next round.
            self._fail(result, submission_id, "publish", exc)
            return
        await self._answer(fetched, ACCEPT_SUBMISSION, result, tags=opened.tags)

    async def _refuse(self, fetched: _Fetched, problems: list[Problem], result: PollRound) -> None:
        submission_id = fetched.submission_id
        first = problems[0]
        refusal = {
            "step": REFUSED_STEP,
            "reason": first.type,
            "detail": "; ".join(f"{p.instance}: {p.detail}" for p in problems)[:_MAX_DETAIL],
        }
        try:
            await self._publish(
                fetched.raw(),
                channel=CHANNEL,
                adapter=self.name,
                source_message_id=submission_id,
                content_type="application/json",
                extra_headers={
                    H_REFUSED: json.dumps(refusal, separators=(",", ":")),
                    H_REPLY_ROUTE: self._reply_route(fetched, None),
                },
                transport_id=submission_id,
                too_large="quarantine",
            )
        except Exception as exc:
            self._fail(result, submission_id, "publish", exc)
            return
        logger.warning(
            "fitconnect submission refused submission_id=%s reason=%s detail=%s",
            submission_id,
            first.type,
            refusal["detail"],
            extra={"submission_id": submission_id, "reason": first.type},
        )
        await self._answer(fetched, REJECT_SUBMISSION, result, problems=problems)

    async def _answer(
        self,
        fetched: _Fetched,
        event: str,
        result: PollRound,
        *,
        tags: AuthenticationTags | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        token = security_event(
            event,
            issuer=self.settings.destination_id,
            submission_id=fetched.submission_id,
            case_id=fetched.case_id,
            key=self._signing_key,
            tags=tags,
            problems=problems or (),
        )
        try:
            await self.client.post_event(fetched.case_id, token)
        except FitConnectError as exc:
            # Stored, not yet answered: the next round stores it again (a duplicate the
            # intake recognises) and answers then.
            self._fail(result, fetched.submission_id, "post-event", exc)
            return
        if event == ACCEPT_SUBMISSION:
            result.accepted += 1
        else:
            result.rejected += 1
        logger.info(
            "fitconnect submission answered submission_id=%s event=%s",
            fetched.submission_id,
            event.rsplit("/", 1)[-1],
            extra={"submission_id": fetched.submission_id, "event": event},
        )

    # -- the reply path ------------------------------------------------------------------------

    async def answer(self, answer: Answer) -> dict[str, object]:
        """The back end's answer to a FIT-Connect case. The submission itself was answered
        (accept-submission) when it was stored; the answer goes to the sender as a reply in
        the same FIT-Connect case when the sender offered the FIT-Connect reply channel, and
        is only recorded otherwise. Each call may send a new reply: the hub's answer worker
        uses ``answer_once``."""
        return await self._reply(answer, None)

    async def answer_once(self, answer: Answer, memo: TransportIdMemo) -> dict[str, object]:
        """``answer`` as one reply whatever the number of attempts: its id is kept in
        ``memo`` right after it is announced, so an attempt after a crash finishes that reply
        (or finds it submitted) instead of sending a second one."""
        return await self._reply(answer, memo)

    async def _reply(self, answer: Answer, memo: TransportIdMemo | None) -> dict[str, object]:
        route = answer.reply_route
        case_id = route.get("fitconnect_case_id")
        if not case_id or not route.get("submission_id"):
            raise PermanentDeliveryError(f"case {answer.case_id} has no FIT-Connect reply route")
        facts: dict[str, object] = {"fitconnect_case_id": case_id}
        try:
            channel = json.loads(route["reply_channel"]) if route.get("reply_channel") else {}
        except ValueError as exc:
            raise PermanentDeliveryError(f"case {answer.case_id}: reply channel: {exc}") from exc
        if not isinstance(channel, dict) or FITCONNECT_REPLY_CHANNEL not in channel:
            # eMail, De-Mail, FINK or ELSTER are no channels of this hub: the answer stays in
            # the case's trail and status, where an operator finds it.
            offered = list(channel) if isinstance(channel, dict) else []
            return {**facts, "outcome": "no-fitconnect-reply-channel", "offered": offered}
        offer = channel[FITCONNECT_REPLY_CHANNEL]
        facts["process_standards"] = list(offer.get("processStandards") or [])
        try:
            key = reply_encryption_key(channel)
        except CryptoError as exc:
            # Checked when the submission came; a route from before that check may lack it.
            raise PermanentDeliveryError(f"FIT-Connect reply: {exc}") from exc
        try:
            known = await memo.recall() if memo is not None else None
        except Exception as exc:  # cannot tell whether it was sent: do not risk a second one
            raise RetryableDeliveryError(
                f"FIT-Connect reply of an earlier attempt: {exc!r}"
            ) from exc
        xml = answer.content_type.endswith("xml")
        try:
            sent = await send_reply(
                self.client,
                case_id,
                key,
                service={"identifier": route.get("service") or "urn:poststelle:reply"},
                data=answer.content,
                schema_uri=(answer.namespace if xml and answer.namespace else STATUS_SCHEMA_URI),
                mime_type="application/xml" if xml else "application/json",
                reply_id=known,
                on_announced=memo.remember if memo is not None else None,
            )
        except FitConnectPermanentError as exc:
            if known and exc.status == 409:
                # Submitted by the attempt that crashed before the hub noted it.
                self._await_verdict(known, answer.case_id, case_id)
                return {**facts, "outcome": "already-sent", "fitconnect_reply_id": known}
            raise PermanentDeliveryError(f"FIT-Connect reply refused: {exc}") from exc
        except FitConnectError as exc:  # transient, or neither kind: try again
            raise RetryableDeliveryError(f"FIT-Connect reply: {exc}") from exc
        except CryptoError as exc:
            raise PermanentDeliveryError(f"FIT-Connect reply: {exc}") from exc
        self._await_verdict(sent.reply_id, answer.case_id, case_id)
        logger.info(
            "fitconnect reply sent case_id=%s reply_id=%s",
            case_id,
            sent.reply_id,
            extra={"fitconnect_case_id": case_id, "reply_id": sent.reply_id},
        )
        return {**facts, "outcome": "sent", "fitconnect_reply_id": sent.reply_id}

    # -- the sender's verdict on a reply -------------------------------------------------------

    def _awaiting_replies(self) -> dict[str, dict[str, str]]:
        if self._awaiting is None:
            try:
                loaded = json.loads(self._awaiting_file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                loaded = {}
            except (OSError, ValueError) as exc:
                logger.error("fitconnect replies awaiting a verdict unreadable error=%s", exc)
                loaded = {}
            self._awaiting = loaded if isinstance(loaded, dict) else {}
        return self._awaiting

    def _save_awaiting(self) -> None:
        try:
            self._awaiting_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self._awaiting_file.with_suffix(".partial")
            partial.write_text(json.dumps(self._awaiting_replies()), encoding="utf-8")
            partial.replace(self._awaiting_file)
        except OSError as exc:
            # The reply went out; only the watch for its verdict is lost (logged, not fatal).
            logger.error("fitconnect replies awaiting a verdict not kept error=%s", exc)

    def _await_verdict(self, reply_id: str, case_id: str, fitconnect_case_id: str) -> None:
        self._awaiting_replies()[reply_id] = {
            "case_id": case_id,
            "fitconnect_case_id": fitconnect_case_id,
        }
        self._save_awaiting()

    async def _watch_replies(self, result: PollRound) -> None:
        """The sender's ``accept-reply`` or ``reject-reply`` on each reply sent, recorded in
        the case's trail once the Zustelldienst holds it. The destination cannot verify the
        sender's signature (no published source says where its key is); the Zustelldienst
        verified it when it took the SET, and the trail says so."""
        awaiting = self._awaiting_replies()
        if not awaiting or self._record_hop is None:
            return
        for reply_id, about in list(awaiting.items()):
            try:
                tokens = await self.client.reply_events(reply_id)
            except FitConnectError as exc:
                self._fail(result, reply_id, "reply-events", exc)
                continue
            verdict = _verdict(tokens, reply_id)
            if verdict is None:
                continue
            accepted = verdict.event == ACCEPT_REPLY
            detail: dict[str, object] = {
                "adapter": self.name,
                "fitconnect_case_id": about["fitconnect_case_id"],
                "fitconnect_reply_id": reply_id,
                "issuer": verdict.issuer,
                "signature": "verified by the Zustelldienst, not by the destination",
            }
            if not accepted:
                detail["problems"] = [
                    {k: str(p.get(k, "")) for k in ("type", "instance", "detail")}
                    for p in verdict.problems
                    if isinstance(p, dict)
                ]
            try:
                await self._record_hop(
                    about["case_id"],
                    REPLY_ACCEPTED_HOP if accepted else REPLY_REJECTED_HOP,
                    **detail,
                )
            except Exception as exc:  # the broker is away: the next round records it
                self._fail(result, reply_id, "record-verdict", exc)
                continue
            del awaiting[reply_id]
            self._save_awaiting()
            log = logger.info if accepted else logger.warning
            log(
                "fitconnect reply %s reply_id=%s case_id=%s",
                verdict.name,
                reply_id,
                about["case_id"],
                extra={"reply_id": reply_id, "event": verdict.event},
            )
