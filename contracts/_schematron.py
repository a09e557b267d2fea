"""ISO Schematron (ISO/IEC 19757-3) as the third validation level: compile a ``.sch`` to XSLT,
run it with Saxon (saxonche), report each failed assert and each successful report.

The compiler is small and refuses what it does not implement (``sch:include``, abstract
patterns, ``extends href``, ``documents``, query bindings other than XSLT 1/2/3) instead of
checking less than the rules say. What it implements follows the standard's semantics:

* every pattern is one traversal of the whole instance (a mode of the stylesheet) that visits
  the document node, every element, attribute, text, comment and processing instruction;
* within a pattern a node fires **only the first rule** (in document order) whose context
  matches it: each rule is a template with a priority falling by position, and a node that
  no rule matches is passed on to its attributes and children by a lowest-priority template;
* abstract rules are inlined where a rule ``extends`` them (recursively, cycles refused);
* ``let`` of the schema, the active phase and the pattern is evaluated with the instance's
  root as context, ``let`` of a rule with the rule's context node, as the standard says;
* a phase (``phase`` argument, else ``defaultPhase``, else ``#ALL``) selects the patterns;
* assert and report texts keep ``name`` and ``value-of`` (evaluated in the rule's context),
  and the texts of the ``diagnostics`` an assertion names.

Saxon-HE has no line numbers for the instance, so the stylesheet reports where a finding is
as the chain of element positions (``1/4/2``), which is resolved against the lxml tree the
hub already parsed: the finding gets that element's XPath (``getpath``) and source line.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ._compile import SchemaUnusable
from ._safexml import parse_xml
from .validation import SchemaError

__all__ = [
    "SCH_NS",
    "CompiledSchematron",
    "SchematronUnusable",
    "check_schematron",
    "compile_schematron",
    "schematron_to_xslt",
]

log = logging.getLogger(__name__)

SCH_NS = "http://purl.oclc.org/dsdl/schematron"
_XSL_NS = "http://www.w3.org/1999/XSL/Transform"
_XS_NS = "http://www.w3.org/2001/XMLSchema"
# The generated stylesheet's own function and result elements live here.
_OWN_NS = "urn:poststelle:schematron"
_S = f"{{{SCH_NS}}}"
_X = f"{{{_XSL_NS}}}"

# queryBinding -> the XSLT version the generated stylesheet declares. "xslt" (the default,
# XPath 1.0) runs in XSLT 3's backwards-compatible mode, which gives XPath 1.0 semantics.
_BINDINGS = {None: "1.0", "xslt": "1.0", "xslt2": "2.0", "xslt3": "3.0"}
_MAX_FINDINGS = 50
_UNSUPPORTED = {
    "include": "sch:include (resolve includes before registering the rules)",
    "param": "sch:param (abstract patterns)",
}


class SchematronUnusable(SchemaUnusable):
    """A Schematron file the compiler refuses, or that Saxon does not compile."""


@dataclass(frozen=True)
class _Finding:
    kind: str  # "assert" (failed) or "report" (successful)
    id: str | None
    location: str  # element positions from the root, e.g. "1/4/2", then "@{ns}name" or "#text"
    text: str


# -- compiling ----------------------------------------------------------------------------


def _unusable(where: str, detail: str) -> SchematronUnusable:
    return SchematronUnusable(f"{where}: {detail}")


class _Compiler:
    def __init__(self, schema: etree._Element, where: str, phase: str | None) -> None:
        self.schema = schema
        self.where = where
        self.phase = phase
        self.abstract: dict[str, etree._Element] = {}
        self.diagnostics: dict[str, etree._Element] = {}

    def compile(self) -> etree._Element:
        schema = self.schema
        if schema.tag != f"{_S}schema":
            raise _unusable(self.where, f"root element is {schema.tag}, not sch:schema")
        binding = schema.get("queryBinding")
        binding = binding.lower() if binding else None
        if binding not in _BINDINGS:
            raise _unusable(self.where, f"queryBinding {binding!r} is not supported")
        for element in schema.iter(f"{_S}*"):
            name = etree.QName(element).localname
            if name in _UNSUPPORTED:
                raise _unusable(self.where, f"{_UNSUPPORTED[name]} is not supported")
            if name == "pattern" and (element.get("abstract") == "true" or element.get("is-a")):
                raise _unusable(self.where, "abstract patterns (is-a) are not supported")
            if name == "pattern" and element.get("documents"):
                raise _unusable(self.where, "pattern/@documents is not supported")
            if name == "extends" and element.get("href"):
                raise _unusable(self.where, "extends/@href is not supported")
            if name == "rule" and element.get("abstract") == "true":
                rule_id = element.get("id")
                if not rule_id:
                    raise _unusable(self.where, "an abstract rule without id")
                self.abstract[rule_id] = element
            if name == "diagnostic" and element.get("id"):
                self.diagnostics[element.get("id", "")] = element

        nsmap: dict[str | None, str] = {
            "xsl": _XSL_NS,
            "xs": _XS_NS,
            "psch": _OWN_NS,
        }
        # The instance's prefixes are those of sch:ns; prefixes the .sch itself declares
        # (xs, often) are honoured too, as every published implementation does.
        for prefix, uri in schema.nsmap.items():
            if prefix and uri not in (SCH_NS, _XSL_NS) and prefix not in ("xsl", "psch"):
                nsmap[prefix] = uri
        for ns in schema.iter(f"{_S}ns"):
            prefix, uri = ns.get("prefix"), ns.get("uri")
            if not prefix or uri is None:
                raise _unusable(self.where, "sch:ns needs prefix and uri")
            if prefix in ("xsl", "psch"):
                raise _unusable(self.where, f"sch:ns prefix {prefix!r} is reserved here")
            if prefix != "xml":
                nsmap[prefix] = uri
        sheet = etree.Element(
            f"{_X}stylesheet",
            nsmap=nsmap,
            attrib={
                "version": _BINDINGS[binding],
                "exclude-result-prefixes": "#all",
            },
        )
        for child in schema:  # XSLT keys and functions the rules call
            if child.tag in (f"{_X}key", f"{_X}function"):
                sheet.append(_copy(child))
        sheet.append(_location_function())
        patterns, root_lets = self._active_patterns()
        main = etree.SubElement(sheet, f"{_X}template", match="/")
        result = etree.SubElement(main, f"{{{_OWN_NS}}}findings")
        for index, pattern in enumerate(patterns):
            mode = f"psch:p{index}"
            etree.SubElement(result, f"{_X}apply-templates", select=".", mode=mode)
            self._pattern(sheet, pattern, mode, [*root_lets, *pattern.findall(f"{_S}let")])
        return sheet

    def _active_patterns(self) -> tuple[list[etree._Element], list[etree._Element]]:
        schema = self.schema
        patterns = schema.findall(f"{_S}pattern")
        lets = schema.findall(f"{_S}let")
        phase = self.phase or schema.get("defaultPhase") or "#ALL"
        if phase == "#DEFAULT":
            phase = schema.get("defaultPhase") or "#ALL"
        if phase == "#ALL":
            return patterns, lets
        chosen = [p for p in schema.findall(f"{_S}phase") if p.get("id") == phase]
        if not chosen:
            raise _unusable(self.where, f"no phase {phase!r}")
        active = {a.get("pattern") for a in chosen[0].findall(f"{_S}active")}
        return [p for p in patterns if p.get("id") in active], [
            *lets,
            *chosen[0].findall(f"{_S}let"),
        ]

    def _pattern(
        self, sheet: etree._Element, pattern: etree._Element, mode: str, root_lets: list[Any]
    ) -> None:
        rules = [r for r in pattern.findall(f"{_S}rule") if r.get("abstract") != "true"]
        # Every node is visited unless no rule of the pattern can match anything but elements
        # (and the document node): then the traversal skips attributes and text, which is
        # most of a message's nodes, without changing which rule fires where.
        visit = "*" if all(_elements_only(r.get("context") or "") for r in rules) else "@*|node()"
        for position, rule in enumerate(rules):
            context = rule.get("context")
            if not context:
                raise _unusable(self.where, "a rule that is not abstract needs a context")
            template = etree.SubElement(
                sheet,
                f"{_X}template",
                match=context,
                mode=mode,
                # First matching rule wins: earlier rules have higher priorities.
                priority=str(len(rules) - position),
            )
            for let in root_lets:
                _root_variable(template, let)
            for item in self._body(rule, set()):
                if item.tag == f"{_S}let":
                    _variable(template, item)
                else:
                    self._assertion(template, item, rule)
            _continue(template, mode, visit)
        fallback = etree.SubElement(
            sheet, f"{_X}template", match="/|@*|node()", mode=mode, priority="-10"
        )
        _continue(fallback, mode, visit)

    def _body(self, rule: etree._Element, seen: set[str]) -> Iterable[etree._Element]:
        """The rule's lets, asserts and reports, with the abstract rules it extends inlined."""
        for child in rule:
            if child.tag in (f"{_S}let", f"{_S}assert", f"{_S}report"):
                yield child
            elif child.tag == f"{_S}extends":
                target = child.get("rule", "")
                if target in seen:
                    raise _unusable(self.where, f"abstract rule {target!r} extends itself")
                if target not in self.abstract:
                    raise _unusable(self.where, f"extends names no abstract rule {target!r}")
                yield from self._body(self.abstract[target], {*seen, target})

    def _assertion(
        self, template: etree._Element, item: etree._Element, rule: etree._Element
    ) -> None:
        test = item.get("test")
        if not test:
            raise _unusable(self.where, f"sch:{etree.QName(item).localname} without test")
        failed = f"not({test})" if item.tag == f"{_S}assert" else test
        condition = etree.SubElement(template, f"{_X}if", test=failed)
        finding = etree.SubElement(condition, f"{{{_OWN_NS}}}finding")
        kind = etree.QName(item).localname
        _attribute(finding, "kind", literal=kind)
        _attribute(finding, "id", literal=item.get("id") or rule.get("id") or "")
        subject = item.get("subject") or rule.get("subject")
        where = f"psch:location(({subject})[1])" if subject else "psch:location(.)"
        _attribute(finding, "location", select=where)
        self._text(etree.SubElement(finding, f"{{{_OWN_NS}}}text"), item)
        for name in (item.get("diagnostics") or "").split():
            if name not in self.diagnostics:
                raise _unusable(self.where, f"diagnostics names no diagnostic {name!r}")
            self._text(
                etree.SubElement(finding, f"{{{_OWN_NS}}}diagnostic"), self.diagnostics[name]
            )

    def _text(self, target: etree._Element, source: etree._Element) -> None:
        """Assertion text as XSLT: literal text, ``name`` and ``value-of``; other markup
        (``emph``, ``dir``, ``span``, foreign elements) contributes its text."""
        if source.text:
            etree.SubElement(target, f"{_X}text").text = source.text
        for child in source:
            if child.tag == f"{_S}name":
                select = f"name({child.get('path') or '.'})"
                etree.SubElement(target, f"{_X}value-of", select=select)
            elif child.tag == f"{_S}value-of":
                etree.SubElement(target, f"{_X}value-of", select=child.get("select", "''"))
            elif isinstance(child.tag, str):
                self._text(target, child)
            if child.tail:
                etree.SubElement(target, f"{_X}text").text = child.tail


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


def _attribute(
    target: etree._Element, name: str, *, literal: str | None = None, select: str | None = None
) -> None:
    attribute = etree.SubElement(target, f"{_X}attribute", name=name)
    if select is not None:
        attribute.set("select", select)
    else:
        etree.SubElement(attribute, f"{_X}text").text = literal or ""


def _variable(template: etree._Element, let: etree._Element) -> None:
    variable = etree.SubElement(template, f"{_X}variable", name=let.get("name", ""))
    if let.get("value") is not None:
        variable.set("select", let.get("value", ""))
    else:  # element content is the value (ISO 2016)
        for child in let:
            variable.append(_copy(child))


def _root_variable(template: etree._Element, let: etree._Element) -> None:
    """A schema, phase or pattern ``let``: evaluated with the instance root as context."""
    variable = etree.SubElement(
        template, f"{_X}variable", name=let.get("name", ""), attrib={"as": "item()*"}
    )
    if let.get("value") is None:
        for child in let:
            variable.append(_copy(child))
        return
    at_root = etree.SubElement(variable, f"{_X}for-each", select="root(.)")
    etree.SubElement(at_root, f"{_X}sequence", select=let.get("value", ""))


def _continue(template: etree._Element, mode: str, visit: str) -> None:
    etree.SubElement(template, f"{_X}apply-templates", select=visit, mode=mode)


# A pattern step that names any of these may match a node that is not an element (or matches
# through a variable or function whose result we cannot see): such patterns visit all nodes.
# A false alarm ("attribute" inside an element name) costs speed, never a verdict.
_ANY_NODE_STEP = re.compile(
    r"@|attribute|text\(|comment\(|processing-instruction\(|node\(|\$|\("
    r"|(?<![\w.\-])\."  # the context item "." (not the dot inside a name like kopf.g2g)
)


def _elements_only(context: str) -> bool:
    """Whether an XSLT pattern can only match elements or the document node."""
    return _ANY_NODE_STEP.search(_strip_predicates(context)) is None


def _strip_predicates(pattern: str) -> str:
    """The pattern's steps without their predicates (``a[b/text()]/c`` -> ``a/c``): what a
    predicate says never makes the step match another kind of node."""
    out, depth, quote = [], 0, ""
    for char in pattern:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and depth:
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _location_function() -> etree._Element:
    function = etree.Element(
        f"{_X}function", name="psch:location", attrib={"as": "xs:string", "version": "3.0"}
    )
    etree.SubElement(function, f"{_X}param", name="node", attrib={"as": "node()?"})
    etree.SubElement(
        function,
        f"{_X}sequence",
        select=(
            "string-join(for $e in $node/ancestor-or-self::* "
            "return string(count($e/preceding-sibling::*) + 1), '/') || "
            "(if ($node instance of attribute()) "
            "then '@{' || namespace-uri($node) || '}' || local-name($node) "
            "else if ($node instance of element() or empty($node) "
            "or $node instance of document-node()) then '' "
            "else '#' || (if ($node instance of text()) then 'text()' "
            "else if ($node instance of comment()) then 'comment()' "
            "else 'processing-instruction()'))"
        ),
    )
    return function


def schematron_to_xslt(sch: bytes, *, where: str = "schematron", phase: str | None = None) -> str:
    """The XSLT stylesheet a Schematron schema compiles to (for inspection and tests)."""
    try:
        schema = etree.fromstring(
            sch, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        )
    except etree.XMLSyntaxError as exc:
        raise _unusable(where, f"not well-formed: {exc}") from exc
    sheet = _Compiler(schema, where, phase).compile()
    return str(etree.tostring(sheet, encoding="unicode"))


# -- running ------------------------------------------------------------------------------

_saxon_lock = threading.Lock()
_saxon: Any = None


def _processor() -> Any:
    # One Saxon processor per process: SaxonC keeps one Java-side configuration, and
    # creating it costs more than validating a message.
    global _saxon
    if _saxon is None:
        from saxonche import PySaxonProcessor  # only the schematron level pays for it

        _saxon = PySaxonProcessor(license=False)
    return _saxon


def _resolve(root: etree._Element, location: str) -> tuple[int | None, str]:
    """Element positions (``1/4/2``) plus an attribute or node suffix -> (line, XPath)."""
    positions, _, rest = location.partition("@")
    suffix = ""
    if not rest and "#" in positions:
        positions, _, node = positions.partition("#")
        suffix = f"/{node}"
    element: etree._Element | None = None
    steps = [int(p) for p in positions.split("/") if p]
    if steps and steps[0] == 1:
        element = root
        for step in steps[1:]:
            children = [c for c in element if isinstance(c.tag, str)]
            if step > len(children):
                element = None
                break
            element = children[step - 1]
    if element is None:
        return None, "/"
    if rest:
        namespace, _, local = rest[1:].partition("}")
        prefix = next((p for p, u in element.nsmap.items() if u == namespace and p), None)
        suffix = f"/@{prefix}:{local}" if namespace and prefix else f"/@{local}"
    return element.sourceline, element.getroottree().getpath(element) + suffix


class CompiledSchematron:
    """One Schematron file compiled for Saxon; safe to use from any thread."""

    def __init__(self, name: str, sha256: str, xslt: str) -> None:
        self.name = name
        self.sha256 = sha256
        self.xslt = xslt
        from saxonche import PySaxonApiError

        processor = _processor()
        with _saxon_lock:
            compiler = processor.new_xslt30_processor()
            try:
                self._executable = compiler.compile_stylesheet(stylesheet_text=xslt)
            except PySaxonApiError as exc:
                detail = " ".join(str(exc).split())
                raise _unusable(name, f"Saxon does not compile it: {detail}") from exc

    def findings(self, root: etree._Element) -> list[SchemaError]:
        """Failed asserts and successful reports as errors with id, XPath, line and text."""
        return check_schematron([self], root)

    def _run(self, node: Any) -> str:
        output: str = self._executable.transform_to_string(xdm_node=node)
        return output

    def _read(self, output: str, root: etree._Element) -> list[SchemaError]:
        if "kind=" not in output:  # nothing failed: skip parsing the empty result
            return []
        result = parse_xml(output.encode("utf-8"))
        errors = []
        for finding in result.iterchildren(f"{{{_OWN_NS}}}finding"):
            text = " ".join((finding.findtext(f"{{{_OWN_NS}}}text") or "").split())
            diagnostics = [
                " ".join((d.text or "").split())
                for d in finding.iterchildren(f"{{{_OWN_NS}}}diagnostic")
            ]
            if diagnostics:
                text = f"{text} ({'; '.join(diagnostics)})"
            line, path = _resolve(root, finding.get("location", ""))
            errors.append(
                SchemaError(line=line, path=path, message=text, id=finding.get("id") or None)
            )
            if len(errors) >= _MAX_FINDINGS:
                break
        return errors


def _not_assessable(name: str, exc: Exception) -> SchemaError:
    detail = " ".join(str(exc).split())
    return SchemaError(line=None, path=None, message=f"{name}: not assessable: {detail}")


def check_schematron(
    rules: Sequence[CompiledSchematron], root: etree._Element
) -> list[SchemaError]:
    """The findings of several Schematron files on one instance, which Saxon parses once
    (parsing costs about as much as running XBau's rules). A dynamic error in a test (a
    failed cast) makes that file's verdict one finding "not assessable", not a crash."""
    if not rules:
        return []
    from saxonche import PySaxonApiError

    instance = etree.tostring(root, encoding="unicode")
    processor = _processor()
    outputs: list[tuple[CompiledSchematron, str | Exception]] = []
    with _saxon_lock:  # an executable keeps per-run state: one run at a time
        try:
            node = processor.parse_xml(xml_text=instance)
        except PySaxonApiError as exc:
            return [_not_assessable(rules[0].name, exc)]
        for compiled in rules:
            try:
                outputs.append((compiled, compiled._run(node)))
            except PySaxonApiError as exc:
                outputs.append((compiled, exc))
    errors: list[SchemaError] = []
    for compiled, output in outputs:
        if isinstance(output, Exception):
            errors.append(_not_assessable(compiled.name, output))
        else:
            errors.extend(compiled._read(output, root))
    return errors[:_MAX_FINDINGS]


_compiled: dict[tuple[str, str | None], CompiledSchematron] = {}
_compiled_lock = threading.Lock()


def compile_schematron(path: Path, *, phase: str | None = None) -> CompiledSchematron:
    """The compiled form of a ``.sch`` file, kept per process by its content's digest: the
    same rules registered in several sets (or read again after a reload) compile once.
    Saxon-HE cannot save a compiled stylesheet, so there is nothing worth keeping on disk."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise _unusable(path.name, f"unreadable: {exc}") from exc
    key = (hashlib.sha256(content).hexdigest(), phase)
    with _compiled_lock:
        found = _compiled.get(key)
        if found is None:
            started = time.perf_counter()
            found = CompiledSchematron(
                path.name, key[0], schematron_to_xslt(content, where=path.name, phase=phase)
            )
            _compiled[key] = found
            log.info(
                "schematron compiled file=%s sha256=%s ms=%.0f",
                path.name,
                key[0][:12],
                (time.perf_counter() - started) * 1000,
            )
    return found
