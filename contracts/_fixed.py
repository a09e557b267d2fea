"""Fixed element values compared as values, as XSD 1.0 says (cvc-elt.5.2.2.2.2).

libxml2 compares an element's content with its ``fixed`` constraint character by character,
so ``<betrag>1.00</betrag>`` against ``fixed="1.0"`` (xs:decimal), ``1`` against
``fixed="true"`` (xs:boolean) and a token with extra spaces are rejected although they are the
same value. (Attributes it compares by value already.) This module withdraws exactly those
findings when every declaration of that element name with a fixed value says the two are equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .validation import SchemaError

__all__ = ["FixedValues", "compile_fixed_values"]

_LIBXML2_FIXED = "does not match the fixed value constraint"


@dataclass
class FixedValues:
    by_name: dict[str, list[tuple[Any, str]]] = field(default_factory=dict)

    def withdraw(self, root: etree._Element, errors: list[SchemaError]) -> list[SchemaError]:
        """``errors`` without libxml2's fixed-value findings that are equal values."""
        if not self.by_name:
            return errors
        return [e for e in errors if not self._same_value(root, e)]

    def _same_value(self, root: etree._Element, error: SchemaError) -> bool:
        if _LIBXML2_FIXED not in error.message or not error.path:
            return False
        try:
            found = root.getroottree().xpath(error.path)
        except etree.XPathError:
            return False
        if not isinstance(found, list) or len(found) != 1:
            return False
        element = found[0]
        if not isinstance(element, etree._Element):
            return False
        declarations = self.by_name.get(str(element.tag))
        if not declarations:
            return False
        text = element.text or ""
        return all(_equal(xsd_type, text, fixed) for xsd_type, fixed in declarations)


def _equal(xsd_type: Any, text: str, fixed: str) -> bool:
    simple = xsd_type if xsd_type.is_simple() else xsd_type.content
    try:
        return bool(simple.decode(text) == simple.decode(fixed))
    except Exception:  # not a value of the type at all: libxml2's finding stands
        return False


def compile_fixed_values(schema: Any) -> FixedValues:
    """Every element declaration with a fixed value, by element name."""
    from xmlschema.validators import XsdElement

    values = FixedValues()
    for component in schema.maps.iter_components(XsdElement):
        if component.fixed is None or not component.name:
            continue
        values.by_name.setdefault(component.name, []).append((component.type, component.fixed))
    return values
