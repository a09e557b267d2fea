"""Schema-valid messages whose mapped values the CaseEvent would refuse: they must still
become an event, or a precise refusal, never the core's ``unexpected`` quarantine (found by
``python -m fuzz``)."""

from __future__ import annotations

import re

import pytest

from poststelle.contracts.events import CaseEvent, Origin
from poststelle.contracts.inspection import MessageInspector, attachment_refs

from .conftest import MESSAGES

CASE_ID = "7d0c2b8e-0b6f-5a55-9f5e-2f1d7c1a0e11"
ORIGIN = Origin(channel="xta", adapter="xta", source_message_id="m-1")
_HASH = re.compile(rb'hashValue="([0-9a-f]{64})"')


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("upper", "lower"),  # the same digest in capitals: kept, in the CaseEvent's form
        ("63 digits", None),  # a typo: the reference stays, the unusable hash is left out
        ("sha-512", None),
    ],
)
def test_a_references_own_hash_is_kept_only_as_a_sha256_digest(
    inspector: MessageInspector, written: str, kept: str | None
) -> None:
    raw = (MESSAGES / "xbau-antrag-0200-5k.xml").read_bytes()
    match = _HASH.search(raw)
    assert match is not None
    digest = match.group(1)
    replacement = {
        "upper": digest.upper(),
        "63 digits": digest[:-1],
        "sha-512": digest * 2,
    }[written]
    inspected = inspector.inspect(raw.replace(digest, replacement))
    refs = attachment_refs(CASE_ID, inspected.attachments)
    hashes = [ref.sha256 for ref in refs if ref.kind == "reference"]
    assert hashes == [digest.decode() if kept else None]
    data = inspected.case_event_data(
        case_id=CASE_ID, origin=ORIGIN, tenant="kiel", backend="bauamt", attachments=refs
    )
    assert CaseEvent.received(data).model_dump_json()
