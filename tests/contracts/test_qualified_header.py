"""The XÖV G2G header in its namespace-qualified form (as XBeteiligung 1.2 uses it): found by
``contracts init``, named in the descriptor, and read by ``map`` for a message type that has no
mapping of its own. The schema set is a small one written for the tests (tests/contracts/data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from poststelle.contracts.cli import main
from poststelle.contracts.inspection import MessageInspector
from poststelle.routing.hub.intake import source_message_id_of

from .conftest import MESSAGES

SET = Path(__file__).resolve().parent / "data" / "xbeispiel-1.2"
MESSAGE = MESSAGES / "xbeispiel-einladung-0401.xml"
UUID = "5d2f8c1a-3b7e-4a90-8e6d-1f0c9b2a7e43"


@pytest.fixture
def onboarded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The integrator's path: init writes the descriptor into the set, add registers it."""
    download = tmp_path / "xbeispiel-1.2"
    shutil.copytree(SET, download)
    descriptor = download / "poststelle-contract.yaml"
    assert main(["contracts", "init", str(download), "-o", str(descriptor)]) == 0
    data_dir = tmp_path / "data"
    assert main(["contracts", "add", str(download), "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    return data_dir


def test_init_names_the_qualified_header(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts", "init", str(SET)]) == 0
    captured = capsys.readouterr()
    descriptor = yaml.safe_load(captured.out)
    assert descriptor["header"] == "xoev-g2g-qualified"
    assert descriptor["entry_points"] == {
        "xbeispiel-nachrichten.xsd": [
            "beteiligung.einladung.0401",
            "beteiligung.stellungnahme.0402",
        ]
    }
    assert descriptor["namespace_pattern"] == r"^urn:example:xbeispiel:(\d+\.\d+)$"
    assert "header xoev-g2g-qualified" in captured.err


def test_map_reads_uuid_author_and_reader_from_a_qualified_header(
    onboarded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(MESSAGE), "--data-dir", str(onboarded)]) == 0
    assert "VALID xbeispiel 1.2 beteiligung.einladung.0401" in capsys.readouterr().out
    assert main(["map", str(MESSAGE), "--data-dir", str(onboarded)]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["nachrichten_uuid"] == UUID
    assert data["author"] == {"prefix": "psw", "code": "01000000-beteiligungsportal", "name": None}
    assert data["reader"] == {"prefix": "psw", "code": "01002000-bauleitplanung", "name": None}
    assert data["fields"]["author_name"] == "Beteiligungsportal Schleswig-Holstein"
    assert data["fields"]["erstellungszeitpunkt"].startswith("2026-03-12T09:15:00")


def test_header_facts_of_an_invalid_qualified_message_address_the_rejection(
    onboarded: Path,
) -> None:
    # A schema-invalid message still names its author, so a rejection can be sent back.
    broken = MESSAGE.read_bytes().replace(b"<xbsp:planID>BP-KI-2026-007</xbsp:planID>", b"")
    facts = MessageInspector(onboarded).header_facts(broken)
    assert facts is not None
    assert (facts.nachrichten_uuid, facts.author) == (UUID, "psw:01000000-beteiligungsportal")


def test_the_unqualified_style_does_not_misread_a_qualified_header(tmp_path: Path) -> None:
    # The two styles are different documents: reading one with the other finds nothing,
    # which is why the descriptor must say which one a standard uses.
    download = tmp_path / "set"
    shutil.copytree(SET, download)
    descriptor = download / "poststelle-contract.yaml"
    assert main(["contracts", "init", str(download), "-o", str(descriptor)]) == 0
    descriptor.write_text(descriptor.read_text() + "overrides:\n  header: xoev-g2g\n")
    data_dir = tmp_path / "data"
    assert main(["contracts", "add", str(download), "--data-dir", str(data_dir)]) == 0
    result = MessageInspector(data_dir).inspect(MESSAGE.read_bytes())
    assert (result.nachrichten_uuid, result.author, result.reader) == (None, None, None)


def test_intake_takes_the_uuid_of_a_qualified_header_as_the_dedupe_key() -> None:
    assert source_message_id_of(MESSAGE.read_bytes()) == UUID


def test_a_mapping_of_its_own_includes_the_qualified_header_part(
    onboarded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (onboarded / "mappings").mkdir()
    (onboarded / "mappings" / "einladung.yaml").write_text(
        "standard: xbeispiel\nversion: '1.2'\nmessage_type: beteiligung.einladung.0401\n"
        "namespaces: {b: 'urn:example:xbeispiel:1.2'}\n"
        "include: [_headers/xoev-g2g-qualified.yaml]\n"
        "fields:\n  plan_id: {xpath: b:planID, required: true}\n"
    )
    assert main(["map", str(MESSAGE), "--data-dir", str(onboarded)]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["nachrichten_uuid"] == UUID
    assert data["fields"]["plan_id"] == "BP-KI-2026-007"
    assert data["reader"]["code"] == "01002000-bauleitplanung"
