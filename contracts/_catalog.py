"""Where a schema set's imports lie: its catalog, for lxml and xmlschema alike, never the network.

Many XÖV sets import their base schemas by absolute URL
(``schemaLocation="http://xoev.de/schemata/code/1_0/xoev-code.xsd"``) and ship, or expect the
integrator to supply, a local copy. Two sources say which file a URL means, both relative to the
set's root folder:

* the descriptor's ``catalog`` key, a map from URL to file (``contracts init`` writes it);
* an OASIS XML catalog, ``catalog.xml`` at the set's root (``uri``, ``system``, ``rewriteURI``,
  ``rewriteSystem``, ``nextCatalog``, inside ``group`` too).

The descriptor wins over ``catalog.xml``. A URL neither names is unresolved: an error, never a
download.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

from ._contract import ContractError

__all__ = ["CATALOG_FILE", "SchemaCatalog", "UnresolvedImport", "is_url"]

CATALOG_FILE = "catalog.xml"
_OASIS = "{urn:oasis:names:tc:entity:xmlns:xml:catalog}"
_XS = "{http://www.w3.org/2001/XMLSchema}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_IMPORTS = (f"{_XS}import", f"{_XS}include", f"{_XS}redefine", f"{_XS}override")
_MAX_CATALOGS = 32  # nextCatalog chains beyond this are a loop or an attack


def is_url(location: str) -> bool:
    """An absolute URL (``http:``, ``urn:``, ``file:``...), not a path relative to its file."""
    scheme = urlsplit(location).scheme
    return len(scheme) > 1  # one letter would be a Windows drive


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class UnresolvedImport:
    """An ``xs:import``/``include`` whose ``schemaLocation`` names no file of the set."""

    location: str
    importer: str  # the importing file, relative to the set's root


class SchemaCatalog:
    """URL -> file of one schema set; resolves for lxml (a parser) and xmlschema (a mapper)."""

    def __init__(
        self,
        root: Path,
        exact: Mapping[str, Path] | None = None,
        rewrites: tuple[tuple[str, Path], ...] = (),
    ) -> None:
        self.root = root.resolve()
        self._exact = dict(exact or {})
        # Longest prefix first: OASIS says the longest matching start string wins.
        self._rewrites = tuple(sorted(rewrites, key=lambda r: len(r[0]), reverse=True))

    @classmethod
    def for_set(cls, root: Path, entries: Mapping[str, str] | None = None) -> SchemaCatalog:
        """The descriptor's ``catalog`` entries, then ``catalog.xml`` when the set has one."""
        root = root.resolve()
        exact: dict[str, Path] = {}
        rewrites: list[tuple[str, Path]] = []
        oasis = root / CATALOG_FILE
        if oasis.is_file():
            _read_oasis(root, oasis, exact, rewrites, seen=set())
        for url, relative in (entries or {}).items():
            exact[url] = _inside(root, root / relative, f"catalog entry {url!r}")
        return cls(root, exact, tuple(rewrites))

    def resolve(self, url: str) -> Path | None:
        """The file a URL means, or None when the catalog does not name it."""
        if url in self._exact:
            return self._exact[url]
        for start, prefix in self._rewrites:
            if url.startswith(start):
                rest = unquote(url[len(start) :]).lstrip("/")
                target = (prefix / rest).resolve()
                return target if target.is_relative_to(self.root) else None
        return None

    def locate(self, location: str, importer: Path) -> Path | None:
        """Where a ``schemaLocation`` in ``importer`` points, if that file exists in the set."""
        if is_url(location):
            target = self.resolve(location)
        else:
            target = (importer.parent / unquote(location)).resolve()
        if target is None or not target.is_file() or not target.is_relative_to(self.root):
            return None
        return target

    def unresolved(self, entry: Path) -> list[UnresolvedImport]:
        """Every import reachable from ``entry`` that names no file of the set."""
        missing: list[UnresolvedImport] = []
        seen: set[Path] = set()
        todo = [entry.resolve()]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            for location in _schema_locations(current):
                target = self.locate(location, current)
                if target is None:
                    missing.append(UnresolvedImport(location, self._relative(current)))
                else:
                    todo.append(target)
        return sorted(set(missing), key=lambda m: (m.location, m.importer))

    def _relative(self, path: Path) -> str:
        return (
            path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        )

    # -- the two engines ------------------------------------------------------------------

    def lxml_parser(self) -> etree.XMLParser:
        """A parser whose schema imports by URL load the catalog's file, never the network."""
        parser = _parser()
        parser.resolvers.add(_LxmlResolver(self))
        return parser

    def uri_mapper(self, uri: str) -> str:
        """xmlschema's ``uri_mapper``: a catalogued URL becomes its file's ``file:`` URL."""
        target = self.resolve(uri) if is_url(uri) else None
        return target.as_uri() if target is not None else uri


class _LxmlResolver(etree.Resolver):  # type: ignore[misc]  # lxml-stubs: Resolver is Any
    def __init__(self, catalog: SchemaCatalog) -> None:
        super().__init__()
        self._catalog = catalog

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if not is_url(system_url) or system_url.startswith("file:"):
            return None  # a file of the set, joined to its importer's folder by libxml2
        target = self._catalog.resolve(system_url)
        if target is None:
            # Never fetched: an empty answer makes the import fail instead of a download.
            return self.resolve_empty(context)
        return self.resolve_filename(str(target), context)


def _schema_locations(path: Path) -> Iterator[str]:
    try:
        root = etree.parse(str(path), _parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ContractError(f"{path}: not a well-formed schema: {exc}") from exc
    for element in root.iterchildren(*_IMPORTS):
        location = (element.get("schemaLocation") or "").strip()
        if location:
            yield location


def _inside(root: Path, target: Path, what: str) -> Path:
    resolved = target.resolve()
    if not resolved.is_relative_to(root):
        raise ContractError(f"{what}: {target} lies outside the schema set")
    return resolved


def _base(element: etree._Element, base: Path) -> Path:
    declared = element.get(_XML_BASE)
    return (base / declared) if declared else base


def _read_oasis(
    root: Path,
    file: Path,
    exact: dict[str, Path],
    rewrites: list[tuple[str, Path]],
    seen: set[Path],
) -> None:
    if file in seen:
        return
    seen.add(file)
    if len(seen) > _MAX_CATALOGS:
        raise ContractError(f"{file}: more than {_MAX_CATALOGS} chained catalogs")
    try:
        document = etree.parse(str(file), _parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ContractError(f"{file}: not a readable XML catalog: {exc}") from exc
    if document.tag != f"{_OASIS}catalog":
        raise ContractError(f"{file}: not an OASIS XML catalog (root {document.tag})")
    _read_entries(root, file, document, _base(document, file.parent), exact, rewrites, seen)


def _read_entries(
    root: Path,
    file: Path,
    parent: etree._Element,
    base: Path,
    exact: dict[str, Path],
    rewrites: list[tuple[str, Path]],
    seen: set[Path],
) -> None:
    where = file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
    chained: list[Path] = []
    for element in parent.iterchildren(etree.Element):
        tag = etree.QName(element).localname if element.tag.startswith(_OASIS) else None
        here = _base(element, base)
        if tag in {"uri", "system"}:
            key = element.get("name" if tag == "uri" else "systemId")
            uri = element.get("uri")
            if key and uri:
                # The first entry for a URL wins, as in a catalog lookup.
                exact.setdefault(key, _inside(root, here / unquote(uri), f"{where}: {key!r}"))
        elif tag in {"rewriteURI", "rewriteSystem"}:
            start = element.get("uriStartString" if tag == "rewriteURI" else "systemIdStartString")
            prefix = element.get("rewritePrefix")
            if start and prefix:
                rewrites.append(
                    (start, _inside(root, here / unquote(prefix), f"{where}: {start!r}"))
                )
        elif tag == "nextCatalog":
            name = element.get("catalog")
            if name:
                chained.append(_inside(root, here / unquote(name), f"{where}: nextCatalog"))
        elif tag == "group":
            _read_entries(root, file, element, here, exact, rewrites, seen)
    # A catalog's own entries come before the ones it delegates to.
    for next_file in chained:
        _read_oasis(root, next_file, exact, rewrites, seen)
