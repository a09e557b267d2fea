"""CLI commands (called through main) and adding a standard the project does not ship,
with nothing but files: contracts add + a descriptor + one mapping file."""

from __future__ import annotations

import json
import textwrap
import zipfile
from pathlib import Path

import pytest

from poststelle.contracts.cli import main
from poststelle.contracts.inspection import MessageInspector

from .conftest import EXAMPLE_0200

XSD = textwrap.dedent(
    """\
    <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
               targetNamespace="urn:example:xgewerbe:1.0" xmlns="urn:example:xgewerbe:1.0"
               elementFormDefault="qualified">
      <xs:element name="gewerbe.anmeldung.0100">
        <xs:complexType><xs:sequence>
          <xs:element name="nachrichtenUUID" type="xs:string"/>
          <xs:element name="absender" type="xs:string"/>
          <xs:element name="empfaenger" type="xs:string"/>
          <xs:element name="betriebsstaette"><xs:complexType><xs:sequence>
            <xs:element name="ags" type="xs:string"/>
            <xs:element name="taetigkeit" type="xs:string"/>
          </xs:sequence></xs:complexType></xs:element>
        </xs:sequence></xs:complexType>
      </xs:element>
    </xs:schema>
    """
)
DESCRIPTOR = textwrap.dedent(
    """\
    standard: xgewerbe
    version: "1.0"
    title: XGewerbe 1.0 (example)
    namespaces: ["urn:example:xgewerbe:1.0"]
    namespace_pattern: '^urn:example:xgewerbe:(\\d+\\.\\d+)$'
    entry_points:
      xgewerbe.xsd: [gewerbe.anmeldung.0100]
    """
)
MAPPING = textwrap.dedent(
    """\
    standard: xgewerbe
    version: "1.0"
    message_type: gewerbe.anmeldung.0100
    namespaces: {g: "urn:example:xgewerbe:1.0"}
    event:
      nachrichten_uuid: g:nachrichtenUUID
      author: g:absender
      reader: g:empfaenger
      region: g:betriebsstaette/g:ags
    fields:
      taetigkeit: {xpath: g:betriebsstaette/g:taetigkeit, required: true}
    """
)
MESSAGE = (
    '<gewerbe.anmeldung.0100 xmlns="urn:example:xgewerbe:1.0">'
    "<nachrichtenUUID>8a1e0c36-6d5b-4f1e-9a77-3b2c1d0e9f8a</nachrichtenUUID>"
    "<absender>gew:010020000000</absender><empfaenger>gwa:010020000000</empfaenger>"
    "<betriebsstaette><ags>01002000</ags><taetigkeit>Bäckerei</taetigkeit></betriebsstaette>"
    "</gewerbe.anmeldung.0100>"
).encode()


def test_a_new_standard_with_files_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    download = tmp_path / "xgewerbe-1.0"
    download.mkdir()
    (download / "xgewerbe.xsd").write_text(XSD)
    (download / "poststelle-contract.yaml").write_text(DESCRIPTOR)
    message = tmp_path / "anmeldung.xml"
    message.write_bytes(MESSAGE)
    # Before: the hub does not know the standard.
    assert main(["validate", str(message), "--data-dir", str(data_dir)]) == 1
    assert "unknown-namespace" in capsys.readouterr().out

    archive = tmp_path / "xgewerbe-1.0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in download.iterdir():
            zf.write(file, f"xgewerbe-1.0/{file.name}")
    assert main(["contracts", "add", str(archive), "--data-dir", str(data_dir)]) == 0
    assert "xgewerbe 1.0: 1/1 entry points" in capsys.readouterr().out
    (data_dir / "mappings").mkdir()
    (data_dir / "mappings" / "xgewerbe-anmeldung.yaml").write_text(MAPPING)

    assert main(["validate", str(message), "--json", "--data-dir", str(data_dir)]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert (report["standard"], report["status"]) == ("xgewerbe", "valid")
    assert main(["map", str(message), "--data-dir", str(data_dir)]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["data"]["region"] == "01002000"
    assert event["data"]["author"] == {"prefix": "gew", "code": "010020000000", "name": None}
    assert event["data"]["fields"] == {"taetigkeit": "Bäckerei"}
    assert event["data"]["tenant"] == "unrouted"
    # A fresh hub process sees the same: everything lives in the data folder.
    again = MessageInspector(data_dir).inspect(MESSAGE)
    assert again.validation.status == "valid" and again.reader == "gwa:010020000000"
    # An unknown version of the new standard is named as such.
    other = tmp_path / "v2.xml"
    other.write_bytes(MESSAGE.replace(b"xgewerbe:1.0", b"xgewerbe:2.0"))
    assert main(["validate", str(other), "--data-dir", str(data_dir)]) == 1
    assert "identify/unknown-version" in capsys.readouterr().out


def test_contracts_add_refuses_unknown_schemas_without_descriptor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.xsd").write_text(XSD)
    assert main(["contracts", "add", str(tmp_path), "--data-dir", str(tmp_path / "d")]) == 1
    assert "urn:example:xgewerbe:1.0" in capsys.readouterr().err


def test_contracts_add_refuses_zip_slip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.xsd", XSD)
    assert main(["contracts", "add", str(archive), "--data-dir", str(tmp_path / "d")]) == 1
    assert "unsafe member name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape.xsd").exists()


def test_validate_reports_invalid_with_exit_1(
    registered_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(
        EXAMPLE_0200.read_bytes()
        .replace(b"<xbau:bezeichnungDesBauvorhabens>", b"<!--")
        .replace(b"</xbau:bezeichnungDesBauvorhabens>", b"-->")
    )
    args = ["validate", str(EXAMPLE_0200), str(broken), "--data-dir", str(registered_data_dir)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"{EXAMPLE_0200}: VALID xbau 2.6" in out
    assert f"{broken}: INVALID" in out and "line " in out
    assert main([*args[:2], "--data-dir", str(registered_data_dir)]) == 0


def test_validate_not_performed_is_not_a_failure_unless_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTSTELLE_DATA_DIR", str(tmp_path))  # honoured without --data-dir
    assert main(["validate", str(EXAMPLE_0200)]) == 0
    assert "NOT-PERFORMED" in capsys.readouterr().out
    assert main(["validate", "--require-schema", str(EXAMPLE_0200)]) == 1


def test_map_rejection_and_list(
    registered_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    assert main(["map", str(bad), "--data-dir", str(registered_data_dir)]) == 1
    assert "REJECTED parse/dtd-forbidden" in capsys.readouterr().err
    assert main(["contracts", "list", "--json", "--data-dir", str(registered_data_dir)]) == 0
    rows = {(r["standard"], r["version"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("xbau", "2.6")]["schema_set"]
    assert rows[("xdomea", "3.0.0")]["schema_set"]
    assert rows[("ozg-portal", "1")]["format"] == "json"
