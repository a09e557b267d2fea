"""Answers in XÖV: each builder's output is valid against the real XBau 2.6 XSD, addressed
back to the origin, and maps back to the facts it was built from."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from poststelle.contracts._rejected import MAX_REJECTED_MESSAGE_BYTES
from poststelle.contracts.answers import (
    AnlageRef,
    AnsweredMessage,
    HeaderAuthority,
    RejectionReason,
    ReplyEvent,
    build_answer,
    latin_text,
)
from poststelle.contracts.inspection import MessageInspector

from .conftest import EXAMPLE_0200

PORTAL = HeaderAuthority(kennung="bap:010000000001", name="Bauportal Schleswig-Holstein")
KIEL = HeaderAuthority(kennung="bau:010020000000", name="Landeshauptstadt Kiel, Bauordnungsamt")


def _answered(code: str = "0200") -> AnsweredMessage:
    return AnsweredMessage(
        nachrichten_uuid="3f6c2a9e-8d41-4b7a-9c15-2e7f0b4d9a61",
        nachrichtentyp=code,
        erstellungszeitpunkt=datetime(2026, 3, 12, 8, 41, 27, tzinfo=UTC),
        author=PORTAL,
        reader=KIEL,
        referenz_antragsservice="b7e3d2c1-5a4f-4e8d-9b6a-1c0f2e3d4a5b",
        raw=EXAMPLE_0200.read_bytes(),
    )


REPLIES = {
    "status-incomplete": ReplyEvent(
        case_id="case-1",
        kind="status",
        answered=_answered(),
        vorgang="BA-2026-00417",
        antrag_vollstaendig=False,
        befunde=["Der Standsicherheitsnachweis fehlt."],
        frist=date(2026, 4, 16),
        anschreiben=["Sehr geehrte Frau Hansen,", "bitte reichen Sie nach."],
    ),
    "status-complete": ReplyEvent(
        case_id="case-1",
        kind="status",
        answered=_answered(),
        antrag_vollstaendig=True,
        spaetestes_genehmigungsdatum=date(2026, 6, 30),
    ),
    "decision": ReplyEvent(
        case_id="case-1",
        kind="decision",
        answered=_answered(),
        vorgang="BA-2026-00417",
        ist_genehmigung=True,
        begruendung="Das Vorhaben entspricht den Vorschriften (§ 73 LBO SH).",
        nebenbestimmungen=["Der Baubeginn ist anzuzeigen."],
        anlagen=[
            AnlageRef(bezeichnung="Baugenehmigung", dateiname="bg.pdf", dokumentid="urn:uuid:1")
        ],
    ),
    "rejection": ReplyEvent(
        case_id="case-1",
        kind="rejection",
        answered=_answered(),
        errors=[RejectionReason(code="X001", text="line 57: element 'beteiligte' expected")],
    ),
    "receipt": ReplyEvent(
        case_id="case-1",
        kind="receipt",
        answered=_answered("0201"),
        information=["Ihre Nachricht ist eingegangen."],
    ),
}


@pytest.fixture(scope="module")
def schemas(xbau_xsd_dir: Path) -> dict[str, etree.XMLSchema]:
    return {
        name: etree.XMLSchema(etree.parse(str(xbau_xsd_dir / name)))
        for name in ("xbau-nachrichten-baugenehmigung.xsd", "xbau-kernmodul-prozessnachrichten.xsd")
    }


@pytest.mark.parametrize("name", list(REPLIES))
def test_answer_is_valid_and_goes_back_to_the_origin(
    name: str, schemas: dict[str, etree.XMLSchema]
) -> None:
    reply = REPLIES[name]
    root = etree.fromstring(build_answer(reply))
    schema = schemas[
        "xbau-nachrichten-baugenehmigung.xsd"
        if reply.kind in ("status", "decision")
        else "xbau-kernmodul-prozessnachrichten.xsd"
    ]
    assert schema.validate(root), [f"{e.line}: {e.message}" for e in schema.error_log]
    assert root.findtext("nachrichtenkopf.g2g/leser/kennung") == PORTAL.kennung
    assert root.findtext("nachrichtenkopf.g2g/autor/kennung") == KIEL.kennung


def test_answers_are_identified_and_mapped_by_the_hub(inspector: MessageInspector) -> None:
    status = inspector.inspect(build_answer(REPLIES["status-incomplete"]))
    assert status.message_type == "baugenehmigung.formellePruefung.0201"
    assert status.fields["antrag_vollstaendig"] is False
    assert status.fields["frist"] == date(2026, 4, 16)
    assert status.fields["bezug_nachrichten_uuid"] == "3f6c2a9e-8d41-4b7a-9c15-2e7f0b4d9a61"
    complete = inspector.inspect(build_answer(REPLIES["status-complete"]))
    assert complete.fields["spaetestes_genehmigungsdatum"] == date(2026, 6, 30)
    decision = inspector.inspect(build_answer(REPLIES["decision"]))
    assert decision.fields["ist_genehmigung"] is True
    texts = {a.name: a.content for a in decision.attachments if a.kind == "inline"}
    assert (
        texts["begruendung.txt"]
        == "Das Vorhaben entspricht den Vorschriften (§ 73 LBO SH).".encode()
    )
    rejection = inspector.inspect(build_answer(REPLIES["rejection"]))
    assert rejection.message_type == "prozessnachrichten.rueckweisung.G2G.1100"
    assert rejection.validation.status == "valid"


def test_rejection_carries_errors_and_the_original() -> None:
    root = etree.fromstring(build_answer(REPLIES["rejection"]))
    data = root.find("rueckweisungDaten")
    assert data.findtext("rueckweisungsgrund/grund/code") == "X001"
    assert "beteiligte" in data.findtext("rueckweisungsgrund/fehlertext")
    assert base64.b64decode(data.findtext("nachricht")) == EXAMPLE_0200.read_bytes()


def test_answer_id_is_deterministic() -> None:
    first = etree.fromstring(build_answer(REPLIES["decision"]))
    again = etree.fromstring(build_answer(REPLIES["decision"]))
    path = "nachrichtenkopf.g2g/identifikation.nachricht/nachrichtenUUID"
    assert first.findtext(path) == again.findtext(path)
    other = etree.fromstring(build_answer(REPLIES["status-complete"]))
    assert other.findtext(path) != first.findtext(path)


@pytest.mark.parametrize(
    ("update", "words"),
    [
        ({"kind": "decision", "ist_genehmigung": True}, "at least one Anlage"),
        ({"kind": "status"}, "antrag_vollstaendig"),
        ({"kind": "receipt"}, "nachricht-eingangsquittierung"),  # 0200 is not acknowledgeable
        ({"kind": "rejection", "answered": _answered().model_copy(update={"raw": None})}, "raw"),
    ],
)
def test_incomplete_replies_are_refused(update: dict[str, object], words: str) -> None:
    reply = ReplyEvent(case_id="c", kind="status", answered=_answered()).model_copy(update=update)
    with pytest.raises(ValueError, match=words):
        build_answer(reply)


def _rejection_of(raw: bytes) -> ReplyEvent:
    answered = _answered().model_copy(update={"raw": raw})
    return REPLIES["rejection"].model_copy(update={"answered": answered})


def test_rejection_carries_the_original_without_its_inline_attachments(
    schemas: dict[str, etree.XMLSchema],
) -> None:
    """XBau type Rueckweisung: ``nachricht`` is the message "ohne Attachments"."""
    plan = b"%PDF-1.7 " + bytes(range(256)) * 2000
    data_uri = b"data:application/pdf;base64," + base64.b64encode(plan)
    raw = EXAMPLE_0200.read_bytes().replace(
        b"</xbau:anlagen>",
        b"<anlage><anhangOderVerlinkung><anhang><dokumentid>%s</dokumentid>"
        b"<dateiname>plan.pdf</dateiname></anhang></anhangOderVerlinkung></anlage>"
        b"</xbau:anlagen>" % data_uri,
    )
    root = etree.fromstring(build_answer(_rejection_of(raw)))
    assert schemas["xbau-kernmodul-prozessnachrichten.xsd"].validate(root)
    carried = base64.b64decode(root.findtext("rueckweisungDaten/nachricht") or "")
    assert data_uri not in carried
    assert f"urn:sha256:{hashlib.sha256(plan).hexdigest()}".encode() in carried
    assert b"<dateiname>plan.pdf</dateiname>" in carried
    assert len(carried) < len(EXAMPLE_0200.read_bytes()) + 1000


def test_rejection_of_a_message_too_large_without_attachments_is_refused() -> None:
    raw = EXAMPLE_0200.read_bytes().replace(
        b"</xbau:anlagen>", b"<!--" + b"x" * MAX_REJECTED_MESSAGE_BYTES + b"--></xbau:anlagen>"
    )
    with pytest.raises(ValueError, match="without its attachments"):
        build_answer(_rejection_of(raw))


def test_latin_text_keeps_german_and_writes_other_characters_as_code_points() -> None:
    assert latin_text("Straße, Größe: 3 €?") == "Straße, Größe: 3 U+20AC?"
    assert latin_text("Жд") == "U+0416U+0434"
    assert latin_text("soft\u00adhyphen\ttab") == "softU+00ADhyphen\ttab"
    assert latin_text("plain") == "plain"
