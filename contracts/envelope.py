"""What travels with a message on the hub's streams: header names and subject builders.

Subjects are built only from tokens the hub controls (slugs, registry names, UUIDs); any
other text is reduced to a safe token first, because a ``.`` or ``*`` from a sender would
otherwise change which consumers see the message.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "H_ADAPTER",
    "H_ATTACHMENTS",
    "H_BODY_REF",
    "H_BODY_SHA256",
    "H_BODY_SIZE",
    "H_CASE_ID",
    "H_CHANNEL",
    "H_CONTENT_TYPE",
    "H_DETAIL",
    "H_MSG_ID",
    "H_ORIGINAL_SUBJECT",
    "H_ORIGIN_STATE",
    "H_PORTAL",
    "H_REASON",
    "H_RECEIVED_AT",
    "H_REFUSED",
    "H_REPLY_ROUTE",
    "H_SOURCE_ID",
    "H_STEP",
    "H_TRANSPORT_ID",
    "audit_subject",
    "case_subject",
    "dead_letter_id",
    "dlq_subject",
    "inbox_subject",
    "quarantine_subject",
    "safe_token",
]

H_MSG_ID = "Nats-Msg-Id"
H_CHANNEL = "Poststelle-Channel"
H_ADAPTER = "Poststelle-Adapter"
H_SOURCE_ID = "Poststelle-Source-Id"
H_CASE_ID = "Poststelle-Case-Id"
H_CONTENT_TYPE = "Content-Type"
H_RECEIVED_AT = "Poststelle-Received-At"
H_STEP = "Poststelle-Step"
H_REASON = "Poststelle-Reason"
H_DETAIL = "Poststelle-Detail"
# JSON object ``{"step", "reason", "detail"}``: the inbound adapter refused the arrival after
# storing it (a FIT-Connect submission it cannot decrypt or whose metadata is invalid); the
# routing core quarantines it under that step and reason instead of inspecting it.
H_REFUSED = "Poststelle-Refused"
# JSON object: how the origin's adapter answers (e.g. XTA sender and mailbox).
H_REPLY_ROUTE = "Poststelle-Reply-Route"
# Where a dead-lettered message was published: a replay sends it there again.
H_ORIGINAL_SUBJECT = "Poststelle-Original-Subject"
# JSON list of AttachmentRef: parts an intake already claim-checked (multipart uploads).
H_ATTACHMENTS = "Poststelle-Attachments"
# The configured name of the portal whose key submitted the message (API keys on).
H_PORTAL = "Poststelle-Portal"
# Claim check of a body too large for a stream message: ``attachments/<object name>``, its
# size in bytes and sha256 (hex); the message's own data is then empty.
H_BODY_REF = "Poststelle-Body-Ref"
H_BODY_SIZE = "Poststelle-Body-Size"
H_BODY_SHA256 = "Poststelle-Body-Sha256"
# The state hub a federated case came from: a claim-checked body is read from its store.
H_ORIGIN_STATE = "Poststelle-Origin-State"
# The id the transport gave this delivery (XTA MessageID, HTTP Idempotency-Key): a fact for
# the audit trail, not the dedupe key (that is the message's own identity).
H_TRANSPORT_ID = "Poststelle-Transport-Id"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_token(text: str) -> str:
    """One subject token: letters, digits, ``_`` and ``-`` only, never empty."""
    return _UNSAFE.sub("_", text)[:128] or "_"


def inbox_subject(channel: str, adapter: str) -> str:
    return f"inbox.{safe_token(channel)}.{safe_token(adapter)}"


# One subject per routing target and message type, a few hundred at most: the routing core
# asks for it per message, and three regex substitutions each time showed in its profile.
@functools.lru_cache(maxsize=1024)
def case_subject(tenant: str, backend: str, message_type: str) -> str:
    return f"case.{safe_token(tenant)}.{safe_token(backend)}.{safe_token(message_type)}"


def quarantine_subject(step: str, reason: str) -> str:
    return f"quarantine.{safe_token(step)}.{safe_token(reason)}"


def audit_subject(case_id: str) -> str:
    return f"audit.{safe_token(case_id)}"


def dlq_subject(consumer: str) -> str:
    return f"dlq.{safe_token(consumer)}"


def dead_letter_id(consumer: str, stream_sequence: int) -> str:
    """One DLQ record per consumer and original message, whoever notices the failure first."""
    return f"dlq:{consumer}:{stream_sequence}"
