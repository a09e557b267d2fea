"""Both validation modes give the verdict XSD 1.0 gives (docs/xsd-conformance.md).

Every message of the shipped corpus and every constructed edge case under ``conformance/``
goes through the lxml fast path and the strict (xmlschema) path. Each edge case is a folder
with ``schema.xsd`` (plus what it includes) and instances named ``valid-*.xml`` or
``invalid-*.xml``: the verdict the specification gives, worked out by hand from XSD 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from poststelle.contracts.cli import main
from poststelle.contracts.inspection import MessageRejected
from poststelle.contracts.registry import ContractRegistry, SchemaStore
from poststelle.contracts.validation import ValidationOutcome

CASES = Path(__file__).resolve().parent / "conformance"
INSTANCES = sorted(CASES.glob("*/*.xml"))

# Where libxml2 still deviates from XSD 1.0 and the fast path does not correct it:
# instance -> the (wrong) lxml verdict. Strict mode gives the specification's verdict.
LIBXML2_DEVIATES: dict[str, str] = {}
# Where both engines agree with each other but not with XSD 1.0 (one answer, the wrong one):
# NaN is incomparable, so it cannot satisfy minInclusive (§3.2.4.1); XÖV sets use no xs:float.
BOTH_DEVIATE: dict[str, str] = {"float-special-values/invalid-1.xml": "valid"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ContractRegistry:
    return ContractRegistry(SchemaStore(tmp_path_factory.mktemp("no-store")))


def _both(registry: ContractRegistry, root: etree._Element, schema: Path) -> dict[str, str]:
    outcomes: dict[str, ValidationOutcome] = {
        mode: registry.validate_with(root, schema, strict=mode == "strict")
        for mode in ("lxml", "strict")
    }
    for outcome in outcomes.values():
        if outcome.status == "invalid":  # every finding says where and what
            assert outcome.errors and all(e.message for e in outcome.errors)
    return {mode: o.status for mode, o in outcomes.items()}


def test_the_edge_cases_cover_every_topic() -> None:
    topics = {p.name.split("-")[0] for p in CASES.iterdir() if p.is_dir()}
    assert {
        "id",
        "regex",
        "identity",
        "redefine",
        "decimal",
        "date",
        "datetime",
        "duration",
        "integer",
        "xsi",
        "any",
        "nillable",
        "default",
        "whitespace",
        "union",
        "substitution",
        "chameleon",
        "float",
        "schema",
    } <= topics
    assert len(INSTANCES) > 100


@pytest.mark.parametrize(
    "instance", INSTANCES, ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.xml')}"
)
def test_edge_case_verdict_is_the_specifications_in_both_modes(
    registry: ContractRegistry, instance: Path
) -> None:
    spec = instance.name.split("-")[0]
    assert spec in ("valid", "invalid", "unusable"), instance
    root = etree.parse(str(instance)).getroot()
    if spec == "unusable":  # a schema in error gives no verdict in either mode
        for strict in (False, True):
            with pytest.raises(MessageRejected) as caught:
                registry.validate_with(root, instance.parent / "schema.xsd", strict=strict)
            assert (caught.value.step, caught.value.reason) == ("validate", "schema-unusable")
            assert "schema.xsd" in caught.value.detail
        return
    verdicts = _both(registry, root, instance.parent / "schema.xsd")
    key = f"{instance.parent.name}/{instance.name}"
    assert verdicts["strict"] == BOTH_DEVIATE.get(key, spec), key
    assert verdicts["lxml"] == LIBXML2_DEVIATES.get(key, BOTH_DEVIATE.get(key, spec)), key


def test_dangling_idref_error_carries_line_path_and_message(registry: ContractRegistry) -> None:
    instance = CASES / "id-idref-attributes" / "invalid-dangling-idref.xml"
    root = etree.parse(str(instance)).getroot()
    outcome = registry.validate_with(root, instance.parent / "schema.xsd")
    assert outcome.status == "invalid" and outcome.mode == "lxml"
    (error,) = outcome.errors
    assert error.message == "IDREF 'abcd' not found in XML document"
    assert error.line == 2 and error.path == "/*/*[2]"


def test_identity_rules_of_xbau_tell_linie_apart_by_parent(
    registry: ContractRegistry, xbau_xsd_dir: Path
) -> None:
    # XBau declares `linie` as a gml:Curve (with gml:id) and as a plain wrapper: by name alone
    # the rules would be ambiguous; the parent decides.
    rules = registry.identity_rules(xbau_xsd_dir / "xbau-nachrichten-baugenehmigung.xsd")
    assert rules.exact and "linie" in rules.contextual
    assert "{http://www.opengis.net/gml/3.2}id" in rules.global_attributes


def _corpus_messages(corpus_dir: Path) -> list[tuple[Path, str]]:
    """(message, entry point) for every instance message the corpus ships."""
    found = []
    for message in sorted((corpus_dir / "xdomea" / "messages").rglob("*.xml")):
        version = message.parent.name  # xdomea_2.4.0 / xdomea_3.0.0
        schemes = corpus_dir / "xdomea" / "schemes" / version
        entry = (
            "xdomea.xsd"
            if version.endswith("3.0.0")
            else "xdomea-Nachrichten-AussonderungDurchfuehren.xsd"
        )
        found.append((message, (schemes / entry).as_posix()))
    return found


def test_every_corpus_message_gets_the_same_verdict_in_both_modes(
    registry: ContractRegistry, corpus_dir: Path
) -> None:
    messages = _corpus_messages(corpus_dir)
    assert len(messages) == 8
    for message, entry in messages:
        root = etree.parse(str(message)).getroot()
        assert _both(registry, root, Path(entry)) == {"lxml": "valid", "strict": "valid"}, message


def test_project_xbau_messages_get_the_same_verdict_in_both_modes(
    registry: ContractRegistry, xbau_xsd_dir: Path, example_0200: bytes, messages_dir: Path
) -> None:
    entry = xbau_xsd_dir / "xbau-nachrichten-baugenehmigung.xsd"
    roots = [etree.fromstring(example_0200)]
    roots += [etree.parse(str(p)).getroot() for p in sorted(messages_dir.glob("*.xml"))]
    # The folder also holds other standards' messages (e.g. the qualified-header example).
    xbau = [r for r in roots if etree.QName(r).namespace == "http://www.xleitstelle.de/xbau/2/6"]
    assert len(xbau) >= 2
    for root in xbau:
        assert _both(registry, root, entry) == {"lxml": "valid", "strict": "valid"}


_IDREF_XSD = """\
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:example:xverweis:1.0"
           xmlns="urn:example:xverweis:1.0" elementFormDefault="qualified">
  <xs:element name="verweis.meldung.0100"><xs:complexType><xs:sequence>
    <xs:element name="anlage" maxOccurs="unbounded"><xs:complexType>
      <xs:attribute name="id" type="xs:ID" use="required"/></xs:complexType></xs:element>
    <xs:element name="bezug"><xs:complexType>
      <xs:attribute name="anlage" type="xs:IDREF" use="required"/></xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""
_IDREF_DESCRIPTOR = """\
standard: xverweis
version: "1.0"
title: XVerweis 1.0 (example)
namespaces: ["urn:example:xverweis:1.0"]
entry_points:
  xverweis.xsd: [verweis.meldung.0100]
"""


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_validate_cli_rejects_a_dangling_idref_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], strict: bool
) -> None:
    download = tmp_path / "xverweis-1.0"
    download.mkdir()
    (download / "xverweis.xsd").write_text(_IDREF_XSD)
    (download / "poststelle-contract.yaml").write_text(_IDREF_DESCRIPTOR)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["contracts", "add", str(download), *data]) == 0
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    body = '<verweis.meldung.0100 xmlns="urn:example:xverweis:1.0"><anlage id="a1"/>{}'
    good.write_text(body.format('<bezug anlage="a1"/></verweis.meldung.0100>'))
    bad.write_text(body.format('\n<bezug anlage="abcd"/></verweis.meldung.0100>'))
    capsys.readouterr()
    mode = ["--strict"] if strict else []
    assert main(["validate", str(good), "--json", *mode, *data]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "valid"
    assert main(["validate", str(bad), "--json", *mode, *data]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["status"] == "invalid"
    assert report["mode"] == ("strict" if strict else "lxml")
    assert [e["message"] for e in report["errors"]] == ["IDREF 'abcd' not found in XML document"]
    if not strict:  # where the reference is, like libxml2's own findings
        assert (report["errors"][0]["line"], report["errors"][0]["path"]) == (2, "/*/*[2]")


@pytest.mark.parametrize(
    ("datatype", "value", "spec"),
    [
        ("datatypeA", "Müller", "valid"),
        ("datatypeA", "Łódź", "valid"),
        ("datatypeA", "C\u0300a", "valid"),  # a combining sequence DIN SPEC 91379 lists
        ("datatypeA", "\u1e9eaße", "valid"),
        ("datatypeA", "A\u030b", "valid"),
        ("datatypeA", "\u0300x", "invalid"),  # a combining mark with nothing to combine with
        ("datatypeA", "Z\u030c", "invalid"),  # only the precomposed Ž is listed
        ("datatypeA", "€", "invalid"),
        ("datatypeA", "a\tb", "invalid"),
        ("datatypeA", "x\U0001f600", "invalid"),  # outside the BMP
        ("datatypeC", "€", "valid"),
        ("datatypeC", "a\tb", "valid"),
    ],
)
def test_din_91379_patterns_of_the_corpus_in_both_modes(
    registry: ContractRegistry,
    xbau_xsd_dir: Path,
    tmp_path: Path,
    datatype: str,
    value: str,
    spec: str,
) -> None:
    # The regexes XÖV uses most: DIN SPEC 91379's long alternations of ranges and sequences.
    din = (xbau_xsd_dir / "din-91379-datatypes.xsd").resolve()
    namespace = etree.parse(str(din)).getroot().get("targetNamespace")
    wrapper = tmp_path / "din.xsd"
    wrapper.write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:w" '
        f'xmlns:d="{namespace}" elementFormDefault="qualified">'
        f'<xs:import namespace="{namespace}" schemaLocation="{din}"/>'
        f'<xs:element name="v" type="d:{datatype}"/></xs:schema>'
    )
    root = etree.Element("{urn:w}v")
    root.text = value
    assert _both(registry, root, wrapper) == {"lxml": spec, "strict": spec}


def test_names_the_rules_cannot_tell_apart_fall_back_to_the_strict_engine(
    registry: ContractRegistry,
) -> None:
    rules = registry.identity_rules(CASES / "id-idref-ambiguous-names" / "schema.xsd")
    assert not rules.exact and rules.ambiguous == ("{urn:t}x",)
