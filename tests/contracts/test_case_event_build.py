"""The CaseEvent is validated in one pass per part instead of one model per nested value: its
JSON is byte for byte what the model-by-model build gave, and bad mapped values are still
refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from poststelle.contracts.events import (
    Applicant,
    AttachmentRef,
    Authority,
    CaseEvent,
    CaseEventData,
    Origin,
)
from poststelle.contracts.inspection import (
    InspectedMessage,
    MessageInspector,
    attachment_refs,
)
from poststelle.mappings.engine import Attachment

from ..messages import xbau_antrag_with_files
from .conftest import EXAMPLE_0200, MESSAGES

CASE_ID = "7d0c2b8e-0b6f-5a55-9f5e-2f1d7c1a0e11"
TIME = datetime(2026, 3, 12, 9, 41, 27, 123456, tzinfo=UTC)


def _bodies() -> dict[str, bytes]:
    bodies = {path.name: path.read_bytes() for path in sorted(MESSAGES.glob("xbau-*.xml"))}
    bodies[EXAMPLE_0200.name] = EXAMPLE_0200.read_bytes()
    bodies["with inline files"] = xbau_antrag_with_files(
        [("plan.pdf", b"%PDF-1.7 plan"), ("statik.pdf", b"%PDF-1.7 statik")]
    )[0]
    return bodies


BODIES = _bodies()


def _model_by_model(
    inspected: InspectedMessage, origin: Origin, original: AttachmentRef
) -> CaseEvent:
    """The build as it was: every nested part its own validated model."""
    refs: list[AttachmentRef] = []
    for a in inspected.attachments:
        if a.kind == "inline" and a.content is not None:
            digest = a.sha256 or hashlib.sha256(a.content).hexdigest()
            refs.append(
                AttachmentRef(
                    name=a.name,
                    media_type=a.media_type,
                    kind="inline",
                    size=len(a.content),
                    sha256=digest,
                    ref=f"attachments/{CASE_ID}/{digest}",
                )
            )
        elif a.ref:
            refs.append(
                AttachmentRef(
                    name=a.name,
                    media_type=a.media_type,
                    kind="reference",
                    size=a.size,
                    sha256=a.sha256,
                    ref=a.ref,
                )
            )

    def authority(value: str | None) -> Authority | None:
        if not value:
            return None
        prefix, _, code = value.partition(":")
        return Authority(prefix=prefix, code=code)

    data = CaseEventData(
        case_id=CASE_ID,
        standard=inspected.standard,
        version=inspected.version,
        message_type=inspected.message_type,
        nachrichten_uuid=inspected.nachrichten_uuid,
        leistung=inspected.leistung,
        region=inspected.region,
        author=authority(inspected.author),
        reader=authority(inspected.reader),
        origin=origin,
        tenant="kiel",
        backend="fachverfahren",
        applicant=Applicant(**inspected.applicant) if inspected.applicant else None,
        fields=dict(inspected.fields),
        attachments=refs,
        original=original,
    )
    return CaseEvent.received(data, time=TIME)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_event_json_is_what_the_model_by_model_build_gave(
    name: str, inspector: MessageInspector
) -> None:
    raw = BODIES[name]
    inspected = inspector.inspect(raw)
    origin = Origin(
        channel="xta",
        adapter="xta-sh",
        source_message_id=inspected.nachrichten_uuid or "sha256-x",
        reply_route={"author": "bau:010020000000", "reader": "bau:010030000000"},
    )
    original = AttachmentRef(
        name=f"{inspected.message_type}.xml",
        media_type="application/xml",
        kind="original",
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        ref="stream:INBOX/17",
    )
    refs = attachment_refs(CASE_ID, inspected.attachments)
    data = inspected.case_event_data(
        case_id=CASE_ID,
        origin=origin,
        tenant="kiel",
        backend="fachverfahren",
        attachments=refs,
        original=original,
    )
    event = CaseEvent.received(data, time=TIME)
    expected = _model_by_model(inspected, origin, original).model_dump_json()
    assert event.model_dump_json() == expected
    assert all(isinstance(ref, AttachmentRef) for ref in event.data.attachments)


def test_the_messages_cover_anlagen_of_both_kinds(inspector: MessageInspector) -> None:
    kinds = {
        ref.kind
        for raw in BODIES.values()
        for ref in attachment_refs(CASE_ID, inspector.inspect(raw).attachments)
    }
    assert kinds == {"inline", "reference"}


@pytest.mark.parametrize(
    "attachment",
    [
        Attachment(
            name="plan.pdf",
            media_type="application/pdf",
            kind="reference",
            ref="https://x/plan.pdf",
            sha256="NOT-A-DIGEST",
        ),
        Attachment(
            name="plan.pdf",
            media_type="application/pdf",
            kind="reference",
            ref="https://x/plan.pdf",
            size=-1,
        ),
        Attachment(
            name="plan.pdf",
            media_type=7,
            kind="reference",  # type: ignore[arg-type]
            ref="https://x/plan.pdf",
        ),
    ],
)
def test_a_bad_mapped_attachment_is_still_refused(attachment: Attachment) -> None:
    with pytest.raises(ValidationError):
        attachment_refs(CASE_ID, [attachment])


@pytest.mark.parametrize(
    "changes", [{"applicant": {"name": "A", "unknown": 1}}, {"region": 12345}, {"leistung": []}]
)
def test_bad_mapped_facts_are_still_refused(changes: dict[str, Any]) -> None:
    inspected = InspectedMessage(
        standard="xbau", version="2.6", message_type="m", namespace="urn:x", **changes
    )
    origin = Origin(channel="portal", adapter="http", source_message_id="s")
    with pytest.raises(ValidationError):
        inspected.case_event_data(case_id=CASE_ID, origin=origin, tenant="t", backend="b")
