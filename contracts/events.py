"""The canonical CaseEvent: a CloudEvents 1.0 JSON event every back end receives.

The model is the contract; ``contracts/case-event.schema.json`` is generated from it
(``poststelle contracts schema``) and a test fails when the two drift apart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CASE_EVENT_SCHEMA_PATH",
    "AttachmentRef",
    "Authority",
    "CaseEvent",
    "CaseEventData",
    "Origin",
    "case_event_json_schema",
    "deterministic_case_id",
    "deterministic_event_id",
]

# A fixed namespace makes every derived id reproducible across hubs and restarts.
POSTSTELLE_NAMESPACE = uuid.UUID("5f0b7c1e-2d4a-5b8e-9c3f-0a1b2c3d4e5f")

CASE_EVENT_SCHEMA_PATH = Path(__file__).with_name("case-event.schema.json")

EVENT_TYPE_PREFIX = "de.poststelle.case"


def deterministic_event_id(source_message_id: str, event_type: str) -> str:
    """Same source message and event type give the same id, so republishing is a no-op."""
    return str(uuid.uuid5(POSTSTELLE_NAMESPACE, f"{event_type}\x1f{source_message_id}"))


def deterministic_case_id(scope: str, source_message_id: str) -> str:
    """The case id a message gets; the same for every arrival of the same message.

    ``scope`` is what makes the id unique (``contracts.message_identity``): an XÖV
    standard's namespace, the body hash, or the channel that issued the id."""
    return str(uuid.uuid5(POSTSTELLE_NAMESPACE, f"case\x1f{scope}\x1f{source_message_id}"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Authority(_Strict):
    """An XÖV authority id: ``praefix:kennung`` (e.g. ``bau:010020000000``)."""

    prefix: str = Field(description="Behördenkennung Präfix, e.g. 'bau'")
    code: str = Field(description="Behördenkennung Kennung")
    name: str | None = None

    @property
    def id(self) -> str:
        return f"{self.prefix}:{self.code}"


class Origin(_Strict):
    """Where the message came from and where answers go."""

    channel: str = Field(description="portal, xta, federation, ...")
    adapter: str = Field(description="Name of the inbound adapter instance")
    source_message_id: str = Field(
        description="The message's own identity and dedupe key: XÖV nachrichtenUUID, else "
        "'sha256-' + the body's digest, or the OZG transactionId; never a transport id"
    )
    reply_address: str | None = Field(
        default=None, description="Where the origin's adapter sends answers (mailbox, callback)"
    )
    reply_route: dict[str, str] = Field(
        default_factory=dict,
        description="Transport facts the origin's adapter needs to answer (e.g. XTA parties)",
    )


class AttachmentRef(_Strict):
    """An attachment the back end can fetch.

    ``inline`` attachments came inside the message and were claim-checked into the object
    store (``ref`` = ``attachments/<object name>``, size and sha256 always known);
    ``reference`` attachments travel beside the message (XBau Anlage links, xdomea
    Primärdokumente) and ``ref`` is the reference as the sender gave it.
    """

    name: str
    media_type: str
    kind: Literal["inline", "reference", "original"] = "inline"
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    ref: str = Field(description="Object-store reference or the sender's reference")


class Applicant(_Strict):
    name: str | None = None
    kind: Literal["person", "organisation", "unknown"] = "unknown"
    address: str | None = None
    postfach: str | None = None


class CaseEventData(_Strict):
    case_id: str = Field(description="Stable across the case's whole life")
    standard: str = Field(description="e.g. 'xbau'")
    version: str = Field(description="e.g. '2.6'")
    message_type: str = Field(description="Root element, e.g. 'baugenehmigung.antrag.0200'")
    nachrichten_uuid: str | None = Field(default=None, description="XÖV nachrichtenUUID")
    leistung: str | None = Field(default=None, description="LeiKa key (14 digits)")
    region: str | None = Field(default=None, description="ARS or AGS of the municipality")
    author: Authority | None = None
    reader: Authority | None = None
    origin: Origin
    tenant: str = Field(description="The responsible authority (routing result)")
    backend: str = Field(description="The tenant's back end (routing result)")
    applicant: Applicant | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="Mapped business fields")
    attachments: list[AttachmentRef] = Field(default_factory=list)
    original: AttachmentRef | None = Field(
        default=None,
        description="The original message: 'attachments/messages/<sha256>' in the object "
        "store when it was claim-checked (large bodies), else 'stream:INBOX/<sequence>'",
    )


class CaseEvent(_Strict):
    """CloudEvents 1.0, structured JSON mode."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = Field(description="URI reference: '/poststelle/<channel>/<adapter>'")
    type: str = Field(description=f"'{EVENT_TYPE_PREFIX}.<kind>', e.g. '...received'")
    subject: str | None = Field(default=None, description="The case id")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: CaseEventData

    @classmethod
    def received(cls, data: CaseEventData, *, time: datetime | None = None) -> CaseEvent:
        """The event announcing a new case to its back end."""
        event_type = f"{EVENT_TYPE_PREFIX}.received"
        return cls(
            id=deterministic_event_id(data.origin.source_message_id, event_type),
            source=f"/poststelle/{data.origin.channel}/{data.origin.adapter}",
            type=event_type,
            subject=data.case_id,
            time=time or datetime.now(UTC),
            data=data,
        )


def case_event_json_schema() -> dict[str, Any]:
    schema = CaseEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://poststelle.example/contracts/case-event.schema.json"
    return schema
