"""The routing table's data model: tenants with their back ends, and rules.

A rule says "messages matching these facts go to this tenant's back end". Every match field is
optional; an absent field matches anything. Validation here is structural (formats, declared
tenants and back ends); ties between rules are found by the resolver's compiler, which knows
the specificity order.

ARS (Amtlicher Regionalschlüssel) has 12 digits: Land 2 · Regierungsbezirk 1 · Kreis 2 ·
Gemeindeverband 4 · Gemeinde 3. A rule's ``ars`` is a prefix that ends on one of those level
boundaries, so it has 2, 3, 5, 9 or 12 digits (or is empty: any region).
"""

from __future__ import annotations

import dataclasses
import difflib
import gc
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import ArgsKwargs

__all__ = [
    "ARS_LEVELS",
    "LAND_CODES",
    "RULE_FIELDS",
    "RouteTable",
    "RouteTableError",
    "Rule",
    "Tenant",
    "rules_from_rows",
    "validate_ars_prefix",
]

# Prefix length -> name of the level it ends on; the order is the ARS's own hierarchy.
ARS_LEVELS: dict[int, str] = {
    0: "any",
    2: "Land",
    3: "Regierungsbezirk",
    5: "Kreis",
    9: "Gemeindeverband",
    12: "Gemeinde",
}
LAND_CODES = frozenset(f"{n:02d}" for n in range(1, 17))

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})")
_LEISTUNG = re.compile(r"\d{14}")
_READER = re.compile(r"[a-z0-9]{1,20}:[A-Za-z0-9._-]{1,64}")
# Standards, message types and channels are names we define, not user input, but they end up
# in explanations and logs: keep them to a safe, readable alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ANY = frozenset({"", "*", "any"})


class RouteTableError(ValueError):
    """A table that cannot be used; ``problems`` lists every reason, one per line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) or "invalid routing table")


def validate_ars_prefix(value: str) -> str:
    """Return ``value`` if it is an ARS prefix ending on a level boundary, else raise ValueError."""
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"ARS prefix {value!r} must consist of digits only")
    if len(value) not in ARS_LEVELS:
        raise ValueError(
            f"ARS prefix {value!r} has {len(value)} digits; it must end on a level boundary "
            "(2 Land, 3 Regierungsbezirk, 5 Kreis, 9 Gemeindeverband, 12 Gemeinde)"
        )
    if value[:2] not in LAND_CODES:
        raise ValueError(f"ARS prefix {value!r}: Land code {value[:2]!r} is not one of 01..16")
    return value


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid id: use lower-case letters, digits and '-' "
            "(it becomes a NATS subject token)"
        )
    return value


def _pattern(regex: re.Pattern[str], what: str, example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{what} {value!r} is malformed (expected e.g. {example!r})")
        return value

    return check


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no line breaks or control characters)")
    return value


Slug = Annotated[str, AfterValidator(_slug)]

# Field -> check, and whether "*"/"any"/"" may stand for "matches anything". All rule fields
# are checked in one Python call per rule (see Rule._normalise): a national table has 200,000
# rules, and one call instead of eight per rule is what keeps an import within seconds.
_RULE_TEXT_CHECKS: tuple[tuple[str, Callable[[str], str], bool], ...] = (
    ("tenant", _slug, False),
    ("backend", _slug, False),
    ("leistung", _pattern(_LEISTUNG, "Leistung", "99050012104000"), True),
    ("ars", validate_ars_prefix, True),
    ("standard", _pattern(_NAME, "standard", "xbau"), True),
    ("message_type", _pattern(_NAME, "message type", "baugenehmigung.antrag.0200"), True),
    ("reader", _pattern(_READER, "reader id", "bau:010020000000"), True),
    ("channel", _pattern(_NAME, "channel", "xta"), True),
    ("note", _printable, False),
)


_REQUIRED = frozenset({"tenant", "backend"})
_CHECK_BY_NAME = {name: (check, may_be_any) for name, check, may_be_any in _RULE_TEXT_CHECKS}
_INTEGER = re.compile(r"[+-]?\d{1,18}")


def _normalise_text(name: str, value: object) -> str | None:
    """One text field of a rule, checked and interned; raises ValueError("<why>")."""
    check, may_be_any = _CHECK_BY_NAME[name]
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    value = value.strip()
    if may_be_any and value.lower() in _ANY:
        return None
    if not value and name not in _REQUIRED:
        return None  # an empty optional field is an absent one
    return sys.intern(check(value))


def _consistency_problem(
    standard: str | None,
    message_type: str | None,
    valid_from: date | None,
    valid_until: date | None,
) -> str | None:
    if message_type is not None and standard is None:
        # Message type names are only unique within a standard.
        return "a rule with message_type must also name its standard"
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        return f"valid_until {valid_until} must be after valid_from {valid_from}"
    return None


class Tenant(BaseModel):
    """A responsible authority and the back ends (Fachverfahren) it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: str | None = None
    backends: tuple[Slug, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_backends(self) -> Tenant:
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"tenant {self.id!r} declares a back end twice")
        return self


# A slotted dataclass rather than a BaseModel: about 150 instead of 900 bytes per rule.
@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Rule:
    """One routing rule. ``None`` in a match field means "any"; ``valid_until`` is exclusive.

    The half-open validity ``[valid_from, valid_until)`` lets a municipal merger be written as
    one rule ending and one starting on the same date, without overlap. Build one with
    keyword arguments (validated; raises ``pydantic.ValidationError``).
    """

    tenant: str
    backend: str
    leistung: str | None = None
    ars: str | None = None
    standard: str | None = None
    message_type: str | None = None
    reader: str | None = None
    channel: str | None = None
    priority: int = 0
    valid_from: date | None = None
    valid_until: date | None = None
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """Check and normalise every text field; intern them, since a national table repeats
        each ARS, tenant and Leistung many times and one copy each saves tens of MB."""
        if isinstance(data, ArgsKwargs):
            if data.args:
                return data  # positional construction: pydantic reports it
            fields = dict(data.kwargs or {})
        elif isinstance(data, dict):
            fields = dict(data)
        else:
            return data
        problems = []
        # The same conversions as rules_from_rows, so both paths word their errors alike.
        for name in _CONVERTED:
            value = fields.get(name)
            if value is None:
                continue
            converted = _convert(name, value)
            if type(converted) is _Invalid:
                problems.append(f"{name}: {converted.message}")
            else:
                fields[name] = converted
        if problems:
            raise ValueError("; ".join(problems))
        return ArgsKwargs((), fields) if isinstance(data, ArgsKwargs) else fields

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        problem = _consistency_problem(
            self.standard, self.message_type, self.valid_from, self.valid_until
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def match_key(self) -> tuple[str | None, ...]:
        """The match criteria alone: two rules with the same key compete for the same messages."""
        return (
            self.leistung,
            self.ars,
            self.standard,
            self.message_type,
            self.reader,
            self.channel,
        )

    @property
    def key(self) -> str:
        """Stable identity for diffs: match criteria, priority if set, start of validity.

        Two rules of one valid table never share a key (that would be a tie), and editing a
        rule's target, end date or note keeps its key, so a diff shows it as changed.
        """
        parts = [
            f"leistung={self.leistung or '*'}",
            f"ars={self.ars or '*'}",
            f"standard={self.standard or '*'}",
            f"message_type={self.message_type or '*'}",
            f"reader={self.reader or '*'}",
            f"channel={self.channel or '*'}",
        ]
        if self.priority:
            parts.append(f"priority={self.priority}")
        if self.valid_from is not None:
            parts.append(f"from={self.valid_from.isoformat()}")
        return " ".join(parts)

    def valid_at(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day < self.valid_until
        )

    def describe(self) -> str:
        return f"{self.key} -> {self.tenant}/{self.backend}"


RULE_FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Rule))
_DEFAULTS: dict[str, Any] = {
    field.name: field.default
    for field in dataclasses.fields(Rule)
    if field.default is not dataclasses.MISSING
}
_EMPTY_CELLS = frozenset({"", "~", "null"})


class _Invalid:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_ABSENT = object()
_CONVERTED = (*_CHECK_BY_NAME, "priority", "valid_from", "valid_until")


def _cell(name: str, raw: object) -> object:
    """A cell's value, :data:`_ABSENT` for an empty cell, or :class:`_Invalid`."""
    if raw is None or (isinstance(raw, str) and raw.strip() in _EMPTY_CELLS):
        return _ABSENT
    return _convert(name, raw)


def _convert(name: str, raw: object) -> object:
    """One cell, as ``Rule(...)`` would accept it, or an :class:`_Invalid` saying why not."""
    try:
        if name in _CHECK_BY_NAME:
            return _normalise_text(name, raw)
        if name == "priority":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
                return int(raw)
            return _Invalid(f"{raw!r} is not a whole number")
        if name in ("valid_from", "valid_until"):
            if type(raw) is date:  # not a datetime: validity is by calendar day
                return raw
            if isinstance(raw, str):
                try:
                    return date.fromisoformat(raw.strip())
                except ValueError:
                    pass
            return _Invalid(f"{raw!r} is not a date (YYYY-MM-DD)")
        raise AssertionError(f"no conversion for column {name!r}")  # columns are checked first
    except ValueError as error:
        return _Invalid(str(error))


def rules_from_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[object] | None],
    where: Callable[[int], str],
) -> tuple[list[Rule], list[str]]:
    """Rules from tabular input (CSV files, stored snapshots), validated column by column.

    Every distinct value of a column is checked once, with the same checks ``Rule(...)``
    applies, and each rule is then assembled without re-running them: a national table
    repeats each ARS, tenant and Leistung many times, and this is what keeps importing and
    hot-reloading 200,000 rules within seconds. Empty cells (``""``, ``~``, ``null``,
    ``None``) are absent fields. ``where(i)`` names row ``i`` in problems; ``None`` rows are
    skipped (the caller has reported them).
    """
    unknown = [column for column in columns if column not in RULE_FIELDS]
    if unknown:
        return [], [
            f"{where(-1)}: unknown columns {', '.join(unknown)} (allowed: {', '.join(RULE_FIELDS)})"
        ]
    # Building 200,000 acyclic objects triggers hundreds of futile collections.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _assemble_rows(columns, rows, where)
    finally:
        if paused:
            gc.enable()


def _assemble_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[object] | None],
    where: Callable[[int], str],
) -> tuple[list[Rule], list[str]]:
    caches: list[dict[object, object]] = [{} for _ in columns]
    width = len(columns)
    rules: list[Rule] = []
    problems: list[str] = []
    new = object.__new__
    assign = object.__setattr__
    # The loop below runs 200,000 times for a national table: lookups only, no calls, unless
    # a value is new to its column.
    for index, row in enumerate(rows):
        if row is None:
            continue
        if len(row) != width:
            problems.append(f"{where(index)}: {len(row)} cells for {width} columns")
            continue
        values = dict(_DEFAULTS)
        errors: list[str] = []
        for position, raw in enumerate(row):
            cache = caches[position]
            try:
                converted = cache[raw]
            except KeyError:
                converted = cache[raw] = _cell(columns[position], raw)
            except TypeError:  # unhashable input: check it uncached
                converted = _cell(columns[position], raw)
            if converted is _ABSENT:
                continue
            if type(converted) is _Invalid:
                errors.append(f"{columns[position]}: {converted.message}")
            else:
                values[columns[position]] = converted
        if errors or "tenant" not in values or "backend" not in values:
            refused = {error.split(":", 1)[0] for error in errors}
            errors += [
                f"{name}: field required"
                for name in ("tenant", "backend")
                if name not in values and name not in refused
            ]
        elif values["message_type"] is not None or values["valid_until"] is not None:
            problem = _consistency_problem(
                values["standard"],
                values["message_type"],
                values["valid_from"],
                values["valid_until"],
            )
            if problem:
                errors.append(problem)
        if errors:
            problems.append(f"{where(index)}: {'; '.join(errors)}")
            continue
        rule = new(Rule)
        for name in RULE_FIELDS:
            assign(rule, name, values[name])
        rules.append(rule)
    return rules, problems


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class RouteTable(BaseModel):
    """Declared tenants plus rules. Every rule must name a declared tenant and back end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, Tenant] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _tenant_ids_from_keys(cls, data: Any) -> Any:
        # Operators write ``tenants: {kiel: {backends: [...]}}``; the key is the id.
        if isinstance(data, dict) and isinstance(data.get("tenants"), dict):
            tenants: dict[str, Any] = {}
            for tenant_id, body in data["tenants"].items():
                if isinstance(body, dict) and "id" not in body:
                    body = {"id": tenant_id, **body}
                tenants[str(tenant_id)] = body
            data = {**data, "tenants": tenants}
        return data

    @field_validator("rules", mode="wrap")
    @classmethod
    def _validated_rules(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Rule instances were validated when built; re-running their validators would cost
        # a second per national table on every hot reload.
        if isinstance(value, list | tuple) and all(type(rule) is Rule for rule in value):
            return tuple(value)
        return handler(value)

    @model_validator(mode="after")
    def _references(self) -> RouteTable:
        problems: list[str] = []
        for tenant_id, tenant in self.tenants.items():
            if tenant.id != tenant_id:
                problems.append(f"tenant key {tenant_id!r} differs from its id {tenant.id!r}")
        for index, rule in enumerate(self.rules, start=1):
            declared = self.tenants.get(rule.tenant)
            if declared is None:
                problems.append(
                    f"rule {index} ({rule.key}): unknown tenant {rule.tenant!r}"
                    + _suggest(rule.tenant, self.tenants)
                )
            elif rule.backend not in declared.backends:
                problems.append(
                    f"rule {index} ({rule.key}): tenant {rule.tenant!r} has no back end "
                    f"{rule.backend!r} (declared: {', '.join(declared.backends)})"
                    + _suggest(rule.backend, declared.backends)
                )
        if problems:
            raise RouteTableError(problems)
        return self
