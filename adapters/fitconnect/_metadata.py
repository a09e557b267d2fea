"""The submission's metadata: parsed, validated against the published JSON Schema, and held
against what was actually submitted (the data's and each attachment's SHA-512).

The schema is FITKO's ``metadata.schema.v1.0.0.json``; the project ships no third-party
schema, so the adapter's settings name the file (the corpus has it). Every failure is a
:class:`~poststelle.adapters.fitconnect._set.Problem`, the reason a reject-submission gives.

The FIT-Connect reply channel (``replyChannel.fitConnect``: the process standards the sender
understands and the public key a reply is encrypted for) is what later metadata versions
define; 1.0.0's ``replyChannel`` lists other channels only but does not close the object, so
such metadata passes it unchecked. :data:`FITCONNECT_REPLY_CHANNEL_SCHEMA` checks it
whatever ``$schema`` the metadata declares (docs/fitconnect.md says what it rests on).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError

from poststelle.adapters.fitconnect._crypto import CryptoError, decrypt
from poststelle.adapters.fitconnect._set import Problem, ProblemsFound

__all__ = [
    "FITCONNECT_REPLY_CHANNEL_SCHEMA",
    "MAX_METADATA_BYTES",
    "MetadataRejected",
    "MetadataValidator",
    "check_content",
    "data_schema",
    "decrypt_content",
    "encryption_issue",
    "sha512_hex",
    "tags_mismatch",
]

# Metadata describes; it does not carry documents. A bound keeps a hostile one cheap to refuse.
MAX_METADATA_BYTES = 1024 * 1024
_MAX_DEPTH = 64

# ``replyChannel.fitConnect`` as the published documentation describes it (metadata 1.2.0's
# example): ``processStandards`` the sender takes answers in, ``encryptionPublicKey`` the
# JWK a reply is encrypted for. The key must be one FIT-Connect encrypts with: RSA for
# RSA-OAEP-256, a ``kid`` for the JWE header, public only, and a modulus of at least 683
# base64url characters (4096 bits, the Submission API's own bound).
FITCONNECT_REPLY_CHANNEL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["processStandards", "encryptionPublicKey"],
    "properties": {
        "processStandards": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 255},
        },
        "encryptionPublicKey": {
            "type": "object",
            "required": ["kty", "kid", "n", "e", "alg"],
            "properties": {
                "kty": {"const": "RSA"},
                "alg": {"const": "RSA-OAEP-256"},
                "kid": {"type": "string", "minLength": 1, "maxLength": 255},
                "n": {"type": "string", "minLength": 683, "maxLength": 2048},
                "e": {"type": "string", "minLength": 1, "maxLength": 16},
                "key_ops": {"type": "array", "contains": {"const": "wrapKey"}},
            },
            "not": {"anyOf": [{"required": [part]} for part in ("d", "p", "q", "dp", "dq", "qi")]},
        },
    },
}
_REPLY_CHANNEL_VALIDATOR = Draft202012Validator(FITCONNECT_REPLY_CHANNEL_SCHEMA)


class MetadataRejected(ProblemsFound):
    """The submission does not pass; ``problems`` say why, for the reject-submission."""

    @property
    def reason(self) -> str:
        return self.problems[0].type


def sha512_hex(content: bytes) -> str:
    return hashlib.sha512(content).hexdigest()


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


@functools.lru_cache(maxsize=8)
def _validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


class MetadataValidator:
    """Checks metadata against one schema file (compiled once per path)."""

    def __init__(self, schema: Path) -> None:
        try:
            self._validator = _validator(schema.resolve())
        except (OSError, ValueError, SchemaError) as exc:
            raise ValueError(f"metadata schema {schema}: {exc}") from exc

    def parse(self, raw: bytes) -> dict[str, Any]:
        """The metadata as a dict; ``MetadataRejected`` when it is no valid metadata."""
        if len(raw) > MAX_METADATA_BYTES:
            raise MetadataRejected(
                [_problem("syntax-violation", f"{len(raw)} bytes, at most {MAX_METADATA_BYTES}")]
            )
        try:
            metadata = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MetadataRejected([_problem("syntax-violation", f"not JSON: {exc}")]) from exc
        if not isinstance(metadata, dict) or _too_deep(metadata):
            raise MetadataRejected([_problem("syntax-violation", "not a JSON object")])
        errors = sorted(self._validator.iter_errors(metadata), key=lambda e: list(e.path))
        prefix: list[str | int] = []
        if not errors:
            channel = metadata.get("replyChannel")
            if isinstance(channel, dict) and "fitConnect" in channel:
                prefix = ["replyChannel", "fitConnect"]
                errors = sorted(
                    _REPLY_CHANNEL_VALIDATOR.iter_errors(channel["fitConnect"]),
                    key=lambda e: [str(p) for p in e.path],
                )
        if errors:
            raise MetadataRejected(
                [
                    _problem(
                        "schema-violation",
                        f"{'/'.join(str(p) for p in [*prefix, *e.absolute_path]) or '(root)'}: "
                        f"{_message(e)}",
                    )
                    for e in errors[:20]
                ]
            )
        return metadata


def _message(error: ValidationError) -> str:
    # jsonschema quotes the instance; a 4096-bit modulus is no help in a problem's detail.
    if len(error.message) <= 200:
        return str(error.message)
    rule = "/".join(str(part) for part in error.schema_path)
    return f"value fails the schema's {error.validator!r} ({rule})"


def data_schema(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """(schemaUri, mimeType) of the submission's data, when the metadata names one."""
    data = metadata.get("contentStructure", {}).get("data")
    if not isinstance(data, dict):
        return None
    schema = data.get("submissionSchema") or {}
    return str(schema.get("schemaUri", "")), str(schema.get("mimeType", "application/json"))


def check_content(
    metadata: Mapping[str, Any], data: bytes | None, attachments: Mapping[str, bytes]
) -> None:
    """The data and attachments are those the metadata describes, byte for byte (SHA-512);
    raises ``MetadataRejected`` listing every mismatch."""
    problems: list[Problem] = []
    structure = metadata.get("contentStructure", {})
    described = structure.get("data")
    if described is not None and data is None:
        problems.append(Problem("missing-data", "Fachdaten fehlen", "no data submitted", "data"))
    elif described is None and data is not None:
        problems.append(_problem("schema-violation", "data submitted, none described", "data"))
    elif (
        described is not None
        and data is not None
        and described["hash"]["content"] != (sha512_hex(data))
    ):
        problems.append(_hash_mismatch("data"))
    listed = {a["attachmentId"]: a for a in structure.get("attachments", [])}
    for attachment_id in sorted(set(listed) - set(attachments)):
        problems.append(
            Problem(
                "missing-attachments",
                "Anlagen fehlen",
                f"attachment {attachment_id} is described but was not submitted",
                f"attachment:{attachment_id}",
            )
        )
    for attachment_id in sorted(set(attachments) - set(listed)):
        problems.append(
            Problem(
                "attachments-mismatch",
                "Anlagen stimmen nicht",
                f"attachment {attachment_id} was submitted but is not described",
                f"attachment:{attachment_id}",
            )
        )
    for attachment_id in sorted(set(attachments) & set(listed)):
        if listed[attachment_id]["hash"]["content"] != sha512_hex(attachments[attachment_id]):
            problems.append(_hash_mismatch(f"attachment:{attachment_id}"))
    if problems:
        raise MetadataRejected(problems)


_TITLES = {
    "syntax-violation": "Syntax-Fehler",
    "schema-violation": "Schema-Fehler",
    "hash-mismatch": "Prüfsumme stimmt nicht",
}


def _problem(kind: str, detail: str, instance: str = "metadata") -> Problem:
    return Problem(kind, _TITLES.get(kind, kind), detail, instance)


def _hash_mismatch(instance: str) -> Problem:
    return _problem("hash-mismatch", "the SHA-512 in the metadata does not match", instance)


def encryption_issue(instance: str, exc: CryptoError) -> Problem:
    """The problem a JWE that does not open gives (``instance`` names which)."""
    return Problem("encryption-issue", "Entschlüsselungs-Fehler", str(exc), instance)


def tags_mismatch(instance: str) -> Problem:
    """The problem when the JWEs fetched are not those the ``submit-*`` SET signed."""
    return Problem(
        "incorrect-authentication-tags",
        "Authentication-Tags stimmen nicht",
        "the JWEs fetched are not those the Zustelldienst took",
        instance,
    )


def decrypt_content(
    encrypted_data: str | None, attachments: Mapping[str, str], key: Any
) -> tuple[bytes | None, dict[str, bytes], list[Problem]]:
    """Data (when there is any) and every attachment decrypted with ``key``, for a
    submission and a reply alike; a JWE that does not open is a problem, and the others are
    still tried so that every problem is named at once."""
    problems: list[Problem] = []
    data: bytes | None = None
    if encrypted_data:
        try:
            data = decrypt(encrypted_data, key, what="data")
        except CryptoError as exc:
            problems.append(encryption_issue("data", exc))
    opened: dict[str, bytes] = {}
    for attachment_id, token in attachments.items():
        try:
            opened[attachment_id] = decrypt(token, key, what=f"attachment {attachment_id}")
        except CryptoError as exc:
            problems.append(encryption_issue(f"attachment:{attachment_id}", exc))
    return data, opened, problems
