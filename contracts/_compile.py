"""Compiling an entry point of a schema set, with its catalog, into a schema either engine uses.

``contracts add`` and ``contracts list`` compile to tell the operator whether a set is usable;
the registry compiles on first use. All three go through here, so a set refused at ``add`` is
refused for the same reason at run time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lxml import etree

from ._catalog import SchemaCatalog, UnresolvedImport
from ._contract import ContractError

__all__ = ["SchemaUnusable", "check_entry_points", "compile_lxml", "compile_strict"]


class SchemaUnusable(ContractError):
    """An entry point that cannot be compiled: imports that do not resolve, or a bad schema."""


def _describe(missing: Iterable[UnresolvedImport]) -> str:
    importers: dict[str, list[str]] = defaultdict(list)
    for item in sorted(set(missing), key=lambda m: (m.location, m.importer)):
        importers[item.location].append(item.importer)
    return (
        f"{len(importers)} schema location(s) do not resolve to a file of the set "
        "(map each URL in the descriptor's 'catalog' or a catalog.xml): "
        + "; ".join(f"{url} (imported by {', '.join(files)})" for url, files in importers.items())
    )


def _unresolved(path: Path, catalog: SchemaCatalog) -> None:
    missing = catalog.unresolved(path)
    if missing:
        raise SchemaUnusable(_describe(missing))


def compile_lxml(path: Path, catalog: SchemaCatalog) -> etree.XMLSchema:
    """The lxml (libxml2) schema of one entry point; URL imports come from the catalog."""
    _unresolved(path, catalog)
    try:
        return etree.XMLSchema(etree.parse(str(path), catalog.lxml_parser()))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise SchemaUnusable(f"{path.name} does not compile: {exc}") from exc


def compile_strict(path: Path, catalog: SchemaCatalog, xsd_version: str) -> Any:
    """The xmlschema schema of one entry point (strict mode), resolved the same way."""
    import xmlschema  # only strict mode pays for importing it

    _unresolved(path, catalog)
    cls = xmlschema.XMLSchema11 if xsd_version == "1.1" else xmlschema.XMLSchema10
    try:
        return cls(str(path), allow="local", defuse="always", uri_mapper=catalog.uri_mapper)
    except (xmlschema.XMLSchemaException, OSError) as exc:
        raise SchemaUnusable(f"{path.name} does not compile (strict): {exc}") from exc


def check_entry_points(
    folder: Path, entry_points: Mapping[str, str], catalog: SchemaCatalog
) -> list[str]:
    """What keeps a set's entry points from compiling with lxml (empty: all usable).

    Unresolved imports come first and once, however many entry points share them."""
    paths = [folder / relative for _, relative in sorted(entry_points.items())]
    missing = {m for path in paths for m in catalog.unresolved(path)}
    if missing:
        return [_describe(missing)]
    problems = []
    for path in paths:
        try:
            compile_lxml(path, catalog)
        except SchemaUnusable as exc:
            problems.append(str(exc))
    return problems
