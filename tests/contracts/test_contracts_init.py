"""``poststelle contracts init DIR``: the descriptor of a published schema set, generated.

The shipped descriptors are this command's output for the corpus sets; a set with URL imports
gets a ``catalog`` entry for each file it carries and a list of those it does not."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from poststelle.contracts._contract import contract_from_mapping
from poststelle.contracts.cli import main
from poststelle.contracts.registry import BUILTIN_REGISTRY_DIR

CODE_URL = "http://xoev.de/schemata/code/1_0/xoev-code.xsd"
MISSING_URL = "http://xoev.de/schemata/basisnachricht/g2g/1_1/xoev-basisnachricht-g2g_1.1.xsd"


@pytest.mark.parametrize(
    ("descriptor", "set_path", "version"),
    [
        ("xbau-2.6.yaml", "xbau-2.6/xsd", None),
        ("xdomea-2.4.0.yaml", "xdomea/schemes", "2.4.0"),
        ("xdomea-3.0.0.yaml", "xdomea/schemes", "3.0.0"),
    ],
)
def test_init_reproduces_the_shipped_descriptor(
    corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    descriptor: str,
    set_path: str,
    version: str | None,
) -> None:
    shipped = BUILTIN_REGISTRY_DIR / descriptor
    # Regenerating into a copy of the shipped file keeps its hand-set overrides.
    target = tmp_path / descriptor
    shutil.copy(shipped, target)
    argv = ["contracts", "init", str(corpus_dir / set_path), "-o", str(target)]
    assert main(argv + (["--version", version] if version else [])) == 0
    assert target.read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")
    assert "NOT found" not in capsys.readouterr().err


def test_init_finds_every_message_with_its_file_and_header(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contracts", "init", str(corpus_dir / "xbau-2.6")]) == 0
    captured = capsys.readouterr()
    data = yaml.safe_load(captured.out)
    assert data["header"] == "xoev-g2g"
    assert data["namespace_pattern"] == r"^http://www\.xleitstelle\.de/xbau/(\d+)/(\d+)$"
    assert (
        "baugenehmigung.antrag.0200" in data["entry_points"]["xbau-nachrichten-baugenehmigung.xsd"]
    )
    # The Kernmodul's messages live in their own namespace, named per entry point.
    kernmodul = data["entry_points"]["xbau-kernmodul-prozessnachrichten.xsd"]
    assert kernmodul["namespace"] == "http://www.xleitstelle.de/xbau/kernmodul/1/3/0"
    assert "prozessnachrichten.rueckweisung.G2G.1100" in kernmodul["messages"]
    # Base types (xbau-baukasten.xsd, xoev-*.xsd) declare no message and are no entry point.
    assert not any("baukasten" in e or e.startswith("xoev-") for e in data["entry_points"])
    assert "xbau-2.6: 139 message types in 25 entry point(s), header xoev-g2g" in captured.err
    # The descriptor loads as a contract.
    contract = contract_from_mapping(data, "generated")
    assert contract.entry_point_for("baugenehmigung.bescheid.0205") == (
        "xbau-nachrichten-baugenehmigung.xsd"
    )


def test_an_umbrella_xsd_is_the_entry_point_only_when_it_includes_every_message_file(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contracts", "init", str(corpus_dir / "xdomea" / "schemes")]) == 0
    first, second = yaml.safe_load_all(capsys.readouterr().out)
    # 3.0.0's xdomea.xsd includes all message files; 2.4.0 has only partial umbrellas
    # (xdomea-Nachrichten-VBS.xsd lacks the Fachverfahren messages), so one entry per file.
    assert (first["version"], second["version"]) == ("2.4.0", "3.0.0")
    assert list(second["entry_points"]) == ["xdomea.xsd"]
    assert "xdomea-Nachrichten-VBS.xsd" not in first["entry_points"]
    assert len(first["entry_points"]) == 6


def test_a_set_of_several_versions_needs_version_to_write_one_file(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d.yaml"
    argv = ["contracts", "init", str(corpus_dir / "xdomea" / "schemes"), "-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "xdomea-2.4.0, xdomea-3.0.0: choose one with --version" in err
    assert not out.exists()


def _write_url_import_set(root: Path) -> None:
    """A set in the XWasser manner: base schemas imported by absolute URL, one of them
    shipped in the set (under another folder), one not."""
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "xoev-code.xsd").write_text(
        textwrap.dedent(
            """\
            <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
                       targetNamespace="http://xoev.de/schemata/code/1_0">
              <xs:complexType name="Code"><xs:sequence>
                <xs:element name="code" type="xs:token"/>
              </xs:sequence></xs:complexType>
            </xs:schema>
            """
        )
    )
    (root / "xwasser-nachrichten.xsd").write_text(
        textwrap.dedent(
            f"""\
            <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
                       xmlns:vc="http://www.w3.org/2007/XMLSchema-versioning"
                       xmlns:xw="urn:example:xwasser:1.0.0"
                       xmlns:bn-g2g="http://xoev.de/schemata/basisnachricht/g2g/1_1"
                       targetNamespace="urn:example:xwasser:1.0.0" version="1.0.0"
                       elementFormDefault="qualified" vc:minVersion="1.1">
              <xs:import namespace="http://xoev.de/schemata/code/1_0"
                         schemaLocation="{CODE_URL}"/>
              <xs:import namespace="http://xoev.de/schemata/basisnachricht/g2g/1_1"
                         schemaLocation="{MISSING_URL}"/>
              <xs:element name="probe.ergebnis.0100">
                <xs:complexType><xs:complexContent>
                  <xs:extension base="bn-g2g:Nachricht.G2GType"><xs:sequence>
                    <xs:element name="messwert" type="xs:decimal"/>
                  </xs:sequence></xs:extension>
                </xs:complexContent></xs:complexType>
              </xs:element>
            </xs:schema>
            """
        )
    )


def test_url_imports_become_catalog_entries_and_missing_ones_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_url_import_set(tmp_path / "xwasser")
    assert main(["contracts", "init", str(tmp_path / "xwasser")]) == 0
    captured = capsys.readouterr()
    data = yaml.safe_load(captured.out)
    assert data["catalog"] == {CODE_URL: "lib/xoev-code.xsd"}
    assert data["strict"] == {"xsd_version": "1.1"}  # vc:minVersion="1.1"
    assert data["namespace_pattern"] == r"^urn:example:xwasser:(\d+\.\d+\.\d+)$"
    # The base type is behind the unresolved import; its XÖV namespace names the style.
    assert data["header"] == "xoev-g2g-qualified"
    # Said twice: on stderr for the person running it, in the file for the reviewer.
    assert "1 import(s) NOT found in the set:" in captured.err
    assert f"{MISSING_URL}  (imported by xwasser-nachrichten.xsd)" in captured.err
    assert f"#   {MISSING_URL}  (imported by xwasser-nachrichten.xsd)" in captured.out


def test_overrides_survive_regeneration_and_apply_on_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_url_import_set(tmp_path / "xwasser")
    target = tmp_path / "xwasser" / "poststelle-contract.yaml"
    assert main(["contracts", "init", str(tmp_path / "xwasser"), "-o", str(target)]) == 0
    # The integrator fixes by hand what the set cannot say, then regenerates.
    target.write_text(
        target.read_text()
        + "overrides:\n  title: XWasser 1.0.0 (Probe)\n  header: xoev-g2g\n"
        + f"  catalog:\n    {MISSING_URL}: lib/g2g.xsd\n"
    )
    assert main(["contracts", "init", str(tmp_path / "xwasser"), "-o", str(target)]) == 0
    capsys.readouterr()
    data = yaml.safe_load(target.read_text())
    assert data["title"] == "xwasser 1.0.0" and data["overrides"]["header"] == "xoev-g2g"
    contract = contract_from_mapping(data, str(target))
    assert (contract.title, contract.header) == ("XWasser 1.0.0 (Probe)", "xoev-g2g")
    from poststelle.contracts._contract import apply_overrides

    # A mapping-valued override adds to the generated mapping instead of replacing it.
    assert apply_overrides(data, "x")["catalog"] == {
        CODE_URL: "lib/xoev-code.xsd",
        MISSING_URL: "lib/g2g.xsd",
    }


def test_large_sets_show_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(120):
        (tmp_path / f"t{n:03}.xsd").write_text(
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t:1.0"'
            f' version="1.0"><xs:element name="t.m.{n:04}" type="xs:string"/></xs:schema>'
        )
    assert main(["contracts", "init", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "read 12/120 schema files" in err and "read 120/120 schema files" in err
    assert "t-1.0: 120 message types in 120 entry point(s), header none" in err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nope", "not a folder"),
        (lambda p: p, "no global element named like a message"),
        (lambda p: (p / "bad.xsd").write_text("<xs:schema") and p, "not a well-formed schema"),
    ],
)
def test_init_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    (tmp_path / "empty.xsd").write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>')
    path = make(tmp_path)  # type: ignore[operator]
    assert main(["contracts", "init", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("contracts init: ") and err.count("\n") == 1 and message in err


def test_a_url_import_with_several_candidate_files_takes_the_one_under_the_urls_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_url_import_set(tmp_path / "set")
    code = (tmp_path / "set" / "lib" / "xoev-code.xsd").read_text()
    (tmp_path / "set" / "lib" / "xoev-code.xsd").unlink()
    for folder, text in (("xoev/code/1_0", code), ("alt", code.replace("Code", "Kode"))):
        (tmp_path / "set" / folder).mkdir(parents=True)
        (tmp_path / "set" / folder / "xoev-code.xsd").write_text(text)
    assert main(["contracts", "init", str(tmp_path / "set")]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["catalog"] == {CODE_URL: "xoev/code/1_0/xoev-code.xsd"}


def test_a_set_mixing_header_styles_takes_the_majority_and_names_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # XBeteiligung 1.2 does this: kommunal.Aktualisieren.0402 derives from the unqualified
    # base type while its siblings use the qualified one.
    shutil.copytree(Path(__file__).parent / "data" / "xbeispiel-1.2", tmp_path / "set")
    (tmp_path / "set" / "xbeispiel-aktualisierung.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        ' targetNamespace="urn:example:xbeispiel:1.2" version="1.2" elementFormDefault="qualified">'
        '<xs:element name="beteiligung.aktualisierung.0403"><xs:complexType><xs:sequence>'
        '<xs:element name="nachrichtenkopf.g2g" form="unqualified"/>'
        "</xs:sequence></xs:complexType></xs:element></xs:schema>"
    )
    assert main(["contracts", "init", str(tmp_path / "set")]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["header"] == "xoev-g2g-qualified"
    assert (
        "warning: header xoev-g2g-qualified for most messages, but not for: "
        "beteiligung.aktualisierung.0403 (xoev-g2g)"
    ) in captured.err
