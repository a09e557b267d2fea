"""``xs:ID`` / ``xs:IDREF`` integrity for the lxml fast path, which libxml2 does not check.

libxml2 validates an ID's lexical form (and catches some duplicate ID *attributes*), but never
duplicate IDs in element content nor IDREF(S) that point nowhere, so without this a message
with a dangling reference is valid by default and invalid in strict mode.

At schema-compile time :func:`compile_identity_rules` walks the components of the set (through
xmlschema, which resolves includes, imports, redefines and chameleon includes exactly as strict
mode does) and records, per element name, which attributes and which simple content are
ID/IDREF/IDREFS-typed, including types derived from them by restriction, list and union, and
for wildcards which children and attributes are assessed at all. After lxml has validated a
message, :meth:`IdentityRules.check` visits only the elements that can carry an ID or IDREF
(a C-level ``iter`` over their names, an XPath for ``xsi:type``), ~10 µs for a 5 KB message.

Where one element name is declared with different ID-ness in different places the rules are
not exact by name; :attr:`IdentityRules.exact` is then false and the caller asks the strict
engine instead (none of the shipped standards does that).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .validation import SchemaError

__all__ = ["IdentityRules", "compile_identity_rules"]

log = logging.getLogger(__name__)

_XSD = "http://www.w3.org/2001/XMLSchema"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
# Selecting the attributes is ~8x faster in libxml2 than elements with an attribute predicate.
_XSI_TYPES = etree.XPath(
    "descendant-or-self::*/@xsi:type",
    namespaces={"xsi": "http://www.w3.org/2001/XMLSchema-instance"},
)


@dataclass(frozen=True)
class _Tokens:
    """How to read ID and IDREF tokens out of one simple value.

    ``kind`` is ``ID`` or ``IDREF`` (one token), ``list`` (each item read by ``item``) or
    ``union`` (the first member type that accepts the value decides, as XSD 1.0 §3.14.4 says).
    """

    kind: str
    item: _Tokens | None = None
    members: tuple[tuple[Any, _Tokens | None], ...] = ()

    def read(self, value: str) -> Iterator[tuple[str, str]]:
        if self.kind in ("ID", "IDREF"):
            yield self.kind, value.strip()
        elif self.kind == "list" and self.item is not None:
            for token in value.split():
                yield from self.item.read(token)
        else:
            for member_type, tokens in self.members:
                if member_type.is_valid(value):
                    if tokens is not None:
                        yield from tokens.read(value)
                    return


@dataclass(frozen=True)
class _Wildcard:
    """A content model with an element wildcard: which children its declarations cover."""

    declared: frozenset[str]
    process_contents: str  # skip: not assessed; lax/strict: assessed by the global declaration


@dataclass(frozen=True)
class _ElementRule:
    content: _Tokens | None = None
    content_default: str | None = None
    # (name, tokens, default or fixed value): an absent IDREF attribute with a default still
    # refers (the default is in the infoset); ID itself may carry no value constraint.
    attributes: tuple[tuple[str, _Tokens, str | None], ...] = ()
    any_attribute: str | None = None  # processContents of an attribute wildcard, if any
    wildcard: _Wildcard | None = None

    @property
    def empty(self) -> bool:
        return self.content is None and not self.attributes and self.wildcard is None


_NOTHING = _ElementRule()


@dataclass
class IdentityRules:
    """What to check in an instance; empty rules make :meth:`check` a no-op."""

    elements: dict[str, _ElementRule] = field(default_factory=dict)
    global_elements: dict[str, _ElementRule] = field(default_factory=dict)
    global_attributes: dict[str, _Tokens] = field(default_factory=dict)
    types: dict[str, _ElementRule] = field(default_factory=dict)
    # Names declared with different ID-ness in different places, told apart by the parent
    # (XBau: ``linie`` is a gml:Curve with gml:id in one type and a plain wrapper in another).
    in_context: dict[tuple[str, str], _ElementRule] = field(default_factory=dict)
    contextual: frozenset[str] = frozenset()
    # Without skip wildcards no subtree is exempt, and a C-level ``iter`` over the few element
    # names that can carry IDs replaces the walk (the cheap path every shipped standard takes).
    prune: bool = False
    candidates: tuple[str, ...] = ()
    exact: bool = True
    ambiguous: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.candidates or self.types or self.prune)

    def _relevant(self, rule: _ElementRule) -> bool:
        wild = rule.any_attribute in ("lax", "strict") and bool(self.global_attributes)
        return rule.content is not None or bool(rule.attributes) or wild

    def check(self, root: etree._Element) -> list[SchemaError]:
        """Duplicate IDs (at the repeated occurrence), then IDREFs that match no ID."""
        if self.empty:
            return []
        ids: dict[str, etree._Element] = {}
        refs: list[tuple[str, etree._Element]] = []
        errors: list[SchemaError] = []
        tree = root.getroottree()
        if self.prune:
            self._walk(root, ids, refs, errors, tree)
        else:
            typed = bool(self.types)
            for element in root.iter(*self.candidates):
                if typed and element.get(_XSI_TYPE) is not None:
                    continue  # its type is not the declared one: see below
                tag: str = element.tag  # type: ignore[assignment]
                if tag in self.contextual:
                    parent = element.getparent()
                    rule = self.in_context.get(
                        ("" if parent is None else str(parent.tag), tag)
                    ) or self.global_elements.get(tag, _NOTHING)
                else:
                    rule = self.elements.get(tag) or self.global_elements.get(tag, _NOTHING)
                self._collect(element, rule, ids, refs, errors, tree)
            if typed:
                for value in _XSI_TYPES(root):  # type: ignore[union-attr]
                    element = value.getparent()  # type: ignore[union-attr]
                    rule = self._rule_of_type(element, str(value))
                    self._collect(element, rule, ids, refs, errors, tree)
        for token, element in refs:
            if token not in ids:
                errors.append(_error(element, tree, f"IDREF '{token}' not found in XML document"))
        return errors

    def _walk(
        self,
        root: etree._Element,
        ids: dict[str, etree._Element],
        refs: list[tuple[str, etree._Element]],
        errors: list[SchemaError],
        tree: etree._ElementTree,
    ) -> None:
        # (element, rule of the wildcard it may fall under): subtrees under a skip wildcard
        # are not assessed at all, so nothing in them counts (XSD 1.0 §3.10.1).
        stack: list[tuple[etree._Element, _Wildcard | None, str]] = [(root, None, "")]
        while stack:
            element, under, parent = stack.pop()
            tag: str = element.tag  # type: ignore[assignment]
            if under is not None and tag not in under.declared:
                if under.process_contents == "skip":
                    continue
                rule = self.global_elements.get(tag, _NOTHING)
            elif tag in self.contextual:
                rule = self.in_context.get((parent, tag), _NOTHING)
            else:
                rule = self.elements.get(tag, _NOTHING)
            if self.types:
                xsi_type = element.get(_XSI_TYPE)
                if xsi_type is not None:
                    rule = self._rule_of_type(element, xsi_type)
            if not rule.empty:
                self._collect(element, rule, ids, refs, errors, tree)
            children = [
                (child, rule.wildcard, tag) for child in element if isinstance(child.tag, str)
            ]
            stack.extend(reversed(children))

    def _rule_of_type(self, element: etree._Element, value: str) -> _ElementRule:
        prefix, _, local = value.strip().rpartition(":")
        namespace = element.nsmap.get(prefix or None)
        name = f"{{{namespace}}}{local}" if namespace else local
        # The named type replaces the declared one entirely (it is derived from it).
        return self.types.get(name, _NOTHING)

    def _collect(
        self,
        element: etree._Element,
        rule: _ElementRule,
        ids: dict[str, etree._Element],
        refs: list[tuple[str, etree._Element]],
        errors: list[SchemaError],
        tree: etree._ElementTree,
    ) -> None:
        found: list[tuple[str, str]] = []
        attrib = element.attrib
        declared = set()
        for name, tokens, default in rule.attributes:
            declared.add(name)
            value = attrib.get(name, default)
            if value is not None:
                found.extend(tokens.read(value))
        if rule.any_attribute not in (None, "skip"):
            for name, value in attrib.items():
                wild = self.global_attributes.get(str(name))
                if wild is not None and name not in declared:
                    found.extend(wild.read(str(value)))
        if rule.content is not None and attrib.get(_XSI_NIL, "").strip() not in ("true", "1"):
            # Simple content: text around comments and processing instructions counts.
            text = "".join([element.text or "", *(child.tail or "" for child in element)])
            if not text and rule.content_default is not None:
                text = rule.content_default
            found.extend(rule.content.read(text))
        for kind, token in found:
            if kind == "IDREF":
                refs.append((token, element))
            elif token in ids:
                errors.append(_error(element, tree, f"duplicated xs:ID value '{token}'"))
            else:
                ids[token] = element


def _error(element: etree._Element, tree: etree._ElementTree, message: str) -> SchemaError:
    return SchemaError(line=element.sourceline, path=tree.getpath(element), message=message)


# -- compile time ---------------------------------------------------------------------------


class _Compiler:
    def __init__(self, schema: Any) -> None:
        types = schema.maps.types
        self._id = types[f"{{{_XSD}}}ID"]
        self._idref = types[f"{{{_XSD}}}IDREF"]
        self._memo: dict[int, _Tokens | None] = {}

    def tokens(self, xsd_type: Any) -> _Tokens | None:
        key = id(xsd_type)
        if key not in self._memo:
            self._memo[key] = None  # recursion guard
            self._memo[key] = self._tokens(xsd_type)
        return self._memo[key]

    def _tokens(self, xsd_type: Any) -> _Tokens | None:
        if xsd_type is None:
            return None
        if not xsd_type.is_simple():
            return self.tokens(xsd_type.content) if xsd_type.has_simple_content() else None
        if (xsd_type.is_union() and not hasattr(xsd_type, "member_types")) or (
            xsd_type.is_list() and not hasattr(xsd_type, "item_type")
        ):
            return self.tokens(xsd_type.base_type)  # a restriction of a list or union
        if xsd_type.is_union():
            members = tuple((m, self.tokens(m)) for m in xsd_type.member_types)
            return _Tokens("union", members=members) if any(t for _, t in members) else None
        if xsd_type.is_list():
            item = self.tokens(xsd_type.item_type)
            return _Tokens("list", item=item) if item is not None else None
        if xsd_type.is_derived(self._id):
            return _Tokens("ID")
        if xsd_type.is_derived(self._idref):
            return _Tokens("IDREF")
        return None

    def rule(self, xsd_type: Any, default: str | None = None) -> _ElementRule:
        content = self.tokens(xsd_type)
        attributes: list[tuple[str, _Tokens, str | None]] = []
        any_attribute = None
        group = getattr(xsd_type, "attributes", None) or {}
        for name, attribute in group.items():
            if name is None:
                any_attribute = attribute.process_contents
                continue
            tokens = self.tokens(attribute.type)
            if tokens is not None:
                value = attribute.fixed if attribute.fixed is not None else attribute.default
                attributes.append((name, tokens, value))
        wildcard = None
        if not xsd_type.is_simple():
            wildcard = self._wildcard(xsd_type.content)
        return _ElementRule(
            content,
            default if content is not None else None,
            tuple(sorted(attributes, key=lambda a: a[0])),
            any_attribute,
            wildcard,
        )

    @staticmethod
    def _wildcard(model: Any) -> _Wildcard | None:
        from xmlschema.validators import XsdAnyElement

        declared: set[str] = set()
        modes: set[str] = set()
        for particle in _particles(model, XsdAnyElement):
            if isinstance(particle, XsdAnyElement):
                modes.add(particle.process_contents)
            elif particle.name:
                declared.add(particle.name)
        if not modes:
            return None
        # Several wildcards in one model: the least assessing one is the safe reading for
        # "not counted"; XÖV content models have at most one.
        mode = next(m for m in ("skip", "lax", "strict") if m in modes)
        return _Wildcard(frozenset(declared), mode)


def _particles(model: Any, *also: type) -> Iterator[Any]:
    """The element declarations (and ``also`` particles) of a content model, groups unfolded."""
    from xmlschema.validators import XsdElement, XsdGroup

    if not isinstance(model, XsdGroup):
        return
    groups = [model]
    while groups:
        for particle in groups.pop():
            if isinstance(particle, XsdGroup):
                groups.append(particle)
            elif isinstance(particle, (XsdElement, *also)):
                yield particle


def compile_identity_rules(schema: Any) -> IdentityRules:
    """The ID/IDREF rules of a compiled xmlschema schema (every namespace of its set)."""
    from xmlschema.validators import XsdAttribute, XsdElement

    compiler = _Compiler(schema)
    by_name: dict[str, set[_ElementRule]] = {}
    rules = IdentityRules()
    for component in schema.maps.iter_components():
        owner = getattr(component, "schema", None)
        if owner is None or owner.target_namespace == _XSD:
            continue  # the meta-schema describes schemas, not messages
        if isinstance(component, XsdElement) and component.name:
            value = component.fixed if component.fixed is not None else component.default
            rule = compiler.rule(component.type, value)
            by_name.setdefault(component.name, set()).add(rule)
            if component.is_global() and not rule.empty:
                rules.global_elements[component.name] = rule
        elif isinstance(component, XsdAttribute) and component.name and component.is_global():
            tokens = compiler.tokens(component.type)
            if tokens is not None:
                rules.global_attributes[component.name] = tokens
    for name, xsd_type in schema.maps.types.items():
        # xsi:type may name any global type, built-in xs:ID/xs:IDREF(S) included.
        rule = compiler.rule(xsd_type)
        if not rule.empty:
            rules.types[name] = rule
    contextual = set()
    for name, found in by_name.items():
        if len(found) > 1:
            contextual.add(name)
        elif found != {_NOTHING}:
            rules.elements[name] = next(iter(found))
    in_context: dict[tuple[str, str], set[_ElementRule]] = {}
    if contextual:
        for component in schema.maps.iter_components(XsdElement):
            if not component.name or component.type.is_simple():
                continue
            for child in _particles(component.type.content):
                if child.name in contextual:
                    value = child.fixed if child.fixed is not None else child.default
                    in_context.setdefault((component.name, child.name), set()).add(
                        compiler.rule(child.type, value)
                    )
    ambiguous = sorted({key[1] for key, found in in_context.items() if len(found) > 1})
    rules.in_context = {key: next(iter(found)) for key, found in in_context.items()}
    rules.contextual = frozenset(contextual)
    rules.ambiguous = tuple(ambiguous)
    rules.exact = not ambiguous
    every = [*rules.elements.values(), *rules.in_context.values(), *rules.types.values()]
    rules.prune = any(r.wildcard and r.wildcard.process_contents == "skip" for r in every)
    rules.types = {k: r for k, r in rules.types.items() if rules.prune or rules._relevant(r)}
    rules.candidates = tuple(
        sorted(
            {n for n, r in rules.elements.items() if rules._relevant(r)}
            | {n for (_, n), r in rules.in_context.items() if rules._relevant(r)}
            | {n for n, r in rules.global_elements.items() if rules._relevant(r)}
        )
    )
    log.info(
        "identity rules compiled elements=%d attributes=%d types=%d exact=%s",
        len(rules.elements),
        len(rules.global_attributes),
        len(rules.types),
        rules.exact,
    )
    return rules
