"""Claim check for message bodies: large bodies wait in the ``attachments`` object store and
the stream message carries only their reference.

NATS refuses any message above the server's ``max_payload`` (1 MiB by default, also in a
cluster), so a 40 MB XTA container could never enter ``INBOX`` as it is. The object store
chunks it (128 KiB per message) and the INBOX message carries ``H_BODY_REF``, ``H_BODY_SIZE``
and ``H_BODY_SHA256``. Names are content addressed (``messages/<sha256>``): a re-send of the
same bytes finds its object already stored and costs one metadata lookup, not a second upload.
QUARANTINE and DLQ copy the headers, not the bytes, so their records stay small too.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.contracts.envelope import H_BODY_REF, H_BODY_SHA256, H_BODY_SIZE
from poststelle.routing.streams.topology import ATTACHMENTS_BUCKET

__all__ = [
    "DEFAULT_CLAIM_CHECK_BYTES",
    "BodyMissing",
    "BodyRef",
    "body_ref_of",
    "load_body",
    "put_once",
    "read_object",
    "store_body",
]

# Seconds to read one object: a 40 MB body takes about one on a loaded machine.
_READ_TIMEOUT = 60.0
# Half the server's default max_payload: room for headers and for QUARANTINE's additions.
DEFAULT_CLAIM_CHECK_BYTES = 512 * 1024
_BODY_PREFIX = "messages/"
_REF_PREFIX = f"{ATTACHMENTS_BUCKET}/"


class BodyMissing(Exception):
    """The referenced object is gone or its bytes do not match: it cannot heal by retrying."""


@dataclass(frozen=True)
class BodyRef:
    ref: str  # ``attachments/messages/<sha256>``, the form AttachmentRef.ref uses
    size: int
    sha256: str

    def headers(self) -> dict[str, str]:
        return {H_BODY_REF: self.ref, H_BODY_SIZE: str(self.size), H_BODY_SHA256: self.sha256}


def body_ref_of(headers: Mapping[str, str] | None) -> BodyRef | None:
    """The claim check a stream message carries, or ``None`` when its data is the body."""
    headers = headers or {}
    ref = headers.get(H_BODY_REF)
    if not ref:
        return None
    size = headers.get(H_BODY_SIZE, "")
    return BodyRef(
        ref=ref, size=int(size) if size.isdigit() else -1, sha256=headers.get(H_BODY_SHA256, "")
    )


async def put_once(js: JetStreamContext, name: str, content: bytes) -> None:
    """Put ``content`` under its content-addressed ``name`` unless it is already there.

    Never replace an object that is there: a put replaces the chunks of the object it
    overwrites, so a reader in the middle of the old copy (a delivery writing a file drop's
    attachment while a re-sent application stores the same file) would find them gone.
    """
    store = await js.object_store(ATTACHMENTS_BUCKET)
    try:
        info = await store.get_info(name)
        if info.size == len(content):
            return
    except NotFoundError:
        pass
    await store.put(name, content)


async def store_body(js: JetStreamContext, raw: bytes) -> BodyRef:
    """Put ``raw`` under its content address unless an identical object is already there."""
    digest = hashlib.sha256(raw).hexdigest()
    name = _BODY_PREFIX + digest
    await put_once(js, name, raw)
    return BodyRef(ref=_REF_PREFIX + name, size=len(raw), sha256=digest)


async def read_object(js: JetStreamContext, ref: str) -> bytes:
    """The bytes behind an ``attachments/<name>`` reference.

    Raises ``BodyMissing`` when there is no such object (or the reference names another
    store); connection and timeout errors pass through, for the caller to retry later.
    """
    if not ref.startswith(_REF_PREFIX):
        raise BodyMissing(f"{ref!r} is not a reference into the {ATTACHMENTS_BUCKET} store")
    store = await js.object_store(ATTACHMENTS_BUCKET)
    # Into a buffer: nats-py would otherwise grow one bytes object chunk by chunk (quadratic).
    buffer = io.BytesIO()
    try:
        # nats-py waits for every chunk without end: chunks purged under a reader (an object
        # replaced, the bucket purged) would hang it, so the wait is bounded, and transient.
        async with asyncio.timeout(_READ_TIMEOUT):
            await store.get(ref[len(_REF_PREFIX) :], writeinto=buffer)
    except NotFoundError as exc:
        raise BodyMissing(f"object {ref} not found in the {ATTACHMENTS_BUCKET} store") from exc
    return buffer.getvalue()


async def load_body(js: JetStreamContext, body: BodyRef) -> bytes:
    """The claim-checked body, checked against the size and digest the intake recorded."""
    raw = await read_object(js, body.ref)
    if len(raw) != body.size or hashlib.sha256(raw).hexdigest() != body.sha256:
        raise BodyMissing(f"object {body.ref} does not match the recorded size and sha256")
    return raw
