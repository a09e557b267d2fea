"""Replies in a FIT-Connect case (Rückkanal FIT-Connect), both sides of them.

A sender that wants its answer over FIT-Connect says so in the submission's metadata:
``replyChannel.fitConnect`` names the process standards it takes answers in and the public
key (``encryptionPublicKey``, a JWK) the answer is encrypted for. The destination then answers
*in the same case* through the Submission API's reply resources: announce a reply for the
case, upload every attachment encrypted for that key, submit the encrypted metadata and data.
The Zustelldienst writes ``submit-reply`` into the case's event log; the sender fetches the
reply, checks it as a destination checks a submission, and answers ``accept-reply`` or
``reject-reply``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from poststelle.adapters.fitconnect._client import FitConnectClient
from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    decrypt,
    load_key,
)
from poststelle.adapters.fitconnect._metadata import (
    MetadataRejected,
    check_content,
    decrypt_content,
    encryption_issue,
    tags_mismatch,
)
from poststelle.adapters.fitconnect._sender import (
    OutgoingAttachment,
    build_metadata,
    encrypt_and_submit,
)
from poststelle.adapters.fitconnect._set import (
    SUBMIT_REPLY,
    AuthenticationTags,
    Problem,
    ProblemsFound,
    read_event,
)

__all__ = [
    "FITCONNECT_REPLY_CHANNEL",
    "ReceivedReply",
    "ReplyRefused",
    "SentReply",
    "receive_reply",
    "reply_encryption_key",
    "send_reply",
]

# The key of the FIT-Connect reply channel in the metadata's ``replyChannel``.
FITCONNECT_REPLY_CHANNEL = "fitConnect"


@dataclass(frozen=True, slots=True)
class SentReply:
    reply_id: str
    case_id: str
    tags: AuthenticationTags
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReceivedReply:
    """A reply as the sender opened it: checked against the ``submit-reply`` of the case's
    event log and against the hashes its metadata gives."""

    reply_id: str
    case_id: str
    metadata: dict[str, Any]
    data: bytes | None
    attachments: dict[str, bytes]
    tags: AuthenticationTags


class ReplyRefused(ProblemsFound):
    """The reply does not pass; ``problems`` are what a ``reject-reply`` gives."""


def reply_encryption_key(reply_channel: Mapping[str, Any]) -> Any:
    """The sender's key from ``replyChannel.fitConnect.encryptionPublicKey``; ``CryptoError``
    when the channel offers none or the key is no RSA-OAEP-256 key FIT-Connect accepts."""
    offered = reply_channel.get(FITCONNECT_REPLY_CHANNEL)
    jwk = offered.get("encryptionPublicKey") if isinstance(offered, Mapping) else None
    if not isinstance(jwk, Mapping):
        raise CryptoError("replyChannel.fitConnect offers no encryptionPublicKey")
    if jwk.get("alg") not in (None, "RSA-OAEP-256"):
        raise CryptoError(f"reply encryption key: alg {jwk.get('alg')!r}, not RSA-OAEP-256")
    return load_key(dict(jwk), private=False, purpose="reply encryption")


async def send_reply(
    client: FitConnectClient,
    case_id: str,
    key: Any,
    *,
    service: Mapping[str, str],
    data: bytes | None,
    schema_uri: str,
    mime_type: str = "application/json",
    attachments: Sequence[OutgoingAttachment] = (),
    reply_id: str | None = None,
    on_announced: Callable[[str], Awaitable[None]] | None = None,
) -> SentReply:
    """The destination's answer in ``case_id``, encrypted for ``key`` (the sender's).

    Not twice: ``on_announced`` is awaited with the new reply's id before anything is
    uploaded (keep it), and an attempt after a crash passes it back as ``reply_id`` to finish
    that reply instead of announcing another; the API answers ``409`` if it was submitted.
    """
    metadata = build_metadata(
        service=service,
        data=data,
        schema_uri=schema_uri,
        mime_type=mime_type,
        attachments=attachments,
    )
    if reply_id is None:
        announced = await client.announce_reply(case_id, [a.attachment_id for a in attachments])
        reply_id = str(announced["replyId"])
        if on_announced is not None:
            await on_announced(reply_id)
    sent_id = reply_id
    tags = await encrypt_and_submit(
        key,
        metadata=metadata,
        data=data,
        mime_type=mime_type,
        attachments=attachments,
        upload=lambda attachment_id, token: client.upload_reply_attachment(
            sent_id, attachment_id, token
        ),
        submit=lambda meta, payload: client.submit_reply(sent_id, meta, payload),
    )
    return SentReply(reply_id=reply_id, case_id=case_id, tags=tags, metadata=metadata)


async def receive_reply(
    client: FitConnectClient, reply_id: str, key: Any, *, service_keys: Mapping[str, Any]
) -> ReceivedReply:
    """What a sender does with a reply: fetch it and its attachments, find the
    Zustelldienst's ``submit-reply`` for it (verified with ``service_keys``) naming the very
    JWEs fetched, decrypt with ``key`` and check every SHA-512. ``ReplyRefused`` with the
    problems found otherwise."""
    fetched = await client.reply(reply_id)
    case_id = str(fetched["caseId"])
    tokens = {
        str(a): await client.reply_attachment(reply_id, str(a))
        for a in fetched.get("attachments") or []
    }
    encrypted_metadata = str(fetched.get("encryptedMetadata") or "")
    encrypted_data = fetched.get("encryptedData")
    try:
        tags = AuthenticationTags.of(
            encrypted_metadata, str(encrypted_data) if encrypted_data else None, tokens
        )
    except CryptoError as exc:
        raise ReplyRefused([encryption_issue("reply", exc)]) from exc
    signed: AuthenticationTags | None = None
    for token in await client.reply_events(reply_id):
        try:
            event = read_event(token, service_keys)
        except CryptoError:
            continue  # the sender's own accept/reject, or not the service's: not the proof
        if event.event == SUBMIT_REPLY and event.reply_id == reply_id:
            signed = event.tags()
    if signed is None:
        raise ReplyRefused(
            [Problem("invalid-event-log", "Ereignisprotokoll", "no submit-reply", "log")]
        )
    if signed != tags:
        raise ReplyRefused([tags_mismatch("reply")])
    try:
        metadata = json.loads(decrypt(encrypted_metadata, key, what="metadata"))
    except CryptoError as exc:
        raise ReplyRefused([encryption_issue("metadata", exc)]) from exc
    except ValueError as exc:
        raise ReplyRefused(
            [Problem("syntax-violation", "Syntax-Fehler", f"not JSON: {exc}", "metadata")]
        ) from exc
    data, attachments, problems = decrypt_content(
        str(encrypted_data) if encrypted_data else None, tokens, key
    )
    if problems:
        raise ReplyRefused(problems)
    if not isinstance(metadata, dict):
        raise ReplyRefused(
            [Problem("syntax-violation", "Syntax-Fehler", "not a JSON object", "metadata")]
        )
    try:
        check_content(metadata, data, attachments)
    except MetadataRejected as exc:
        raise ReplyRefused(exc.problems) from exc
    except (KeyError, TypeError) as exc:
        raise ReplyRefused(
            [Problem("schema-violation", "Schema-Fehler", f"contentStructure: {exc!r}", "metadata")]
        ) from exc
    return ReceivedReply(reply_id, case_id, metadata, data, attachments, tags)
