"""What back ends send back about a case, and what the hub sends on to the origin.

A back end reports a ``CaseReply`` (status, decision, rejection, receipt) over HTTP, as a file
in its drop's ``in/`` folder, or as a publish to ``REPLIES``. The hub binds it to the message
it answers (``AnsweredMessage`` from the case registry) and queues an ``Answer`` in
``OUTBOX`` for the origin's adapter: an XÖV message for XTA, a JSON status for a portal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from poststelle.contracts._errors import MessageRejected
from poststelle.contracts.answers import (
    ANSWER_MESSAGE_TYPES,
    XBAU_NS,
    AnsweredMessage,
    HeaderAuthority,
    ReplyContent,
    ReplyEvent,
)
from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.validation import SchemaError, ValidationOutcome

__all__ = [
    "CASE_REPLY_SCHEMA_PATH",
    "Answer",
    "AnswerInvalidError",
    "CannotAnswerError",
    "CaseReply",
    "ForeignCaseError",
    "answered_message",
    "case_reply_json_schema",
    "check_answer",
    "in_reply_to",
    "reply_event",
]

CASE_REPLY_SCHEMA_PATH = Path(__file__).with_name("case-reply.schema.json")


class CannotAnswerError(ValueError):
    """The reply cannot become an answer the origin understands (e.g. an XBau 0205 without
    its required Anlage, or a kind the origin's standard cannot express)."""


class AnswerInvalidError(CannotAnswerError):
    """The answer was built but its standard refuses it: the contract's schema (or rules)
    found ``errors``, so the receiver would refuse it too. ``reason`` is the quarantine
    reason (``answer-schema-invalid``, ...), ``errors`` the findings with line and path."""

    def __init__(self, reason: str, detail: str, errors: tuple[SchemaError, ...] = ()) -> None:
        super().__init__(detail)
        self.reason = reason
        self.errors = errors


class ForeignCaseError(LookupError):
    """The case exists but was not routed to the back end that replies."""


class CaseReply(ReplyContent):
    """A back end's report about one case. ``reply_id`` makes re-sending harmless."""

    reply_id: str | None = Field(
        default=None, description="Idempotency key of this reply; derived from the body if absent"
    )
    note: str | None = Field(default=None, description="Plain-language status for citizens")

    def idempotency_key(self) -> str:
        if self.reply_id:
            return self.reply_id
        body = self.model_dump_json(exclude={"reply_id"}).encode()
        return hashlib.sha256(body).hexdigest()[:32]


def case_reply_json_schema() -> dict[str, Any]:
    """The reply's JSON Schema, as committed in ``contracts/case-reply.schema.json``."""
    schema = CaseReply.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://poststelle.example/contracts/case-reply.schema.json"
    schema["description"] = (
        "A back end's report about one case: the body of POST /v1/cases/{case_id}/events "
        "and of a publish to REPLIES (case id in the Poststelle-Case-Id header). A reply "
        "file in a file drop's in/ folder carries the same fields plus case_id. Examples: "
        "examples/replies/."
    )
    return schema


def answered_message(record: dict[str, Any]) -> AnsweredMessage:
    """The answered message's XÖV header facts, from a ``cases`` registry entry.

    Raises ``ValueError`` when the case lacks what an XÖV answer must refer to (for example
    a portal JSON submission has no XÖV header).
    """
    facts = record.get("answered") or {}
    missing = [
        name
        for name, value in (
            ("nachrichten_uuid", record.get("nachrichten_uuid")),
            ("author", record.get("author")),
            ("reader", record.get("reader")),
            ("erstellungszeitpunkt", facts.get("erstellungszeitpunkt")),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"case {record.get('case_id')} lacks {', '.join(missing)} for an answer")
    return AnsweredMessage(
        nachrichten_uuid=record["nachrichten_uuid"],
        nachrichtentyp=str(record["message_type"]).rsplit(".", 1)[-1],
        erstellungszeitpunkt=datetime.fromisoformat(str(facts["erstellungszeitpunkt"])),
        author=HeaderAuthority(
            kennung=record["author"], name=facts.get("author_name") or record["author"]
        ),
        reader=HeaderAuthority(
            kennung=record["reader"], name=facts.get("reader_name") or record["reader"]
        ),
        referenz_antragsservice=facts.get("referenz_antragsservice"),
    )


def in_reply_to(reply_route: dict[str, str], source_message_id: str | None) -> str | None:
    """What an answer refers to at the origin's transport: the id the message arrived with
    there (the XTA MessageID, kept in the reply route), else the message's own id."""
    return reply_route.get("in_reply_to") or source_message_id or None


def reply_event(case_id: str, reply: CaseReply, answered: AnsweredMessage) -> ReplyEvent:
    content = reply.model_dump(exclude={"reply_id", "note"})
    return ReplyEvent(case_id=case_id, answered=answered, **content)


@dataclass(frozen=True)
class Answer:
    """One answer on its way back to the origin, as the origin's adapter receives it."""

    case_id: str
    kind: str
    content: bytes
    content_type: str
    message_type: str | None = None
    namespace: str | None = None
    reply_route: dict[str, str] = field(default_factory=dict)
    in_reply_to: str | None = None

    @staticmethod
    def xoev_message_type(kind: str) -> tuple[str, str]:
        return ANSWER_MESSAGE_TYPES[kind], XBAU_NS

    def headers(self) -> dict[str, str]:
        return {
            "Poststelle-Case-Id": self.case_id,
            "Poststelle-Answer-Kind": self.kind,
            "Content-Type": self.content_type,
            "Poststelle-Message-Type": self.message_type or "",
            "Poststelle-Namespace": self.namespace or "",
            "Poststelle-Reply-Route": json.dumps(self.reply_route, separators=(",", ":")),
            "Poststelle-In-Reply-To": self.in_reply_to or "",
        }

    @classmethod
    def from_message(cls, data: bytes, headers: dict[str, str]) -> Answer:
        return cls(
            case_id=headers.get("Poststelle-Case-Id", ""),
            kind=headers.get("Poststelle-Answer-Kind", ""),
            content=data,
            content_type=headers.get("Content-Type", "application/octet-stream"),
            message_type=headers.get("Poststelle-Message-Type") or None,
            namespace=headers.get("Poststelle-Namespace") or None,
            reply_route=json.loads(headers.get("Poststelle-Reply-Route") or "{}"),
            in_reply_to=headers.get("Poststelle-In-Reply-To") or None,
        )


def check_answer(inspector: MessageInspector, answer: Answer) -> ValidationOutcome:
    """Validate an XML answer against its registered contract, as an arrival is validated
    (same levels, verdicts and errors); a JSON status has no schema. Raises
    ``AnswerInvalidError`` for an answer the standard refuses, including one whose message
    type no contract knows or whose schema cannot be compiled: such an answer must not be
    sent. ``not-performed`` (no schema set registered) lets it pass, as for an arrival."""
    if "xml" not in answer.content_type:
        return ValidationOutcome(status="not-performed", note="a JSON status has no schema")
    try:
        _, outcome = inspector.validate(answer.content)
    except MessageRejected as rejected:
        errors = tuple(e for e in rejected.errors if isinstance(e, SchemaError))
        detail = (
            f"the {answer.message_type or 'answer'} the hub built is refused: {rejected.detail}"
        )
        raise AnswerInvalidError(f"answer-{rejected.reason}", detail, errors) from rejected
    return outcome
