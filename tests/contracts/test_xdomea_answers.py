"""xdomea 3.0.0 and 2.4.0 answers (0504, 0505, 0506, 0507) to the corpus's real Aussonderung
messages:
valid against the published schemas, read back by the hub's own mappings, refused clearly
where xdomea has no such answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import etree

from poststelle.contracts.answers import ReplyContent, SchriftgutobjektErgebnis
from poststelle.contracts.answers_xdomea import XdomeaAnswered, build_xdomea_answer
from poststelle.contracts.inspection import inspect_message
from poststelle.contracts.replies import CASE_REPLY_SCHEMA_PATH, CaseReply

from .conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "replies" / "xdomea"

SGO_OK = "cbdbfccc-72e5-44b2-9e71-937e6f4f8ce9"
SGO_FAILED = "bf675c60-12c2-4ab1-826f-dcdf306d1733"


ENTRY_POINTS = {
    "3.0.0": "xdomea.xsd",
    "2.4.0": "xdomea-Nachrichten-AussonderungDurchfuehren.xsd",
}


@pytest.fixture(scope="module")
def schemas(corpus_dir: Path) -> dict[str, etree.XMLSchema]:
    folder = corpus_dir / "xdomea" / "schemes"
    return {
        version: etree.XMLSchema(etree.parse(str(folder / f"xdomea_{version}" / entry)))
        for version, entry in ENTRY_POINTS.items()
    }


def _record(
    corpus_dir: Path, message: str, tmp_path: Path, version: str = "3.0.0"
) -> dict[str, Any]:
    """The case record the routing core keeps for a corpus message (the fields it reads)."""
    folder = corpus_dir / "xdomea" / "messages" / f"xdomea_{version}"
    raw = (folder / f"xx_{message}.xml").read_bytes()
    inspected = inspect_message(raw, data_dir=tmp_path)
    fields = inspected.fields
    return {
        "case_id": "case-x",
        "standard": inspected.standard,
        "version": inspected.version,
        "message_type": inspected.message_type,
        "author": inspected.author,
        "reader": inspected.reader,
        "answered": {
            key: fields[key]
            for key in ("prozess_id", "absender_institution", "empfaenger_institution")
        },
    }


@pytest.mark.parametrize(
    ("version", "answered", "kind", "expected"),
    [
        ("3.0.0", "Anbieteverzeichnis.0501", "receipt", "AnbietungEmpfangBestaetigen.0504"),
        ("3.0.0", "Bewertungsverzeichnis.0502", "receipt", "BewertungEmpfangBestaetigen.0505"),
        ("3.0.0", "Aussonderung.0503", "receipt", "AussonderungEmpfangBestaetigen.0507"),
        ("3.0.0", "Aussonderung.0503", "decision", "AussonderungImportBestaetigen.0506"),
        ("2.4.0", "Anbieteverzeichnis.0501", "receipt", "AnbietungEmpfangBestaetigen.0504"),
        ("2.4.0", "Bewertungsverzeichnis.0502", "receipt", "BewertungEmpfangBestaetigen.0505"),
        ("2.4.0", "Aussonderung.0503", "decision", "AussonderungImportBestaetigen.0506"),
    ],
)
def test_answers_are_valid_and_read_back(
    corpus_dir: Path,
    tmp_path: Path,
    schemas: dict[str, etree.XMLSchema],
    version: str,
    answered: str,
    kind: str,
    expected: str,
) -> None:
    record = _record(corpus_dir, f"Aussonderung.{answered}", tmp_path, version)
    xdomea_schema = schemas[version]
    reply = ReplyContent(
        kind=kind,  # type: ignore[arg-type]
        information=["Eingang bestätigt."],
        schriftgutobjekte=[
            SchriftgutobjektErgebnis(id=SGO_OK, erfolgreich=True, archivkennung="LATh 1/2026"),
            SchriftgutobjektErgebnis(
                id=SGO_FAILED, erfolgreich=False, fehlermeldungen=["Primärdokument fehlt"]
            ),
        ],
    )
    content, message_type = build_xdomea_answer(XdomeaAnswered.from_record(record), reply)
    assert message_type == f"Aussonderung.{expected}"
    root = etree.fromstring(content)
    assert xdomea_schema.validate(root), xdomea_schema.error_log
    ns = {"x": f"urn:xoev-de:xdomea:schema:{version}"}
    assert root.findtext("x:Kopf/x:Nachrichtentyp/code", namespaces=ns) == expected[-4:]
    assert root.findtext("x:Kopf/x:Hinweis", namespaces=ns) == "Eingang bestätigt."

    # The hub reads its own answer with the shipped mapping: same process, parties swapped.
    back = inspect_message(content, data_dir=tmp_path)
    assert (back.version, back.message_type) == (version, message_type)
    assert back.fields["prozess_id"] == record["answered"]["prozess_id"]
    assert (back.author, back.reader) == (record["reader"], record["author"])
    assert back.fields["absender_institution"] == record["answered"]["empfaenger_institution"]
    if kind == "decision" and version == "2.4.0":
        # One verdict for the whole Aussonderung; the imported object's Archivkennung.
        [outcome] = root.findall("x:ErfolgOderMisserfolg", namespaces=ns)
        assert outcome.findtext("x:Erfolgreich", namespaces=ns) == "false"
        assert outcome.findtext("x:Fehlermeldung", namespaces=ns) == (
            f"{SGO_FAILED}: Primärdokument fehlt"
        )
        [parameter] = outcome.findall("x:Rueckgabeparameter", namespaces=ns)
        assert parameter.findtext("x:ID", namespaces=ns) == SGO_OK
        assert parameter.findtext("x:Archivkennung", namespaces=ns) == "LATh 1/2026"
    elif kind == "decision":
        results = root.findall("x:AusgesondertesSGO", namespaces=ns)
        assert [r.findtext("x:IDSGO", namespaces=ns) for r in results] == [SGO_OK, SGO_FAILED]
        assert [r.findtext("x:Erfolgreich", namespaces=ns) for r in results] == ["true", "false"]
        assert results[1].findtext("x:Fehlermeldung", namespaces=ns) == "Primärdokument fehlt"
    else:
        assert len(root) == 1  # the Kopf alone


def test_what_xdomea_cannot_say_is_refused(corpus_dir: Path, tmp_path: Path) -> None:
    offer = XdomeaAnswered.from_record(
        _record(corpus_dir, "Aussonderung.Anbieteverzeichnis.0501", tmp_path)
    )
    with pytest.raises(
        ValueError, match=r"3\.0\.0 has no decision answer to a 0501 message \(possible: receipt\)"
    ):
        build_xdomea_answer(offer, ReplyContent(kind="decision"))
    with pytest.raises(ValueError, match="no rejection answer"):
        build_xdomea_answer(offer, ReplyContent(kind="rejection"))
    records = XdomeaAnswered.from_record(
        _record(corpus_dir, "Aussonderung.Aussonderung.0503", tmp_path)
    )
    with pytest.raises(ValueError, match="schriftgutobjekte is required"):
        build_xdomea_answer(records, ReplyContent(kind="decision"))
    unknown = offer.model_copy(update={"version": "2.3.0"})
    with pytest.raises(ValueError, match=r"built for 3\.0\.0, 2\.4\.0, not 2\.3\.0"):
        build_xdomea_answer(unknown, ReplyContent(kind="receipt"))
    # 2.4.0 has no 0507: its sender learns of the import from the 0506 alone.
    older = XdomeaAnswered.from_record(
        _record(corpus_dir, "Aussonderung.Aussonderung.0503", tmp_path, "2.4.0")
    )
    with pytest.raises(ValueError, match=r"2\.4\.0 has no receipt answer to a 0503 .*decision"):
        build_xdomea_answer(older, ReplyContent(kind="receipt"))
    with pytest.raises(ValueError, match="keeps no ProzessID"):
        XdomeaAnswered.from_record({"case_id": "c", "answered": {}})
    with pytest.raises(ValueError, match=r"pattern"):
        SchriftgutobjektErgebnis(id="not-a-uuid", erfolgreich=True)


@pytest.mark.parametrize(
    ("example", "answered", "expected"),
    [
        ("anbietung-empfang.json", "Anbieteverzeichnis.0501", "AnbietungEmpfangBestaetigen.0504"),
        ("aussonderung-import.json", "Aussonderung.0503", "AussonderungImportBestaetigen.0506"),
    ],
)
def test_the_xdomea_reply_examples_answer(
    corpus_dir: Path,
    tmp_path: Path,
    schemas: dict[str, etree.XMLSchema],
    example: str,
    answered: str,
    expected: str,
) -> None:
    # examples/replies/xdomea/: what an archive back end sends, valid by the committed reply
    # schema and answered with a schema-valid xdomea message.
    document = json.loads((EXAMPLES / example).read_text(encoding="utf-8"))
    schema = json.loads(CASE_REPLY_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    reply = CaseReply.model_validate(document)
    for version in ENTRY_POINTS:
        record = _record(corpus_dir, f"Aussonderung.{answered}", tmp_path, version)
        content, message_type = build_xdomea_answer(XdomeaAnswered.from_record(record), reply)
        assert message_type == f"Aussonderung.{expected}"
        assert schemas[version].validate(etree.fromstring(content)), schemas[version].error_log
