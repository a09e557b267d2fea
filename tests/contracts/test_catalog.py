"""Schema sets that import by URL: refused without a catalog, usable with one, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poststelle.contracts._catalog import SchemaCatalog
from poststelle.contracts.cli import main
from poststelle.contracts.registry import ContractError, ContractRegistry

from .conftest import EXAMPLE_0200
from .urlsets import (
    CODE_URL,
    XLINK_URL,
    invalid_0200,
    url_importing_xbau,
    with_descriptor_catalog,
    with_oasis_catalog,
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _validate(
    capsys: pytest.CaptureFixture[str], data_dir: Path, message: Path, *mode: str
) -> tuple[int, dict[str, Any]]:
    code, out = _run(capsys, "validate", str(message), "--json", "--data-dir", str(data_dir), *mode)
    [report] = json.loads(out)
    return code, report


def test_a_set_importing_by_url_is_refused_naming_each_url_and_importer(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = url_importing_xbau(corpus_dir, tmp_path / "xbau-url")
    data_dir = tmp_path / "data"

    assert main(["contracts", "add", str(folder), "--data-dir", str(data_dir)]) == 1

    [line] = capsys.readouterr().err.splitlines()  # one line, no traceback
    assert line.startswith("poststelle contracts add: ")
    assert "2 schema location(s) do not resolve" in line
    assert f"{XLINK_URL} (imported by gmlProfilexplan.xsd)" in line
    code_importers = line.split(f"{CODE_URL} (imported by ")[1].split(")")[0].split(", ")
    assert {"xbau-codes.xsd", "xbau-kernmodul-datentypen.xsd"} < set(code_importers)
    assert ContractRegistry.for_data_dir(data_dir).store.sets() == []


@pytest.mark.parametrize("catalog", ["descriptor", "catalog.xml"])
def test_a_set_with_a_catalog_validates_in_both_modes_without_network(
    tmp_path: Path,
    corpus_dir: Path,
    catalog: str,
    no_network: list[object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = url_importing_xbau(corpus_dir, tmp_path / "xbau-url")
    (with_descriptor_catalog if catalog == "descriptor" else with_oasis_catalog)(folder)
    data_dir = tmp_path / "data"
    invalid = tmp_path / "invalid.xml"
    invalid.write_bytes(invalid_0200())

    code, out = _run(capsys, "contracts", "add", str(folder), "--data-dir", str(data_dir))
    assert code == 0, out
    assert "xbau 2.6:" in out

    for mode in ((), ("--strict",)):
        code, report = _validate(capsys, data_dir, EXAMPLE_0200, *mode)
        assert (code, report["status"]) == (0, "valid"), report
        code, report = _validate(capsys, data_dir, invalid, *mode)
        assert (code, report["status"]) == (1, "invalid"), report
        assert "referenzAntragsservice" in json.dumps(report["errors"])
    assert no_network == []


def test_catalog_rules_oasis_entries_and_precedence(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/one.xsd", "a/two.xsd", "sys.xsd", "own.xsd"):
        (tmp_path / name).write_text("<x/>")
    (tmp_path / "catalog.xml").write_text(
        '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">'
        '<system systemId="urn:x:sys" uri="sys.xsd"/>'
        '<uri name="urn:x:own" uri="sys.xsd"/>'
        '<group xml:base="a/"><rewriteSystem systemIdStartString="http://e.org/" '
        'rewritePrefix="."/></group>'
        '<rewriteURI uriStartString="http://e.org/deeper/" rewritePrefix="a/"/>'
        "</catalog>"
    )
    catalog = SchemaCatalog.for_set(tmp_path, {"urn:x:own": "own.xsd"})

    assert catalog.resolve("urn:x:sys") == (tmp_path / "sys.xsd").resolve()
    assert catalog.resolve("urn:x:own") == (tmp_path / "own.xsd").resolve()  # descriptor wins
    assert catalog.resolve("http://e.org/one.xsd") == (tmp_path / "a/one.xsd").resolve()
    # the longest matching start string wins
    assert catalog.resolve("http://e.org/deeper/two.xsd") == (tmp_path / "a/two.xsd").resolve()
    assert catalog.resolve("http://e.org/../../etc/passwd") is None  # never outside the set
    assert catalog.resolve("http://elsewhere.org/x.xsd") is None
    assert catalog.uri_mapper("http://elsewhere.org/x.xsd") == "http://elsewhere.org/x.xsd"
    assert catalog.uri_mapper("urn:x:sys") == (tmp_path / "sys.xsd").resolve().as_uri()


def test_catalog_entries_must_stay_inside_the_set(tmp_path: Path) -> None:
    from poststelle.contracts._contract import contract_from_mapping

    with pytest.raises(ContractError, match="inside the set"):
        contract_from_mapping(
            {
                "standard": "x",
                "version": "1",
                "namespaces": ["urn:x"],
                "entry_points": {"x.xsd": ["x.0001"]},
                "catalog": {CODE_URL: "../elsewhere/xoev-code.xsd"},
            },
            "d.yaml",
        )
    (tmp_path / "catalog.xml").write_text(
        '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">'
        f'<uri name="{CODE_URL}" uri="/etc/passwd"/></catalog>'
    )
    with pytest.raises(ContractError, match="outside the schema set"):
        SchemaCatalog.for_set(tmp_path)
