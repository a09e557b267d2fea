"""Security Event Tokens (RFC 8417) of the FIT-Connect event log.

Every step of a submission is a SET in its case's event log: the Zustelldienst writes
``submit-submission`` (with the authentication tags of the JWEs it took), the destination
answers ``accept-submission`` (the tags it decrypted) or ``reject-submission`` (with
problems). A SET is a JWS (PS512, ``typ`` ``secevent+jwt``) whose payload names the
submission in ``sub`` (``submission:<uuid>``), the case in ``txn`` (``case:<uuid>``) and
exactly one event under ``events``.

A reply (Rückkanal FIT-Connect) travels the other way in the same case and has the same
three steps, ``submit-reply``, ``accept-reply`` and ``reject-reply``; its SETs name it in
``sub`` as ``reply:<uuid>``, which the SET payload schema allows from version 1.2 on
(``1.0.x`` knows ``submission:`` only), so they declare that schema.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    authentication_tag,
    protected_header,
    sign,
    verify,
)

__all__ = [
    "ACCEPT_REPLY",
    "ACCEPT_SUBMISSION",
    "EVENT_PREFIX",
    "PROBLEM_PREFIX",
    "REJECT_REPLY",
    "REJECT_SUBMISSION",
    "REPLY_EVENTS",
    "SET_SCHEMA",
    "SET_SCHEMA_REPLIES",
    "SUBMIT_REPLY",
    "SUBMIT_SUBMISSION",
    "AuthenticationTags",
    "Problem",
    "ProblemsFound",
    "SecurityEvent",
    "read_event",
    "read_reported_event",
    "security_event",
]

SET_SCHEMA = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"
# The first version whose ``sub`` may name a reply (``^(submission|reply):<uuid>$``).
SET_SCHEMA_REPLIES = "https://schema.fitko.de/fit-connect/set-payload/1.2.2/set-payload.schema.json"
EVENT_PREFIX = "https://schema.fitko.de/fit-connect/events/"
SUBMIT_SUBMISSION = EVENT_PREFIX + "submit-submission"
ACCEPT_SUBMISSION = EVENT_PREFIX + "accept-submission"
REJECT_SUBMISSION = EVENT_PREFIX + "reject-submission"
SUBMIT_REPLY = EVENT_PREFIX + "submit-reply"
ACCEPT_REPLY = EVENT_PREFIX + "accept-reply"
REJECT_REPLY = EVENT_PREFIX + "reject-reply"
REPLY_EVENTS = frozenset({SUBMIT_REPLY, ACCEPT_REPLY, REJECT_REPLY})
PROBLEM_PREFIX = EVENT_PREFIX + "problems/"
_KNOWN_EVENTS = frozenset({SUBMIT_SUBMISSION, ACCEPT_SUBMISSION, REJECT_SUBMISSION}) | REPLY_EVENTS
_TYP = "secevent+jwt"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a destination rejects a submission. ``type`` is the short name
    (``encryption-issue``, ``schema-violation``, ``hash-mismatch``, ...); ``instance`` says
    what it concerns (``metadata``, ``data``, ``attachment:<id>``)."""

    type: str
    title: str
    detail: str
    instance: str

    def as_json(self) -> dict[str, str]:
        return {
            "type": PROBLEM_PREFIX + self.type,
            "title": self.title,
            "detail": self.detail,
            "instance": self.instance,
        }


class ProblemsFound(ValueError):
    """What does not pass, with the ``problems`` a ``reject-*`` SET gives; the message
    names each of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.type} ({p.instance}): {p.detail}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AuthenticationTags:
    """The tags of a submission's JWEs: metadata, data and each attachment by id."""

    metadata: str
    data: str | None = None
    attachments: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        tags: dict[str, Any] = {"metadata": self.metadata}
        if self.data is not None:
            tags["data"] = self.data
        if self.attachments:
            tags["attachments"] = dict(self.attachments)
        return tags

    @classmethod
    def of(
        cls, metadata: str, data: str | None, attachments: Mapping[str, str]
    ) -> AuthenticationTags:
        """The tags of these JWEs (``CryptoError`` when one is no JWE): what both sides of a
        submission or a reply compare with the ``submit-*`` SET."""
        return cls(
            metadata=authentication_tag(metadata),
            data=authentication_tag(data) if data else None,
            attachments={k: authentication_tag(v) for k, v in attachments.items()},
        )

    @classmethod
    def from_json(cls, value: Any) -> AuthenticationTags:
        if not isinstance(value, dict) or not isinstance(value.get("metadata"), str):
            raise CryptoError("authenticationTags: no metadata tag")
        attachments = value.get("attachments") or {}
        data = value.get("data")
        if not isinstance(attachments, dict) or not (data is None or isinstance(data, str)):
            raise CryptoError("authenticationTags: malformed")
        return cls(value["metadata"], data, {str(k): str(v) for k, v in attachments.items()})


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A verified SET: who issued which event about which submission or reply (``subject``)
    of which case."""

    event: str
    issuer: str
    subject: str
    subject_id: str
    case_id: str
    issued_at: int
    jti: str
    body: dict[str, Any]
    token: str

    @property
    def name(self) -> str:
        return self.event.removeprefix(EVENT_PREFIX)

    @property
    def submission_id(self) -> str:
        """The submission the SET is about; empty for a reply's SET."""
        return self.subject_id if self.subject == "submission" else ""

    @property
    def reply_id(self) -> str:
        """The reply the SET is about; empty for a submission's SET."""
        return self.subject_id if self.subject == "reply" else ""

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.body.get("problems") or [])

    def tags(self) -> AuthenticationTags:
        return AuthenticationTags.from_json(self.body.get("authenticationTags"))


def security_event(
    event: str,
    *,
    issuer: str,
    case_id: str,
    key: Any,
    submission_id: str | None = None,
    reply_id: str | None = None,
    tags: AuthenticationTags | None = None,
    problems: Sequence[Problem] = (),
) -> str:
    """A signed SET for ``event`` (one of the event URIs above) about ``submission_id``, or
    about ``reply_id`` for a reply's event."""
    if event not in _KNOWN_EVENTS:
        raise ValueError(f"unknown FIT-Connect event {event!r}")
    replying = event in REPLY_EVENTS
    subject_id = reply_id if replying else submission_id
    if not subject_id or (reply_id if not replying else submission_id):
        raise ValueError(
            f"{event} is about a {'reply' if replying else 'submission'}: "
            f"pass {'reply_id' if replying else 'submission_id'} alone"
        )
    body: dict[str, Any] = {}
    if tags is not None:
        body["authenticationTags"] = tags.as_json()
    if problems:
        body["problems"] = [p.as_json() for p in problems]
    payload = {
        "$schema": SET_SCHEMA_REPLIES if replying else SET_SCHEMA,
        "jti": str(uuid.uuid4()),
        "iss": issuer,
        "iat": int(time.time()),
        "sub": f"{'reply' if replying else 'submission'}:{subject_id}",
        "txn": f"case:{case_id}",
        "events": {event: body},
    }
    return sign(payload, key, typ=_TYP)


def _uuid_claim(payload: dict[str, Any], claim: str, *prefixes: str) -> tuple[str, str]:
    """(prefix without its colon, UUID) of a ``<prefix><uuid>`` claim."""
    value = payload.get(claim)
    prefix = next((p for p in prefixes if isinstance(value, str) and value.startswith(p)), None)
    if prefix is None or not isinstance(value, str):
        raise CryptoError(f"SET: {claim} must be {'|'.join(prefixes)}<uuid>, is {value!r}")
    try:
        return prefix.rstrip(":"), str(uuid.UUID(value.removeprefix(prefix)))
    except ValueError as exc:
        raise CryptoError(f"SET: {claim} holds no UUID: {value!r}") from exc


def read_event(token: str, keys: Mapping[str, Any]) -> SecurityEvent:
    """Verify a SET against ``keys`` (kid -> public JWK) and read it; ``CryptoError`` when
    the signature, the header or a claim is not as the specification has it."""
    header, payload = verify(token, dict(keys))
    return _event(token, header, payload)


def read_reported_event(token: str) -> SecurityEvent:
    """Read a SET *without* verifying its signature: for a sender's accept-reply or
    reject-reply, whose key the destination has no way to learn (the Zustelldienst verified
    it when it took it). Header and claims are checked as ``read_event`` checks them."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise CryptoError("SET: not a JWS in compact serialisation")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except ValueError as exc:
        raise CryptoError("SET: the payload is no base64url JSON") from exc
    if not isinstance(payload, dict):
        raise CryptoError("SET: the payload is no JSON object")
    return _event(token, protected_header(token, "SET"), payload)


def _event(token: str, header: dict[str, Any], payload: dict[str, Any]) -> SecurityEvent:
    if header.get("typ") != _TYP:
        raise CryptoError(f"SET: typ {header.get('typ')!r}, expected {_TYP}")
    events = payload.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise CryptoError("SET: events must hold exactly one event")
    [(event, body)] = events.items()
    if not isinstance(body, dict):
        raise CryptoError("SET: the event's body is no object")
    issuer, jti, issued_at = payload.get("iss"), payload.get("jti"), payload.get("iat")
    if not isinstance(issuer, str) or not isinstance(jti, str) or not isinstance(issued_at, int):
        raise CryptoError("SET: iss, jti and iat are required")
    subject, subject_id = _uuid_claim(payload, "sub", "submission:", "reply:")
    if (subject == "reply") != (event in REPLY_EVENTS):
        raise CryptoError(f"SET: {event} cannot be about a {subject}")
    return SecurityEvent(
        event=str(event),
        issuer=issuer,
        subject=subject,
        subject_id=subject_id,
        case_id=_uuid_claim(payload, "txn", "case:")[1],
        issued_at=issued_at,
        jti=jti,
        body=body,
        token=token,
    )
