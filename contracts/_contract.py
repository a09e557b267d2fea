"""The contract of one standard version: namespaces, message types, schema entry points.

Contracts are data (YAML), not code: the project ships the ones it knows in
``contracts/standards/``, and an operator adds others with ``poststelle contracts add`` plus a
descriptor of the same format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .validation import LEVELS

__all__ = ["HEADER_STYLES", "Contract", "ContractError", "apply_overrides", "contract_from_mapping"]

# Header styles the mapping engine knows how to read when no message-specific mapping exists
# (mappings/_headers/<style>.yaml): the XÖV G2G header with unqualified children (XBau) or in
# its own namespace (XBeteiligung), and xdomea's Kopf.
HEADER_STYLES = frozenset({"xoev-g2g", "xoev-g2g-qualified", "xdomea-kopf", "none"})


class ContractError(ValueError):
    """A contract descriptor or schema set that cannot be used; says which file and why."""


@dataclass(frozen=True)
class Contract:
    standard: str
    version: str
    title: str
    namespaces: tuple[str, ...]
    header: str
    entry_points: Mapping[str, tuple[str, ...]]
    namespace_pattern: re.Pattern[str] | None = None
    strict_xsd_version: str = "1.0"
    entry_namespaces: Mapping[str, str] = field(default_factory=dict)
    format: str = "xml"
    json_roots: tuple[str, ...] = ()
    source: str = ""
    # schemaLocation URL -> file relative to the schema set's root (see _catalog.py)
    catalog: Mapping[str, str] = field(default_factory=dict)
    # Schematron files of the schema set (file names or paths relative to the set) and how
    # far the hub checks this contract's messages by default (docs/schematron.md).
    schematron: tuple[str, ...] = ()
    validation_level: str = "xsd"
    _entry_of: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for entry, messages in self.entry_points.items():
            for message in messages:
                self._entry_of[message] = entry
        for root in self.json_roots:  # JSON submissions have message types but no schema
            self._entry_of.setdefault(root, "")

    @property
    def key(self) -> str:
        return f"{self.standard}-{self.version}"

    @property
    def message_types(self) -> tuple[str, ...]:
        return tuple(self._entry_of)

    def entry_point_for(self, message_type: str) -> str | None:
        return self._entry_of.get(message_type) or None

    def namespaces_of(self, message_type: str) -> tuple[str, ...]:
        """The namespace(s) a message type's root element may have."""
        entry = self._entry_of.get(message_type)
        if entry and entry in self.entry_namespaces:
            return (self.entry_namespaces[entry],)
        unbound = set(self.entry_namespaces.values())
        return tuple(ns for ns in self.namespaces if ns not in unbound) or self.namespaces

    def version_from_namespace(self, namespace: str) -> str | None:
        """The version a namespace of this standard's family names, e.g. xbau/2/5 -> '2.5'."""
        if self.namespace_pattern is None:
            return None
        match = self.namespace_pattern.match(namespace)
        return ".".join(match.groups()) if match and match.groups() else None


def _require(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, str | list | dict) and not value):
        raise ContractError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def apply_overrides(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A generated descriptor with its hand-set ``overrides`` section applied on top: a
    mapping value (``strict``, ``catalog``) is merged key by key, anything else replaced."""
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ContractError(f"{where}: 'overrides' must be a mapping")
    merged = {k: v for k, v in data.items() if k != "overrides"}
    for key, value in overrides.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def contract_from_mapping(data: Any, where: str) -> Contract:
    """Build a contract from a parsed descriptor; ``where`` names the file in errors."""
    if not isinstance(data, Mapping):
        raise ContractError(f"{where}: a contract descriptor must be a mapping")
    data = apply_overrides(data, where)
    standard = _require(data, "standard", str, where)
    version = str(_require(data, "version", str | float | int, where))  # type: ignore[arg-type]
    fmt = data.get("format", "xml")
    if fmt not in {"xml", "json"}:
        raise ContractError(f"{where}: format must be xml or json")
    json_roots: list[Any] = []
    if fmt == "json":
        json_roots = _require(data, "json_roots", list, where)
        namespaces = data.get("namespaces") or []
        entry_points = data.get("entry_points") or {}
    else:
        namespaces = _require(data, "namespaces", list, where)
        entry_points = _require(data, "entry_points", dict, where)
    header = data.get("header", "none")
    if header not in HEADER_STYLES:
        raise ContractError(
            f"{where}: header '{header}' is not one of {', '.join(sorted(HEADER_STYLES))}"
        )
    pattern = data.get("namespace_pattern")
    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ContractError(
            f"{where}: namespace_pattern is not a regular expression: {exc}"
        ) from exc
    entries: dict[str, tuple[str, ...]] = {}
    entry_namespaces: dict[str, str] = {}
    for entry, messages in entry_points.items():
        if isinstance(messages, Mapping):
            # An entry point whose messages live in one of several namespaces of the standard.
            namespace = messages.get("namespace")
            if namespace not in namespaces:
                raise ContractError(
                    f"{where}: entry point '{entry}' names namespace {namespace!r} "
                    "that is not among the contract's namespaces"
                )
            entry_namespaces[str(entry)] = str(namespace)
            messages = messages.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise ContractError(f"{where}: entry point '{entry}' must list message type names")
        if "/" in entry or "\\" in entry:
            raise ContractError(f"{where}: entry point '{entry}' must be a bare file name")
        entries[str(entry)] = tuple(messages)
    strict = data.get("strict") or {}
    xsd_version = str(strict.get("xsd_version", "1.0")) if isinstance(strict, Mapping) else "1.0"
    if xsd_version not in {"1.0", "1.1"}:
        raise ContractError(f"{where}: strict.xsd_version must be '1.0' or '1.1'")
    catalog = _catalog(data.get("catalog"), where)
    schematron = _schematron_files(data.get("schematron"), where)
    level = str(data.get("validation", "xsd"))
    if level not in LEVELS:
        raise ContractError(f"{where}: validation must be one of {', '.join(LEVELS)}")
    if level == "schematron" and not schematron:
        raise ContractError(f"{where}: validation 'schematron' needs the 'schematron' files")
    return Contract(
        standard=standard,
        version=version,
        title=str(data.get("title", f"{standard} {version}")),
        namespaces=tuple(str(ns) for ns in namespaces),
        header=header,
        entry_points=entries,
        namespace_pattern=compiled,
        strict_xsd_version=xsd_version,
        entry_namespaces=entry_namespaces,
        format=fmt,
        json_roots=tuple(str(r) for r in json_roots),
        source=where,
        catalog=catalog,
        schematron=schematron,
        validation_level=level,
    )


def _schematron_files(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ContractError(f"{where}: 'schematron' must list .sch files of the schema set")
    for path in value:
        if path.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", path):
            raise ContractError(f"{where}: schematron file {path!r} must lie inside the schema set")
    return tuple(value)


def _catalog(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise ContractError(f"{where}: 'catalog' must map schemaLocation URLs to file paths")
    for url, path in value.items():
        if path.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", path):
            raise ContractError(
                f"{where}: catalog entry {url!r} must name a file inside the set, not {path!r}"
            )
    return dict(value)
