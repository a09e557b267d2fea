"""Schematron, the third validation level: ISO semantics of the compiler on small schemas, and
XBau 2.6's shipped rules (corpus ``xbau-2.6/schematron/``) on the committed XBau messages."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from lxml import etree

from poststelle.contracts._schematron import (
    CompiledSchematron,
    SchematronUnusable,
    compile_schematron,
    schematron_to_xslt,
)
from poststelle.contracts.cli import main
from poststelle.contracts.inspection import MessageInspector, MessageRejected
from poststelle.contracts.registry import ContractError, ContractRegistry
from poststelle.contracts.validation import SchemaError

from .conftest import EXAMPLE_0200, MESSAGES

SCH = "http://purl.oclc.org/dsdl/schematron"

# The leser's DVDV Behördenkennung: XSD-valid as any string, but rule sch-xbau-001 of XBau 2.6
# wants "three lower-case letters, a colon, digits".
LESER_KENNUNG = b"<kennung>bau:010020000000</kennung>"
BAD_LESER_KENNUNG = b"<kennung>BAU-010020000000</kennung>"


def _broken_leser(raw: bytes) -> bytes:
    """``raw`` with the leser's kennung broken (the first one: the header comes first)."""
    assert raw.index(LESER_KENNUNG) < raw.index(b"</leser>")
    return raw.replace(LESER_KENNUNG, BAD_LESER_KENNUNG, 1)


def _rules(body: str, *, binding: str = "xslt2", head: str = "", phase: str | None = None) -> str:
    return (
        f'<sch:schema xmlns:sch="{SCH}" queryBinding="{binding}" {head}>'
        '<sch:ns prefix="t" uri="urn:test"/>'
        f"{body}</sch:schema>"
    )


def _check(rules: str, instance: str, phase: str | None = None) -> list[SchemaError]:
    xslt = schematron_to_xslt(rules.encode(), phase=phase)
    compiled = CompiledSchematron("test.sch", hashlib.sha256(rules.encode()).hexdigest(), xslt)
    return compiled.findings(etree.fromstring(instance.encode()))


INSTANCE = (
    '<t:root xmlns:t="urn:test">\n'
    '  <t:item kind="a" code="1">10</t:item>\n'
    '  <t:item kind="b" code="x">20</t:item>\n'
    "</t:root>"
)


# -- ISO Schematron semantics -------------------------------------------------------------


def test_a_node_fires_only_the_first_matching_rule_of_a_pattern() -> None:
    rules = _rules(
        "<sch:pattern>"
        # XSLT alone would prefer the second, more specific pattern for the kind-b item.
        '<sch:rule context="t:item">'
        '<sch:assert id="first" test="false()">first rule</sch:assert></sch:rule>'
        "<sch:rule context=\"t:item[@kind='b']\">"
        '<sch:assert id="second" test="false()">second rule</sch:assert></sch:rule>'
        "</sch:pattern>"
        # Another pattern is another traversal: its rule fires on the same nodes again.
        '<sch:pattern><sch:rule context="t:item">'
        '<sch:assert id="other-pattern" test="false()">other pattern</sch:assert>'
        "</sch:rule></sch:pattern>"
    )
    found = [(e.id, e.line) for e in _check(rules, INSTANCE)]
    assert found == [("first", 2), ("first", 3), ("other-pattern", 2), ("other-pattern", 3)]


def test_abstract_rules_lets_reports_and_message_text() -> None:
    rules = _rules(
        '<sch:let name="items" value="count(//t:item)"/>'
        "<sch:pattern>"
        '<sch:rule id="base" abstract="true">'
        '<sch:assert id="has-code" test="@code">no code</sch:assert></sch:rule>'
        '<sch:rule id="numeric" abstract="true"><sch:extends rule="base"/>'
        '<sch:assert id="code-numeric" test="@code castable as xs:integer">'
        '<sch:name/> code "<sch:value-of select="@code"/>" of <sch:value-of select="$items"/> '
        "is not a number</sch:assert></sch:rule>"
        '<sch:rule context="t:item"><sch:let name="value" value="number(.)"/>'
        '<sch:extends rule="numeric"/>'
        '<sch:report id="big" test="$value &gt; 15">value <sch:value-of select="$value"/>'
        "</sch:report></sch:rule>"
        "</sch:pattern>"
    )
    found = _check(rules, INSTANCE)
    assert [(e.id, e.line, e.path) for e in found] == [
        ("code-numeric", 3, "/t:root/t:item[2]"),
        ("big", 3, "/t:root/t:item[2]"),
    ]
    assert found[0].message == 't:item code "x" of 2 is not a number'
    assert found[1].message == "value 20"


def test_attributes_are_rule_contexts_and_located_by_xpath_and_line() -> None:
    rules = _rules(
        '<sch:pattern><sch:rule context="t:item/@code">'
        '<sch:assert id="digits" test="matches(., \'^\\d+$\')">not digits</sch:assert>'
        "</sch:rule></sch:pattern>"
    )
    [error] = _check(rules, INSTANCE)
    assert (error.id, error.line, error.path) == ("digits", 3, "/t:root/t:item[2]/@code")


def test_text_nodes_are_rule_contexts_too() -> None:
    rules = _rules(
        '<sch:pattern><sch:rule context="t:item/text()">'
        '<sch:assert id="small" test="number(.) lt 15">too big</sch:assert>'
        "</sch:rule></sch:pattern>"
    )
    [error] = _check(rules, INSTANCE)
    assert (error.id, error.line, error.path) == ("small", 3, "/t:root/t:item[2]/text()")


def test_element_only_patterns_skip_attributes_and_text_in_the_traversal(
    corpus_dir: Path,
) -> None:
    # XBau's contexts are all element patterns: the stylesheet walks elements only.
    sch = (corpus_dir / "xbau-2.6" / "schematron" / "xbau-schematron.sch").read_bytes()
    xslt = etree.fromstring(schematron_to_xslt(sch).encode())
    walks = {
        a.get("select")
        for a in xslt.iter("{http://www.w3.org/1999/XSL/Transform}apply-templates")
        if a.get("select") != "."
    }
    assert walks == {"*"}


def test_phases_select_patterns() -> None:
    body = (
        '<sch:phase id="only-a"><sch:active pattern="a"/></sch:phase>'
        '<sch:pattern id="a"><sch:rule context="t:root">'
        '<sch:assert id="in-a" test="false()">a</sch:assert></sch:rule></sch:pattern>'
        '<sch:pattern id="b"><sch:rule context="t:root">'
        '<sch:assert id="in-b" test="false()">b</sch:assert></sch:rule></sch:pattern>'
    )
    assert [e.id for e in _check(_rules(body), INSTANCE)] == ["in-a", "in-b"]
    with_default = _rules(body, head='defaultPhase="only-a"')
    assert [e.id for e in _check(with_default, INSTANCE)] == ["in-a"]
    assert [e.id for e in _check(with_default, INSTANCE, phase="#ALL")] == ["in-a", "in-b"]
    with pytest.raises(SchematronUnusable, match="no phase 'missing'"):
        _check(_rules(body), INSTANCE, phase="missing")


def test_query_binding_xslt_has_xpath_1_semantics() -> None:
    # XPath 1.0 compares '10' > '9' as numbers (true), XPath 2.0 as strings (false).
    body = (
        '<sch:pattern><sch:rule context="t:root">'
        "<sch:assert id=\"numeric\" test=\"'10' &gt; '9'\">compared as strings</sch:assert>"
        "</sch:rule></sch:pattern>"
    )
    assert _check(_rules(body, binding="xslt"), INSTANCE) == []
    assert [e.id for e in _check(_rules(body, binding="xslt2"), INSTANCE)] == ["numeric"]


@pytest.mark.parametrize(
    ("body", "binding", "reason"),
    [
        ('<sch:include href="other.sch"/>', "xslt2", "sch:include"),
        ('<sch:pattern abstract="true" id="p"/>', "xslt2", "abstract patterns"),
        (
            '<sch:pattern><sch:rule context="*"><sch:extends rule="nowhere"/></sch:rule>'
            "</sch:pattern>",
            "xslt2",
            "no abstract rule 'nowhere'",
        ),
        ("<sch:pattern/>", "xquery", "queryBinding 'xquery'"),
        (
            '<sch:pattern><sch:rule context="t:item[">'
            '<sch:assert test="true()">x</sch:assert></sch:rule></sch:pattern>',
            "xslt2",
            "Saxon does not compile it",
        ),
    ],
)
def test_what_the_compiler_does_not_implement_is_refused(
    body: str, binding: str, reason: str
) -> None:
    with pytest.raises(SchematronUnusable, match=reason):
        _check(_rules(body, binding=binding), INSTANCE)


def test_a_dynamic_error_in_a_test_is_a_finding_not_a_crash() -> None:
    body = (
        '<sch:pattern><sch:rule context="t:item">'
        '<sch:assert id="cast" test="xs:integer(@code) gt 0">x</sch:assert>'
        "</sch:rule></sch:pattern>"
    )
    [error] = _check(_rules(body), INSTANCE)
    assert "not assessable" in error.message and "x" in error.message


# -- XBau 2.6's own rules ------------------------------------------------------------------


@pytest.fixture(scope="module")
def xbau_rules(corpus_dir: Path) -> list[CompiledSchematron]:
    folder = corpus_dir / "xbau-2.6" / "schematron"
    return [compile_schematron(p) for p in sorted(folder.glob("*.sch"))]


@pytest.fixture(scope="module")
def release_data_dir(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """A data folder with the XBau 2.6 release folder registered: XSDs and Schematron."""
    data_dir = tmp_path_factory.mktemp("release")
    ContractRegistry.for_data_dir(data_dir).add_schema_set(corpus_dir / "xbau-2.6")
    return data_dir


@pytest.fixture(scope="module")
def release_inspector(release_data_dir: Path) -> MessageInspector:
    return MessageInspector(release_data_dir)


XBAU_MESSAGES = [EXAMPLE_0200, *sorted(MESSAGES.glob("xbau-*.xml"))]


@pytest.mark.parametrize("message", XBAU_MESSAGES, ids=lambda p: p.name)
def test_committed_xbau_messages_meet_the_shipped_rules(
    release_inspector: MessageInspector, message: Path
) -> None:
    outcome = release_inspector.inspect(message.read_bytes()).validation
    assert (outcome.status, outcome.mode) == ("valid", "schematron"), outcome
    assert "xbau-schematron.sch" in (outcome.schema or "")
    assert "xbau-schematron-leere-elemente.sch" in (outcome.schema or "")


def test_a_broken_dvdv_kennung_fails_rule_sch_xbau_001(
    release_inspector: MessageInspector,
) -> None:
    raw = EXAMPLE_0200.read_bytes()
    invalid = _broken_leser(raw)
    # The XSD accepts it: only the business rule catches it.
    assert release_inspector.inspect(invalid, level="xsd").validation.status == "valid"
    with pytest.raises(MessageRejected) as caught:
        release_inspector.inspect(invalid)
    rejected = caught.value
    assert (rejected.step, rejected.reason) == ("validate", "schematron-invalid")
    [error] = rejected.errors
    assert error.id == "sch-xbau-001"
    assert error.path == "/xbau:baugenehmigung.antrag.0200/nachrichtenkopf.g2g"
    assert error.line == raw[: raw.index(b"<nachrichtenkopf.g2g>")].count(b"\n") + 1
    assert 'Die Behördenkennung des Elements "leser"' in error.message
    assert "[sch-xbau-001]" in rejected.detail


def test_an_empty_element_fails_rule_sch_xbau_gen_001(
    release_inspector: MessageInspector,
) -> None:
    raw = EXAMPLE_0200.read_bytes()
    name = b"<name>Bauportal Schleswig-Holstein</name>"
    assert raw.count(name) == 1
    invalid = raw.replace(name, b"<name>  </name>")
    assert release_inspector.inspect(invalid, level="xsd").validation.status == "valid"
    outcome = release_inspector.inspect(invalid, require_valid=False).validation
    [error] = outcome.errors
    assert error.id == "sch-xbau-gen-001"
    assert error.path == "/xbau:baugenehmigung.antrag.0200/nachrichtenkopf.g2g/autor/name"


def test_the_rules_fire_only_in_their_message_types_context(
    xbau_rules: list[CompiledSchematron],
) -> None:
    # sch-xbau-001's contexts name each message type: the same header under a root no rule
    # names is not checked by it (the empty-elements rule applies everywhere).
    raw = _broken_leser(EXAMPLE_0200.read_bytes())
    renamed = raw.replace(b"baugenehmigung.antrag.0200", b"unbekannt.nachricht.9999")
    root = etree.fromstring(renamed)
    assert [e for rules in xbau_rules for e in rules.findings(root)] == []


def test_contracts_add_refuses_a_set_whose_rules_do_not_compile(
    tmp_path: Path, corpus_dir: Path
) -> None:
    release = tmp_path / "xbau-2.6"
    shutil.copytree(corpus_dir / "xbau-2.6" / "xsd", release / "xsd")
    (release / "schematron").mkdir()
    (release / "schematron" / "xbau-schematron.sch").write_text(
        _rules(
            '<sch:pattern><sch:rule context="t:item["><sch:assert test="1">x</sch:assert>'
            "</sch:rule></sch:pattern>"
        )
    )
    registry = ContractRegistry.for_data_dir(tmp_path / "data")
    with pytest.raises(ContractError, match=r"xbau-schematron\.sch: Saxon does not compile it"):
        registry.add_schema_set(release)
    assert registry.store.sets() == []


def test_level_schematron_is_not_performed_without_the_rules_in_the_set(
    inspector: MessageInspector,
) -> None:
    # registered_data_dir holds only xbau-2.6/xsd: the XSD verdict stands, with a note.
    invalid = _broken_leser(EXAMPLE_0200.read_bytes())
    outcome = inspector.inspect(invalid, level="schematron").validation
    assert (outcome.status, outcome.mode) == ("valid", "lxml")
    assert outcome.note and "Schematron not performed" in outcome.note
    assert "xbau-schematron.sch" in outcome.note


def test_validate_cli_level_schematron(
    release_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = tmp_path / "antrag.xml"
    message.write_bytes(_broken_leser(EXAMPLE_0200.read_bytes()))
    data = ["--data-dir", str(release_data_dir)]
    assert main(["validate", str(message), "--level", "xsd", *data]) == 0
    capsys.readouterr()
    assert main(["validate", str(message), "--level", "schematron", *data]) == 1
    out = capsys.readouterr().out
    assert "INVALID xbau 2.6 baugenehmigung.antrag.0200 [schematron:" in out
    assert "[sch-xbau-001]" in out and "nachrichtenkopf.g2g" in out
    assert main(["validate", str(message), "--json", *data]) == 1  # the contract's level
    [report] = json.loads(capsys.readouterr().out)
    assert report["status"] == "invalid" and report["mode"] == "schematron"
    assert report["errors"][0]["id"] == "sch-xbau-001"
    assert report["errors"][0]["line"] == 4
