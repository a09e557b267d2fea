"""A case's original message, found again by the reference its CaseEvent carries.

The routing core keeps the reference in the case record (``original``): ``stream:INBOX/<seq>``
for a body that travelled in ``INBOX`` itself, ``attachments/messages/<sha256>`` for a
claim-checked one. Only an answer that carries the original (XBau 1100 Rückweisung) loads it,
so the reply path passes an ``OriginalLoader`` and the bytes are read when, and only when,
they are needed. ``INBOX`` keeps arrivals for a bounded time: a reference into it can outlive
the message, and then the original is gone (``OriginalGone``), which no retry heals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.routing.streams.claim_check import BodyMissing, read_object
from poststelle.routing.streams.topology import INBOX

__all__ = ["OriginalGone", "OriginalLoader", "load_original", "original_loader", "stream_ref"]

# Loads the original of a case record's ``original`` entry (ref, sha256, size).
OriginalLoader = Callable[[dict[str, Any]], Awaitable[bytes]]

_STREAM_PREFIX = f"stream:{INBOX}/"


class OriginalGone(LookupError):
    """The original is no longer stored (aged out of ``INBOX``, object deleted) or altered."""


def stream_ref(sequence: int) -> str:
    """The reference of a body kept in ``INBOX`` at ``sequence``."""
    return f"{_STREAM_PREFIX}{sequence}"


async def load_original(js: JetStreamContext, original: dict[str, Any]) -> bytes:
    """The original's bytes, checked against the digest recorded when it was routed.

    Raises ``OriginalGone`` when it cannot be had any more; connection and timeout errors
    pass through, for the caller to retry later.
    """
    ref = str(original.get("ref") or "")
    if ref.startswith(_STREAM_PREFIX):
        sequence = ref[len(_STREAM_PREFIX) :]
        if not sequence.isdigit():
            raise OriginalGone(f"{ref!r} names no {INBOX} sequence")
        try:
            stored = await js.get_msg(INBOX, int(sequence))
        except NotFoundError as exc:
            raise OriginalGone(f"the original ({ref}) is no longer in {INBOX}") from exc
        raw = stored.data or b""
    else:
        try:
            raw = await read_object(js, ref)
        except BodyMissing as exc:
            raise OriginalGone(f"the original is gone: {exc}") from exc
    expected = original.get("sha256")
    if expected and hashlib.sha256(raw).hexdigest() != expected:
        raise OriginalGone(f"the original at {ref} does not match its recorded sha256")
    return raw


def original_loader(js: JetStreamContext) -> OriginalLoader:
    async def load(original: dict[str, Any]) -> bytes:
        return await load_original(js, original)

    return load
