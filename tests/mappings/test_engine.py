"""The mapping engine: shipped files load, wrong files are refused at load with file and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from lxml import etree

from poststelle.mappings.engine import (
    MappingError,
    MappingFailed,
    MappingSet,
    load_mapping,
)

REPO = Path(__file__).resolve().parents[2]

HEAD = """\
standard: demo
version: "1"
message_type: demo.0001
namespaces: {m: "urn:demo"}
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return path


def test_shipped_mappings_all_load() -> None:
    mappings = MappingSet.load()
    keys = {m.key for m in mappings}
    for message in ("antrag.0200", "formellePruefung.0201", "bescheid.0205"):
        assert ("xbau", "2.6", f"baugenehmigung.{message}") in keys
    for version in ("2.4.0", "3.0.0"):
        for message in (
            "Anbieteverzeichnis.0501",
            "Bewertungsverzeichnis.0502",
            "Aussonderung.0503",
            "AnbietungEmpfangBestaetigen.0504",
        ):
            assert ("xdomea", version, f"Aussonderung.{message}") in keys
    assert ("ozg-portal", "1", "formData") in keys


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("fields:\n  a: m:x[\n", 6, "bad XPath"),
        ("event:\n  region: m:x\n  tenant: m:y\n", 7, "unknown target field 'tenant'"),
        ("event:\n  applicant:\n    age: m:x\n", 7, "applicant.age"),
        ("fields:\n  a: {xpath: count(m:x), type: date}\n", 6, "type mismatch"),
        ("fields:\n  a: {xpath: boolean(m:x), type: int}\n", 6, "type mismatch"),
        ("fields:\n  a: {const: abc, type: int}\n", 6, "type mismatch"),
        ("fields:\n  a: {xpath: m:x, type: colour}\n", 6, "unknown type"),
        ("fields:\n  Bad-Name: m:x\n", 6, "snake_case"),
        ("colour: red\n", 5, "unknown key 'colour'"),
        ("fields:\n  a: {xpath: m:x, const: 1}\n", 6, "exactly one"),
        ("fields:\n  a: m:x\n b: [\n", 7, "not valid YAML"),
        ("fields:\n  a: q:x\n", 6, "bad XPath"),  # undeclared prefix
        (
            "attachments:\n  - each: count(m:x)\n    name: m:n\n    ref: m:r\n",
            6,
            "must select nodes",
        ),
        (
            "attachments:\n  - each: m:x\n    kind: inline\n    name: m:n\n",
            6,
            "'content' is required",
        ),
        ("event:\n  author: {xpath: m:a, type: int}\n", 6, "type must be authority"),
    ],
)
def test_wrong_mapping_is_refused_with_file_line_reason(
    tmp_path: Path, body: str, line: int, words: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert caught.value.file == str(path)
    assert caught.value.line == line, caught.value
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_values_are_typed_and_missing_required_ones_fail(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        event:
          author: {join: [m:p, m:k], separator: ":", type: authority}
        fields:
          n: {xpath: m:n, type: int}
          d: {xpath: m:d, type: date}
          b: {xpath: m:b, type: bool}
          l: {xpath: m:l, type: list}
          c: {xpath: count(m:l), type: int}
          must: {xpath: m:must, required: true}
        """,
    )
    mapping = load_mapping(path)
    doc = etree.fromstring(
        b'<m:r xmlns:m="urn:demo"><m:p>bau</m:p><m:k>0100</m:k><m:n> 42 </m:n>'
        b"<m:d>2026-03-10+01:00</m:d><m:b>true</m:b><m:l>x</m:l><m:l>y</m:l>"
        b"<m:must>ok</m:must></m:r>"
    )
    result = mapping.apply(doc)
    assert result.event == {"author": "bau:0100"}
    assert result.fields == {
        "n": 42,
        "d": __import__("datetime").date(2026, 3, 10),
        "b": True,
        "l": ["x", "y"],
        "c": 2,
        "must": "ok",
    }
    with pytest.raises(MappingFailed) as caught:
        mapping.apply(etree.fromstring(b'<m:r xmlns:m="urn:demo"><m:n>4x</m:n></m:r>'))
    assert caught.value.reason == "bad-value"
    with pytest.raises(MappingFailed) as caught:
        mapping.apply(etree.fromstring(b'<m:r xmlns:m="urn:demo"/>'))
    assert caught.value.reason == "missing-field"


def test_inline_attachment_bytes_and_bad_base64(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        attachments:
          - each: m:doc
            kind: inline
            name: "@name"
            media_type: {const: text/plain}
            content: .
        """,
    )
    mapping = load_mapping(path)
    doc = etree.fromstring(b'<m:r xmlns:m="urn:demo"><m:doc name="a.txt">aGFsbG8=</m:doc></m:r>')
    (attachment,) = mapping.apply(doc).attachments
    assert (attachment.name, attachment.content, attachment.size) == ("a.txt", b"hallo", 5)
    assert attachment.sha256 == __import__("hashlib").sha256(b"hallo").hexdigest()
    bad = etree.fromstring(b'<m:r xmlns:m="urn:demo"><m:doc name="a">***</m:doc></m:r>')
    with pytest.raises(MappingFailed) as caught:
        mapping.apply(bad)
    assert caught.value.reason == "bad-attachment"


def test_json_mapping_of_the_portal_example() -> None:
    mapping = MappingSet.load().get("ozg-portal", "1", "formData")
    assert mapping is not None
    document = json.loads((REPO / "examples" / "ozg-portal-submission.json").read_text())
    result = mapping.apply(document)
    assert result.event["leistung"] == document["formData"]["control"]["leikaIds"][0]
    assert result.event["region"] == "01002000"
    assert result.applicant == {
        "name": "Kirsten Hansen",
        "kind": "person",
        "address": "Holtenauer Straße 112 24105 Kiel",
        "postfach": "4dd01647-b9d9-4775-1b50-08d3e0e1d8a4",
    }
    (attachment,) = result.attachments
    assert attachment.content is not None and attachment.content.startswith(b"%PDF")


def test_bad_json_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(
        'standard: j\nversion: "1"\nmessage_type: t\nformat: json\nfields:\n  a: "x..y"\n'
    )
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert caught.value.line == 6 and "bad JSON path" in caught.value.reason


def test_duplicate_mapping_for_one_message_type(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(HEAD)
    with pytest.raises(MappingError, match="already mapped"):
        MappingSet.load([tmp_path])
