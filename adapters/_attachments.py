"""Claim check of the files an arrival brings beside its message (OZG file parts, FIT-Connect
and XTA attachments): each goes into the hub's ``attachments`` object store *before* the
message is published, and the message carries their ``AttachmentRef``s in ``H_ATTACHMENTS``.

Stored first, so a crash in between leaves at most unreferenced objects, never a case
pointing at missing bytes; the source keeps the message and sends it again. Object names are
content addressed per case (``<case-id>/<sha256>``) and the store skips what it holds
already, so a re-sent message costs no second copy and gets the same references.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from poststelle.contracts.envelope import H_ATTACHMENTS
from poststelle.contracts.events import AttachmentRef
from poststelle.contracts.inspection import attachment_object_name, claim_check_ref

__all__ = [
    "InboundFile",
    "NoAttachmentStore",
    "StoreAttachment",
    "attachments_header",
    "claim_check",
]

# Supplied by the hub (``context.extras["store_attachment"]``): put one object, by name.
StoreAttachment = Callable[[str, bytes], Awaitable[None]]


class NoAttachmentStore(RuntimeError):
    """Files arrived, but the hub lent the adapter no store to keep them in."""


@dataclass(frozen=True, slots=True)
class InboundFile:
    name: str
    media_type: str
    content: bytes


async def claim_check(
    case_id: str, files: Iterable[InboundFile], store: StoreAttachment | None
) -> list[AttachmentRef]:
    """Store every file of case ``case_id`` and return their references, in order.

    Raises ``NoAttachmentStore`` when there are files and no store; whatever ``store`` raises
    passes through (nothing is published then, so the source keeps the message).
    """
    refs: list[AttachmentRef] = []
    for file in files:
        if store is None:
            raise NoAttachmentStore("the hub lends no attachment store: attachments cannot be kept")
        ref = claim_check_ref(case_id, file.name, file.media_type, file.content)
        assert ref.sha256 is not None
        await store(attachment_object_name(case_id, ref.sha256), file.content)
        refs.append(ref)
    return refs


def attachments_header(refs: Sequence[AttachmentRef]) -> dict[str, str]:
    """The header that hands ``refs`` to the routing core, which puts them into the CaseEvent."""
    return {H_ATTACHMENTS: json.dumps([ref.model_dump(mode="json") for ref in refs])}
