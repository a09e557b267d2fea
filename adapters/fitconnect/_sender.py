"""The sender's flow of the specification, as an online service (a portal) runs it.

Look up the destination and its encryption key, check the key, describe data and attachments
in the metadata (SHA-512 of each plaintext), announce the submission, encrypt and upload every
attachment, encrypt metadata and data and submit. Poststelle uses it for the simulator's
demo, for replies to a FIT-Connect case, and its tests send as a real sender would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from poststelle.adapters.fitconnect._client import FitConnectClient
from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    encrypt,
    load_key,
)
from poststelle.adapters.fitconnect._metadata import sha512_hex
from poststelle.adapters.fitconnect._set import AuthenticationTags

__all__ = [
    "METADATA_SCHEMA_URI",
    "OutgoingAttachment",
    "SentSubmission",
    "build_metadata",
    "encrypt_and_submit",
    "send_submission",
]

METADATA_SCHEMA_URI = "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json"


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    content: bytes
    mime_type: str = "application/pdf"
    filename: str | None = None
    purpose: str = "attachment"
    attachment_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "attachmentId": self.attachment_id,
            "hash": {"type": "sha512", "content": sha512_hex(self.content)},
            "mimeType": self.mime_type,
            "purpose": self.purpose,
        }
        if self.filename:
            described["filename"] = self.filename
        return described


@dataclass(frozen=True, slots=True)
class SentSubmission:
    submission_id: str
    case_id: str
    destination_id: str
    tags: AuthenticationTags
    metadata: dict[str, Any]


def build_metadata(
    *,
    service: Mapping[str, str],
    data: bytes | None,
    schema_uri: str,
    mime_type: str,
    attachments: Sequence[OutgoingAttachment],
    reply_channel: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    structure: dict[str, Any] = {"attachments": [a.describe() for a in attachments]}
    if data is not None:
        structure["data"] = {
            "hash": {"type": "sha512", "content": sha512_hex(data)},
            "submissionSchema": {"schemaUri": schema_uri, "mimeType": mime_type},
        }
    metadata: dict[str, Any] = {
        "$schema": METADATA_SCHEMA_URI,
        "contentStructure": structure,
        "publicServiceType": dict(service),
    }
    if reply_channel:
        metadata["replyChannel"] = dict(reply_channel)
    metadata.update(extra or {})
    return metadata


async def encrypt_and_submit(
    key: Any,
    *,
    metadata: Mapping[str, Any],
    data: bytes | None,
    mime_type: str,
    attachments: Sequence[OutgoingAttachment],
    upload: Callable[[str, str], Awaitable[object]],
    submit: Callable[[str, str | None], Awaitable[object]],
) -> AuthenticationTags:
    """Encrypt every attachment for ``key`` and ``upload`` it (attachment id, JWE), then
    encrypt metadata and data and ``submit`` them: the same steps for a submission and for a
    reply, whose resources differ only in their paths. The tags are what the Zustelldienst
    will sign, so the caller can compare them with its event log."""
    uploaded: dict[str, str] = {}
    for attachment in attachments:
        token = encrypt(attachment.content, key, content_type=attachment.mime_type)
        await upload(attachment.attachment_id, token)
        uploaded[attachment.attachment_id] = token
    encrypted_metadata = encrypt(
        json.dumps(metadata).encode(), key, content_type="application/json"
    )
    encrypted_data = encrypt(data, key, content_type=mime_type) if data is not None else None
    await submit(encrypted_metadata, encrypted_data)
    return AuthenticationTags.of(encrypted_metadata, encrypted_data, uploaded)


async def _encryption_key(client: FitConnectClient, destination_id: str) -> Any:
    destination = await client.destination(destination_id)
    kid = destination.get("encryptionKid")
    if not kid:
        raise CryptoError(f"destination {destination_id} names no encryptionKid")
    published = await client.destination_key(destination_id, str(kid))
    if "wrapKey" not in published.get("key_ops", []):
        raise CryptoError(f"key {kid} of destination {destination_id} is not for wrapKey")
    return load_key(published, private=False, purpose="destination encryption")


async def send_submission(
    client: FitConnectClient,
    destination_id: str,
    *,
    service: Mapping[str, str],
    data: bytes | None,
    schema_uri: str,
    mime_type: str = "application/json",
    attachments: Sequence[OutgoingAttachment] = (),
    reply_channel: Mapping[str, Any] | None = None,
    case_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    submission_id: str | None = None,
    on_announced: Callable[[str], Awaitable[None]] | None = None,
) -> SentSubmission:
    """Send one submission; ``metadata`` replaces the one built from the arguments (tests
    use it to send what a careless sender would).

    For a sender that must not send twice: ``on_announced`` is awaited with the new
    submission's id before anything is uploaded (keep it), and an attempt after a crash
    passes it back as ``submission_id`` (with the ``case_id``) to finish that submission
    instead of announcing another; the API answers ``409`` if it was submitted already.
    """
    key = await _encryption_key(client, destination_id)
    if metadata is None:
        metadata = build_metadata(
            service=service,
            data=data,
            schema_uri=schema_uri,
            mime_type=mime_type,
            attachments=attachments,
            reply_channel=reply_channel,
        )
    if submission_id is None:
        announced = await client.announce(
            destination_id,
            dict(service),
            [a.attachment_id for a in attachments],
            case_id=case_id,
        )
        submission_id, case_id = str(announced["submissionId"]), str(announced["caseId"])
        if on_announced is not None:
            await on_announced(submission_id)
    elif case_id is None:
        raise ValueError("a resumed submission needs its case_id")
    sent_id = submission_id
    tags = await encrypt_and_submit(
        key,
        metadata=metadata,
        data=data,
        mime_type=mime_type,
        attachments=attachments,
        upload=lambda attachment_id, token: client.upload_attachment(sent_id, attachment_id, token),
        submit=lambda meta, payload: client.submit(sent_id, meta, payload),
    )
    return SentSubmission(
        submission_id=submission_id,
        case_id=case_id,
        destination_id=destination_id,
        tags=tags,
        metadata=metadata,
    )
