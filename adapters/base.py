"""The adapter protocol: what every inbound and outbound adapter promises the hub.

Kept deliberately small, as httpx keeps its transport base: an adapter has a name, a
validated settings model, ``start``/``stop``/``health``; inbound adapters hand raw arrivals
to a ``Publish`` callable, outbound adapters implement ``deliver`` and raise
``RetryableDeliveryError`` or ``PermanentDeliveryError``.

``health()`` returns a JSON-able report with at least ``ok``; the hub shows an inbound
adapter's report in ``/healthz`` under its name and kind. A poller keeps a
:class:`PollHealth` and adds its ``report()`` (last poll, last success, received, last error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from poststelle.adapters._poll_health import PollHealth
from poststelle.contracts.events import CaseEvent
from poststelle.contracts.intake import Publish  # the wire contract; re-exported for adapters

__all__ = [
    "AdapterContext",
    "AdapterSettings",
    "AttachmentMissing",
    "DeliversStoredEvents",
    "InboundAdapter",
    "OutboundAdapter",
    "PollHealth",
    "Publish",
    "ReadAttachment",
    "StoredCaseEvent",
    "TransportIdMemo",
]


class AdapterSettings(BaseModel):
    """Base for per-instance settings: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AttachmentMissing(LookupError):
    """The object an ``AttachmentRef.ref`` names is not in the hub's store (any more)."""


class ReadAttachment(Protocol):
    """The bytes behind a claim-checked ``AttachmentRef.ref`` (``attachments/<name>``).

    Raises ``AttachmentMissing`` when there is no such object; other errors (the broker is
    away) are transient.
    """

    async def __call__(self, ref: str) -> bytes: ...


@dataclass(frozen=True)
class AdapterContext:
    """What the hub lends an adapter: where it may keep files, how to publish arrivals,
    how an outbound adapter reads the attachments its events reference."""

    data_dir: Path
    publish: Publish | None = None
    read_attachment: ReadAttachment | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def publisher(self, adapter: str) -> Publish:
        """``publish``, without which an inbound adapter (``adapter`` names it) cannot work."""
        if self.publish is None:
            raise ValueError(f"the {adapter} adapter needs the hub's publish callable")
        return self.publish


class TransportIdMemo(Protocol):
    """Where the hub keeps the transport id of one answer across attempts (and crashes): the
    XTA MessageID, the FIT-Connect reply id. An adapter's ``answer_once`` keeps it before it
    sends, so a later attempt finishes that send instead of making another."""

    async def recall(self) -> str | None: ...

    async def remember(self, transport_id: str) -> None: ...


@runtime_checkable
class _Lifecycle(Protocol):
    kind: ClassVar[Literal["inbound", "outbound"]]
    settings_model: ClassVar[type[AdapterSettings]]
    name: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def health(self) -> dict[str, object]: ...


@runtime_checkable
class InboundAdapter(_Lifecycle, Protocol):
    """Polls or listens at a source and publishes what arrives."""


@runtime_checkable
class OutboundAdapter(_Lifecycle, Protocol):
    """Delivers CaseEvents to one back end of one tenant."""

    tenant: str

    async def deliver(self, event: CaseEvent) -> None: ...


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _StoredData(_Head):
    case_id: str
    tenant: str
    backend: str


class _StoredHead(_Head):
    specversion: Literal["1.0"]
    id: str
    type: str
    data: _StoredData


@dataclass(frozen=True, slots=True)
class StoredCaseEvent:
    """A CaseEvent as ``CASES`` stores it: the JSON bytes the routing core wrote (from the
    validated model), and the few facts a delivery needs, read from them.

    A back end that passes the event on as it is (a webhook body, a file) takes ``raw``
    and saves a full parse into the model and a serialisation back; ``event()`` gives the
    model to one that needs more."""

    raw: bytes
    id: str
    case_id: str
    tenant: str
    backend: str

    @classmethod
    def from_json(cls, raw: bytes) -> StoredCaseEvent:
        """Raises ``ValueError`` (a ``ValidationError``) when the bytes are no CaseEvent:
        not JSON, not CloudEvents 1.0, or without the id, case, tenant and back end."""
        head = _StoredHead.model_validate_json(raw)
        return cls(
            raw=raw,
            id=head.id,
            case_id=head.data.case_id,
            tenant=head.data.tenant,
            backend=head.data.backend,
        )

    def event(self) -> CaseEvent:
        return CaseEvent.model_validate_json(self.raw)


@runtime_checkable
class DeliversStoredEvents(Protocol):
    """An outbound adapter that takes the stored event's bytes as they are; the delivery
    worker then hands it those instead of a parsed ``CaseEvent``."""

    async def deliver_stored(self, stored: StoredCaseEvent) -> None: ...
