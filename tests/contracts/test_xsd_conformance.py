"""Both validation modes give the verdict XSD 1.0 gives (docs/xsd-conformance.md).

Every message of the shipped corpus and every constructed edge case under ``conformance/``
goes through the lxml fast path and the strict (xmlschema) path. Each edge case is a folder
with ``schema.xsd`` (plus what it includes) and instances named ``valid-*.xml`` or
``invalid-*.xml``: the verdict the specification gives, worked out by hand from XSD 1.0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from poststelle.contracts.registry import ContractRegistry, SchemaStore
from poststelle.contracts.validation import ValidationOutcome

CASES = Path(__file__).resolve().parent / "conformance"
INSTANCES = sorted(CASES.glob("*/*.xml"))

# Where libxml2 still deviates from XSD 1.0 and the fast path does not correct it:
# instance -> the (wrong) lxml verdict. Strict mode gives the specification's verdict.
LIBXML2_DEVIATES: dict[str, str] = {}


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
    } <= topics
    assert len(INSTANCES) > 100


@pytest.mark.parametrize(
    "instance", INSTANCES, ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.xml')}"
)
def test_edge_case_verdict_is_the_specifications_in_both_modes(
    registry: ContractRegistry, instance: Path
) -> None:
    spec = instance.name.split("-")[0]
    assert spec in ("valid", "invalid"), instance
    root = etree.parse(str(instance)).getroot()
    verdicts = _both(registry, root, instance.parent / "schema.xsd")
    key = f"{instance.parent.name}/{instance.name}"
    assert verdicts["strict"] == spec, key
    assert verdicts["lxml"] == LIBXML2_DEVIATES.get(key, spec), key


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
    for raw in [example_0200, *(p.read_bytes() for p in sorted(messages_dir.glob("*.xml")))]:
        assert _both(registry, etree.fromstring(raw), entry) == {"lxml": "valid", "strict": "valid"}
