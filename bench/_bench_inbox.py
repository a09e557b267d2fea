"""Arrivals in ``INBOX`` as the intake stores them, for the benches that start at the core.

from _bench_inbox import INBOX_SUBJECT, inbox_headers, preload_inbox, with_source
"""

from __future__ import annotations

import asyncio
import re
import uuid

from nats.js import JetStreamContext

from poststelle.contracts.envelope import (
    H_ADAPTER,
    H_CASE_ID,
    H_CHANNEL,
    H_CONTENT_TYPE,
    H_MSG_ID,
    H_SOURCE_ID,
)
from poststelle.contracts.events import deterministic_case_id

__all__ = ["INBOX_SUBJECT", "inbox_headers", "preload_inbox", "with_source"]

INBOX_SUBJECT = "inbox.portal.bench"
_UUID = re.compile(rb"(<nachrichtenUUID>)[^<]+(</nachrichtenUUID>)")


def with_source(template: bytes) -> tuple[bytes, str]:
    """The message with a fresh nachrichtenUUID, and that UUID (its source message id)."""
    source = str(uuid.uuid4())
    body, found = _UUID.subn(rb"\g<1>" + source.encode() + rb"\g<2>", template)
    if found != 1:
        raise SystemExit("the bench message must carry one nachrichtenUUID")
    return body, source


def inbox_headers(source: str) -> dict[str, str]:
    """The headers the HTTP intake gives an arrival whose source message id is ``source``."""
    return {
        H_MSG_ID: f"portal:{source}",
        H_CHANNEL: "portal",
        H_ADAPTER: "bench",
        H_SOURCE_ID: source,
        H_CASE_ID: deterministic_case_id("portal", source),
        H_CONTENT_TYPE: "application/xml",
    }


async def preload_inbox(js: JetStreamContext, messages: list[tuple[bytes, str]]) -> None:
    """Arrivals as the intake stores them (same headers), but published asynchronously."""
    pending = [
        await js.publish_async(INBOX_SUBJECT, body, headers=inbox_headers(source))
        for body, source in messages
    ]
    await asyncio.gather(*pending)
