"""Managing the registry: one set per version unless replaced, remove, list says what serves
and whether it compiles; a schema broken at run time rejects instead of crashing; mappings
for what the registry does not know are refused with a did-you-mean."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from poststelle.contracts.cli import main
from poststelle.contracts.registry import ContractRegistry

from .conftest import EXAMPLE_0200
from .urlsets import url_importing_xbau, with_descriptor_catalog

_MAPPING = """\
standard: {standard}
version: "{version}"
message_type: {message_type}
namespaces: {{m: "http://www.xleitstelle.de/xbau/2/6"}}
fields:
  vorhaben: m:bauvorhaben/bezeichnung
"""


def _list(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()  # what earlier commands printed
    assert main(["contracts", "list", "--json", "--data-dir", str(data_dir)]) == 0
    return {f"{r['standard']}-{r['version']}": r for r in json.loads(capsys.readouterr().out)}


def _break(data_dir: Path) -> None:
    """Take the catalogued base schema out of the stored set, as a damaged store would."""
    [stored] = ContractRegistry.for_data_dir(data_dir).store.sets()
    (stored.folder / "base" / "xoev-code.xsd").unlink()


def test_a_second_set_for_a_version_needs_replace_and_remove_takes_it_away(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    first = ["contracts", "add", str(corpus_dir / "xbau-2.6" / "xsd"), "--data-dir", str(data_dir)]
    assert main(first) == 0
    old = _list(data_dir, capsys)["xbau-2.6"]
    assert old["compiles"] == "ok"
    assert main(first) == 0  # the same content again is no second set
    capsys.readouterr()

    second = with_descriptor_catalog(url_importing_xbau(corpus_dir, tmp_path / "xbau-url"))
    add = ["contracts", "add", str(second), "--data-dir", str(data_dir)]
    assert main(add) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"xbau-2.6 is already served by schema set {old['schema_set']}" in line
    assert "--replace" in line
    assert _list(data_dir, capsys)["xbau-2.6"]["schema_set"] == old["schema_set"]

    assert main([*add, "--replace"]) == 0
    assert f"replaced schema set {old['schema_set']}" in capsys.readouterr().out
    new = _list(data_dir, capsys)["xbau-2.6"]
    assert new["schema_set"] not in (None, old["schema_set"])
    assert new["compiles"] == "ok"
    assert [s.id for s in ContractRegistry.for_data_dir(data_dir).store.sets()] == [
        new["schema_set"]
    ]

    assert main(["contracts", "remove", "xbau-2.7", "--data-dir", str(data_dir)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "did you mean 'xbau-2.6'?" in line
    assert main(["contracts", "remove", "xbau-2.6", "--data-dir", str(data_dir)]) == 0
    assert f"removed schema set {new['schema_set']}" in capsys.readouterr().out
    assert _list(data_dir, capsys)["xbau-2.6"]["schema_set"] is None


def test_a_set_broken_after_adding_is_listed_and_rejects_schema_unusable(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    folder = with_descriptor_catalog(url_importing_xbau(corpus_dir, tmp_path / "xbau-url"))
    assert main(["contracts", "add", str(folder), "--data-dir", str(data_dir)]) == 0
    _break(data_dir)

    row = _list(data_dir, capsys)["xbau-2.6"]
    assert row["compiles"] == "broken"
    assert "http://xoev.de/schemata/code/1_0/xoev-code.xsd" in json.dumps(row["problems"])

    for mode in ([], ["--strict"]):
        command = ["validate", str(EXAMPLE_0200), "--json", "--data-dir", str(data_dir), *mode]
        assert main(command) == 1
        [report] = json.loads(capsys.readouterr().out)
        assert (report["status"], report["step"], report["reason"]) == (
            "rejected",
            "validate",
            "schema-unusable",
        )
        assert "xoev-code.xsd" in report["detail"]


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("standard", "xbua", "standard 'xbua' is not registered; did you mean 'xbau'?"),
        ("version", "2.5", "xbau has no version '2.5' (registered: 2.6); did you mean '2.6'?"),
        (
            "message_type",
            "baugenehmigung.antrag.0020",
            "xbau 2.6 has no message type 'baugenehmigung.antrag.0020'; "
            "did you mean 'baugenehmigung.antrag.0200'?",
        ),
    ],
)
def test_a_mapping_for_what_the_registry_does_not_know_is_refused(
    tmp_path: Path, key: str, value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    facts = {"standard": "xbau", "version": "2.6", "message_type": "baugenehmigung.antrag.0201"}
    facts[key] = value
    (data_dir / "mappings").mkdir(parents=True)
    mapping = data_dir / "mappings" / "mine.yaml"
    mapping.write_text(_MAPPING.format(**facts))
    line_of = {"standard": 1, "version": 2, "message_type": 3}[key]

    assert main(["map", str(EXAMPLE_0200), "--data-dir", str(data_dir)]) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert line == f"poststelle map: {mapping}:{line_of}: {said}"


def _poststelle(*argv: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("poststelle")
    return subprocess.run(
        [str(script), *argv], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_commands_on_bad_input_fail_in_one_line_without_traceback(
    tmp_path: Path, corpus_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    url_set = url_importing_xbau(corpus_dir, tmp_path / "xbau-url")
    not_xml = tmp_path / "not.xml"
    not_xml.write_text("hello")
    broken_store = tmp_path / "broken"
    (broken_store / "schemas" / "x").mkdir(parents=True)
    (broken_store / "schemas" / "x" / "poststelle-set.yaml").write_text("serves: [\n")
    bad_mapping = tmp_path / "mapped"
    (bad_mapping / "mappings").mkdir(parents=True)
    (bad_mapping / "mappings" / "m.yaml").write_text(
        _MAPPING.format(standard="xbau", version="2.6", message_type="baugenehmigung.antrg.0200")
    )
    cases = {
        "add-url-set": (["contracts", "add", str(url_set)], "do not resolve"),
        "add-missing": (["contracts", "add", str(tmp_path / "nope")], "no such file"),
        "remove-unknown": (["contracts", "remove", "xwasser-1.0.0"], "no schema set"),
        "list-broken-store": (["contracts", "list"], "not valid YAML"),
        "validate-broken-store": (["validate", str(EXAMPLE_0200)], "not valid YAML"),
        "map-bad-mapping": (["map", str(EXAMPLE_0200)], "did you mean"),
        "validate-bad-mapping": (["validate", str(EXAMPLE_0200)], "did you mean"),
        "map-not-xml": (["map", str(not_xml)], "REJECTED parse/not-xml"),
        "map-missing-file": (["map", str(tmp_path / "nope.xml")], "cannot read"),
    }
    folders = {"list-broken-store": broken_store, "validate-broken-store": broken_store}
    folders |= {"map-bad-mapping": bad_mapping, "validate-bad-mapping": bad_mapping}
    for name, (argv, said) in cases.items():
        result = _poststelle(*argv, "--data-dir", str(folders.get(name, data_dir)))
        assert result.returncode != 0, name
        assert "Traceback" not in result.stderr, (name, result.stderr)
        errors = [line for line in result.stderr.splitlines() if said in line]
        assert len(errors) == 1, (name, result.stderr)
    shutil.rmtree(data_dir, ignore_errors=True)
