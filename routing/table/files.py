"""Reading, writing and comparing routing tables as operators write them.

YAML — tenants and rules in one file::

    tenants:
      kiel:
        name: Landeshauptstadt Kiel
        backends: [bauamt, dms]
      land-sh:
        backends: [poststelle]
    rules:
      - ars: 01                      # Land Schleswig-Holstein: catch-all
        tenant: land-sh
        backend: poststelle
      - ars: 010020000002            # Kiel, Gemeinde level
        leistung: 99066005001000     # LeiKa key; omit or write * for any
        standard: xbau               # optional, with message_type
        message_type: baugenehmigung.antrag.0200
        reader: bau:010020000000     # optional reader authority id
        channel: xta                 # optional inbound channel
        tenant: kiel
        backend: bauamt
        priority: 0                  # optional; only separates identical criteria
        valid_from: 2027-01-01       # optional, inclusive
        valid_until: 2030-01-01      # optional, exclusive
        note: free text
    rules_csv: more-rules.csv        # optional: further rules, path relative to this file

Every scalar is read as text (no quoting needed: ``010020000002`` stays a string and is not
taken for an octal number). ``*``, ``any`` or an empty value mean "any".

CSV — rules only, one per row, with a header naming the columns (any order, any subset of
``ars, leistung, standard, message_type, reader, channel, tenant, backend, priority,
valid_from, valid_until, note``; ``tenant`` and ``backend`` are required). Comma or semicolon
separated (the header decides), lines starting with ``#`` are comments. Tenants come from a
YAML file (``--tenants``) or from the table the hub already holds.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from poststelle.routing.table.rules import (
    RouteTable,
    RouteTableError,
    Rule,
    Tenant,
    rules_from_rows,
)

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_TABLE_CHARS",
    "RULE_COLUMNS",
    "TableDiff",
    "diff",
    "dump_csv",
    "dump_yaml",
    "load_table",
    "load_tenants",
    "parse_csv",
    "parse_yaml",
    "rule_to_dict",
]

RULE_COLUMNS: tuple[str, ...] = (
    "ars",
    "leistung",
    "standard",
    "message_type",
    "reader",
    "channel",
    "tenant",
    "backend",
    "priority",
    "valid_from",
    "valid_until",
    "note",
)
_EMPTY = frozenset({"", "~", "null"})
# Bounds on an operator's file, checked before its content is used: a table of 100,000 rules
# is about 15 MB of YAML; aliases (``&b``/``*b`` for shared backend lists) rarely add more
# than a few nodes each.
MAX_TABLE_CHARS = 64 * 1024 * 1024
MAX_ALIAS_NODES = 100_000
_YAML_LOADER: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})


def _format_error(where: str, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] in {"unexpected_keyword_argument", "extra_forbidden"}:
            message = f"unknown field (allowed: {', '.join(RULE_COLUMNS)})"
        problems.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
    return problems


def _clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in raw.items() if not (isinstance(v, str) and v.strip() in _EMPTY)}


def _build_rules(rows: Iterable[tuple[str, Any]]) -> tuple[list[Rule], list[str]]:
    rules: list[Rule] = []
    problems: list[str] = []
    for where, raw in rows:
        if not isinstance(raw, Mapping):
            shown = repr(raw) if isinstance(raw, str | int | float | None) else type(raw).__name__
            problems.append(f"{where}: expected a mapping of rule fields, got {shown[:80]}")
            continue
        try:
            rules.append(Rule(**_clean(raw)))
        except ValidationError as error:
            problems.extend(_format_error(where, error))
    return rules, problems


def _assemble(tenants: Mapping[str, Any], rules: list[Rule], problems: list[str]) -> RouteTable:
    if problems:
        raise RouteTableError(problems)
    try:
        return RouteTable.model_validate({"tenants": dict(tenants), "rules": rules})
    except RouteTableError:
        raise
    except ValidationError as error:
        flattened: list[str] = []
        for item in error.errors(include_url=False):
            cause = item.get("ctx", {}).get("error")
            if isinstance(cause, RouteTableError):
                flattened.extend(cause.problems)
            else:
                loc = ".".join(str(part) for part in item["loc"])
                flattened.append(f"{loc}: {str(item['msg']).removeprefix('Value error, ')}")
        raise RouteTableError(flattened) from None


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """How many nodes ``root`` stands for once every alias is expanded, counting to ``limit + 1``.

    PyYAML composes an alias as a second reference to its anchor's node, so the composed
    graph stays small while the expanded document (what construction, validation and error
    messages walk) can be exponential: nine aliases of nine aliases are a billion nodes."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = limit + 1  # a node reached again while being sized: a cycle
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(node)] = min(total, limit + 1)
        return sizes[id(node)]

    return size(root)


def _load_yaml_document(text: str, source: str) -> Any:
    if len(text) > MAX_TABLE_CHARS:
        raise RouteTableError(
            [f"{source}: {len(text)} characters exceed the limit of {MAX_TABLE_CHARS}"]
        )
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # The composed graph is bounded by the text; aliases may add at most this much.
        if _expanded_nodes(node, MAX_ALIAS_NODES + len(text)) > MAX_ALIAS_NODES + len(text):
            raise RouteTableError(
                [f"{source}: aliases expand to more than {MAX_ALIAS_NODES} extra nodes"]
            )
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise RouteTableError([f"{source}: not valid YAML: {error}"]) from None
    except RecursionError:
        raise RouteTableError([f"{source}: not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()


def _tenants_from(document: Any, source: str) -> dict[str, Any]:
    tenants = document.get("tenants", {}) if isinstance(document, dict) else None
    if not isinstance(tenants, dict):
        raise RouteTableError([f"{source}: 'tenants' must be a mapping of tenant id to tenant"])
    return tenants


def parse_yaml(text: str, *, source: str = "<yaml>", base_dir: Path | None = None) -> RouteTable:
    """Parse the YAML format; ``rules_csv`` is resolved against ``base_dir``."""
    document = _load_yaml_document(text, source)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise RouteTableError([f"{source}: expected a mapping with 'tenants' and 'rules'"])
    unknown = set(document) - {"tenants", "rules", "rules_csv"}
    if unknown:
        raise RouteTableError([f"{source}: unknown top-level keys: {', '.join(sorted(unknown))}"])
    tenants = _tenants_from(document, source)
    raw_rules = document.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RouteTableError([f"{source}: 'rules' must be a list"])
    rules, problems = _build_rules(
        (f"{source} rule {n}", raw) for n, raw in enumerate(raw_rules, start=1)
    )
    csv_name = document.get("rules_csv")
    if csv_name:
        csv_path = (base_dir or Path.cwd()) / str(csv_name)
        csv_text = _read(csv_path, what=f"{source}: rules_csv ")
        more, more_problems = _csv_rules(csv_text, str(csv_path))
        rules.extend(more)
        problems.extend(more_problems)
    return _assemble(tenants, rules, problems)


def _csv_rules(text: str, source: str) -> tuple[list[Rule], list[str]]:
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return [], []
    header_line = lines[0][1]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader((line for _, line in lines), delimiter=delimiter)
    try:
        return _csv_rows(reader, lines, source)
    except csv.Error as error:  # e.g. a cell over the csv module's field size limit
        return [], [f"{source}: not valid CSV: {error}"]


def _csv_rows(
    reader: Iterator[list[str]], lines: list[tuple[int, str]], source: str
) -> tuple[list[Rule], list[str]]:
    header = [column.strip() for column in next(reader)]
    unknown = [column for column in header if column not in RULE_COLUMNS]
    missing = [column for column in ("tenant", "backend") if column not in header]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(
                f"{source} line {lines[0][0]}: unknown columns {', '.join(unknown)} "
                f"(allowed: {', '.join(RULE_COLUMNS)})"
            )
        if missing:
            problems.append(f"{source}: missing required columns {', '.join(missing)}")
        return [], problems
    numbers = [number for number, _ in lines]

    def where(index: int) -> str:
        return f"{source} line {numbers[index + 1]}"

    return rules_from_rows(header, reader, where)


def parse_csv(
    text: str, tenants: Mapping[str, Tenant | Mapping[str, Any]], *, source: str = "<csv>"
) -> RouteTable:
    """Parse the CSV format against already declared tenants."""
    rules, problems = _csv_rules(text, source)
    declared = {
        key: value.model_dump() if isinstance(value, Tenant) else value
        for key, value in tenants.items()
    }
    return _assemble(declared, rules, problems)


def load_tenants(path: Path) -> dict[str, Tenant]:
    """The tenants of a YAML table file (its rules, if any, are ignored)."""
    source = str(path)
    document = _load_yaml_document(_read(path), source)
    return dict(_assemble(_tenants_from(document or {}, source), [], []).tenants)


def _read(path: Path, *, what: str = "") -> str:
    """The text of a table file, read only if it is a regular file within the size limit
    (``rules_csv: /dev/zero`` must not fill the memory)."""
    try:
        # Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise RouteTableError([f"{what}{path}: not a regular file"])
            data = file.read(MAX_TABLE_CHARS + 1)
    except OSError as error:
        raise RouteTableError([f"{what}cannot read {path}: {error.strerror or error}"]) from None
    if len(data) > MAX_TABLE_CHARS:
        raise RouteTableError([f"{what}{path}: larger than {MAX_TABLE_CHARS} bytes"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RouteTableError([f"{what}{path}: not UTF-8 text"]) from None
    # As text mode reads it: universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_table(path: Path, *, tenants: Mapping[str, Tenant] | None = None) -> RouteTable:
    """Load a ``.yaml``/``.yml`` or ``.csv`` file; CSV needs ``tenants``."""
    text = _read(path)
    if path.suffix.lower() in _YAML_SUFFIXES:
        return parse_yaml(text, source=str(path), base_dir=path.parent)
    if path.suffix.lower() == ".csv":
        if tenants is None:
            raise RouteTableError(
                [f"{path}: a CSV file holds rules only; declare tenants with --tenants FILE.yaml"]
            )
        return parse_csv(text, tenants, source=str(path))
    raise RouteTableError([f"{path}: unknown format (use .yaml, .yml or .csv)"])


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """Only the fields that say something, in the operator's column order."""
    data: dict[str, Any] = {}
    for column in RULE_COLUMNS:
        value = getattr(rule, column)
        if value is not None and not (column == "priority" and value == 0):
            data[column] = value
    return data


def dump_yaml(table: RouteTable) -> str:
    tenants = {
        tenant_id: {
            **({"name": tenant.name} if tenant.name else {}),
            "backends": list(tenant.backends),
        }
        for tenant_id, tenant in table.tenants.items()
    }
    rules = [rule_to_dict(rule) for rule in table.rules]
    document = {"tenants": tenants, "rules": rules}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def dump_csv(table: RouteTable) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RULE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rule in table.rules:
        writer.writerow(rule_to_dict(rule))
    return out.getvalue()


@dataclass(frozen=True)
class TableDiff:
    """What replacing ``old`` by ``new`` would do. Rules are identified by :attr:`Rule.key`."""

    added: tuple[Rule, ...]
    changed: tuple[tuple[Rule, Rule], ...]
    removed: tuple[Rule, ...]
    tenants_added: tuple[str, ...]
    tenants_changed: tuple[str, ...]
    tenants_removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.changed
            or self.removed
            or self.tenants_added
            or self.tenants_changed
            or self.tenants_removed
        )

    def summary(self) -> str:
        return (
            f"rules: +{len(self.added)} ~{len(self.changed)} -{len(self.removed)}; "
            f"tenants: +{len(self.tenants_added)} ~{len(self.tenants_changed)} "
            f"-{len(self.tenants_removed)}"
        )

    def lines(self) -> list[str]:
        out = [f"+ tenant {t}" for t in self.tenants_added]
        out += [f"~ tenant {t}" for t in self.tenants_changed]
        out += [f"- tenant {t}" for t in self.tenants_removed]
        out += [f"+ {rule.describe()}" for rule in self.added]
        for before, after in self.changed:
            fields = {*rule_to_dict(before), *rule_to_dict(after)}
            changes = [
                f"{name}: {getattr(before, name)} -> {getattr(after, name)}"
                for name in RULE_COLUMNS
                if name in fields and getattr(before, name) != getattr(after, name)
            ]
            out.append(f"~ {before.key}: {'; '.join(changes)}")
        out += [f"- {rule.describe()}" for rule in self.removed]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [rule_to_dict(r) for r in self.added],
            "changed": [
                {"before": rule_to_dict(a), "after": rule_to_dict(b)} for a, b in self.changed
            ],
            "removed": [rule_to_dict(r) for r in self.removed],
            "tenants_added": list(self.tenants_added),
            "tenants_changed": list(self.tenants_changed),
            "tenants_removed": list(self.tenants_removed),
        }


def diff(old: RouteTable, new: RouteTable) -> TableDiff:
    before = {rule.key: rule for rule in old.rules}
    after = {rule.key: rule for rule in new.rules}
    if len(before) != len(old.rules) or len(after) != len(new.rules):
        # Same key twice means same criteria, priority and start: compile_table calls it a tie.
        raise RouteTableError(["cannot diff a table holding two rules with the same key"])
    kept = set(new.tenants) & set(old.tenants)
    return TableDiff(
        added=tuple(rule for key, rule in after.items() if key not in before),
        changed=tuple(
            (before[key], rule)
            for key, rule in after.items()
            if key in before and before[key] != rule
        ),
        removed=tuple(rule for key, rule in before.items() if key not in after),
        tenants_added=tuple(sorted(set(new.tenants) - set(old.tenants))),
        tenants_changed=tuple(sorted(t for t in kept if new.tenants[t] != old.tenants[t])),
        tenants_removed=tuple(sorted(set(old.tenants) - set(new.tenants))),
    )
