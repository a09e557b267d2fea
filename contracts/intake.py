"""What an inbound adapter and the hub's intake promise each other: the ``Publish`` call,
its receipt (``Accepted``) and the two errors it raises.

The hub implements ``Publish`` (``routing/hub/intake.py``); adapters only call it, so the
adapter SDK depends on this contract and never on the hub's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ._safexml import DEFAULT_MAX_BYTES
from .transient import RETRY_AFTER

__all__ = [
    "DEFAULT_MAX_ATTACHMENTS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Accepted",
    "Admission",
    "IntakeBusy",
    "IntakeUnavailable",
    "MessageTooLarge",
    "Publish",
    "TooLarge",
]

# XTA's container limit, the parser's own.
DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_MAX_BYTES
# Every file's reference (about 300 bytes) travels in one NATS header, which counts against
# the server's max_payload: the default keeps a full list far below NATS' 1 MiB default.
DEFAULT_MAX_ATTACHMENTS = 200
# What an adapter does with a body over the limit: refuse it (HTTP can answer 413), or keep
# it for quarantine (a mailbox message cannot be answered, only kept or lost).
TooLarge = Literal["refuse", "quarantine"]


class MessageTooLarge(Exception):
    """Permanent: the body exceeds the configured limit; nothing was stored."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the message has {size} bytes, the limit is {limit} bytes")
        self.size, self.limit = size, limit


class IntakeUnavailable(Exception):
    """Transient: the broker did not take the message (disconnected, timed out); nothing
    was acknowledged, and the same call may succeed in ``retry_after`` seconds."""

    retry_after = RETRY_AFTER


class IntakeBusy(IntakeUnavailable):
    """Transient: the hub refused the arrival to protect itself (too many requests in
    flight, or the routing core's backlog over its limit); nothing was read or stored.

    ``status`` is the HTTP answer: ``429`` for the caller's concurrency (in flight), ``503``
    for the hub's own backlog. Either way the same call may succeed in ``retry_after``
    seconds, and a mailbox poller stops fetching until then.
    """

    def __init__(self, reason: str, *, status: int, retry_after: int) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class Admission(Protocol):
    """The intake's admission control, asked before an arrival is read.

    ``enter`` raises ``IntakeBusy`` (cheaply, from counters and a sampled backlog: no broker
    round trip per request) or takes an in-flight slot that ``leave`` gives back.
    """

    def enter(self) -> None: ...

    def leave(self) -> None: ...


@dataclass(frozen=True)
class Accepted:
    case_id: str
    message_id: str
    duplicate: bool
    stream_sequence: int
    received_at: str = ""
    """When the hub first accepted this message (ISO 8601); a duplicate keeps the
    original's time."""


class Publish(Protocol):
    """Store one raw arrival in ``INBOX``; returns after JetStream acknowledged it.

    An inbound adapter acknowledges its source (HTTP 2xx, XTA ``close``) only after this
    returned; if it raises, the source keeps the message. ``source_message_id`` names the
    message's identity when the adapter knows it better than the body does (the OZG
    transactionId); ``transport_id`` is the transport's id of this delivery (kept as a fact,
    never the dedupe key). It raises ``MessageTooLarge`` for a body over the limit unless
    ``too_large="quarantine"``, and ``IntakeUnavailable`` when a retry may succeed.
    """

    async def __call__(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
        transport_id: str | None = None,
        too_large: TooLarge = "refuse",
    ) -> Accepted: ...
