"""Resolution: which rule is responsible for a message, and why.

Specificity order (total; compared left to right, the first difference decides):

1. ARS prefix length: 12 (Gemeinde) > 9 (Gemeindeverband) > 5 (Kreis) > 3 (Regierungsbezirk)
   > 2 (Land) > any.
2. Leistung: a specific LeiKa key > any.
3. Message: standard and message type > standard only > any.
4. Reader authority id: specific > any.
5. Channel: specific > any.
6. Priority: higher > lower.

Two rules that both match some message and are equal on all six criteria tie. That can only
happen when their match criteria are identical, their priorities equal and their validity
periods overlap; :func:`compile_table` rejects such tables, so a resolution is never decided
by chance. A rule outside its validity period at the query's date is not a candidate.

The compiled index maps ``(leistung or None, ARS prefix)`` to the rules with exactly those two
criteria, best first. A lookup walks the prefixes of the query's ARS from longest to shortest,
trying the specific Leistung before "any" at each length. That walk visits buckets in
specificity order, so the first rule in it that matches the remaining criteria wins.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from poststelle.routing.table.rules import ARS_LEVELS, RouteTable, RouteTableError, Rule

__all__ = [
    "CRITERIA",
    "Candidate",
    "Resolution",
    "Resolver",
    "RouteQuery",
    "compile_table",
    "specificity",
]

log = logging.getLogger(__name__)

# Municipal mergers take effect at local midnight.
_BERLIN = ZoneInfo("Europe/Berlin")

CRITERIA: tuple[str, ...] = (
    "ARS prefix length",
    "Leistung",
    "standard/message type",
    "reader",
    "channel",
    "priority",
)
_PREFIX_LENGTHS = tuple(sorted(ARS_LEVELS, reverse=True))

Specificity = tuple[int, int, int, int, int, int]


def specificity(rule: Rule) -> Specificity:
    """The rule's position in the specificity order; larger tuples win."""
    message_level = 0 if rule.standard is None else (2 if rule.message_type else 1)
    return (
        len(rule.ars or ""),
        int(rule.leistung is not None),
        message_level,
        int(rule.reader is not None),
        int(rule.channel is not None),
        rule.priority,
    )


def _berlin_day(at: date | datetime | None) -> date:
    if at is None:
        return datetime.now(_BERLIN).date()
    if isinstance(at, datetime):
        aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return aware.astimezone(_BERLIN).date()
    return at


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """The facts of one message. ``None`` means the message does not say.

    ``ars`` is the region as an ARS (12 digits, or a shorter level prefix); ``at`` is the moment
    whose validity applies (default: now, in Europe/Berlin).
    """

    leistung: str | None = None
    ars: str | None = None
    standard: str | None = None
    message_type: str | None = None
    reader: str | None = None
    channel: str | None = None
    at: date | datetime | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    rule: Rule
    specificity: Specificity
    valid: bool


class Resolution(NamedTuple):
    """The outcome of a lookup. ``rule`` is ``None`` when the message is unroutable.

    ``candidates`` (best first), ``decided_by`` and ``excluded`` (matching rules outside their
    validity) are filled by :meth:`Resolver.explain`; :meth:`Resolver.resolve` leaves them
    empty. A named tuple because the hot path creates one per message and that is the
    cheapest immutable record Python has.
    """

    query: RouteQuery
    rule: Rule | None
    candidates: tuple[Candidate, ...] = ()
    decided_by: str = ""
    excluded: tuple[Candidate, ...] = ()

    @property
    def routed(self) -> bool:
        return self.rule is not None

    @property
    def tenant(self) -> str | None:
        return None if self.rule is None else self.rule.tenant

    @property
    def backend(self) -> str | None:
        return None if self.rule is None else self.rule.backend

    @property
    def reason(self) -> str:
        """``unroutable`` for the quarantine when no rule matched."""
        return "routed" if self.rule is not None else "unroutable"

    def to_dict(self) -> dict[str, Any]:
        def rule_dict(candidate: Candidate) -> dict[str, Any]:
            return {
                "key": candidate.rule.key,
                "tenant": candidate.rule.tenant,
                "backend": candidate.rule.backend,
                "priority": candidate.rule.priority,
                "specificity": dict(zip(CRITERIA, candidate.specificity, strict=True)),
                "valid": candidate.valid,
            }

        return {
            "query": {
                name: getattr(self.query, name)
                for name in ("leistung", "ars", "standard", "message_type", "reader", "channel")
            }
            | {"at": _berlin_day(self.query.at).isoformat()},
            "routed": self.routed,
            "reason": self.reason,
            "tenant": self.tenant,
            "backend": self.backend,
            "rule": None if self.rule is None else self.rule.key,
            "decided_by": self.decided_by,
            "candidates": [rule_dict(c) for c in self.candidates],
            "excluded_by_validity": [rule_dict(c) for c in self.excluded],
        }


def _first(bucket: tuple[Rule, ...], query: RouteQuery, day: list[date]) -> Rule | None:
    """The best rule of a bucket matching the query; ``day`` caches the query's date."""
    for rule in bucket:
        if not _matches_rest(rule, query):
            continue
        if rule.valid_from is not None or rule.valid_until is not None:
            if not day:
                day.append(_berlin_day(query.at))
            if not rule.valid_at(day[0]):
                continue
        return rule
    return None


def _matches_rest(rule: Rule, query: RouteQuery) -> bool:
    """Criteria beyond Leistung and ARS, which the index has already matched."""
    return (
        (rule.standard is None or rule.standard == query.standard)
        and (rule.message_type is None or rule.message_type == query.message_type)
        and (rule.reader is None or rule.reader == query.reader)
        and (rule.channel is None or rule.channel == query.channel)
    )


# A bucket holds the rules sharing one (Leistung, ARS prefix), best first. A lone rule with no
# further condition is stored bare: most buckets of a national table are exactly that, and it
# saves both a tuple per bucket and the scan.
_Bucket = Rule | tuple[Rule, ...]
_Index = dict[str, _Bucket]
_QUERY_ARS_LENGTHS = frozenset(ARS_LEVELS) - {0}


def _unconditional(rule: Rule) -> bool:
    return (
        rule.standard is None
        and rule.reader is None
        and rule.channel is None
        and rule.valid_from is None
        and rule.valid_until is None
    )


def _usable_ars(ars: str | None) -> str:
    if ars is None or len(ars) not in _QUERY_ARS_LENGTHS or not (ars.isdigit() and ars.isascii()):
        # Malformed regions match only rules that do not constrain the region.
        return ""
    return ars


class Resolver:
    """A compiled, immutable table. Build it with :func:`compile_table`.

    The index is two levels of dicts: Leistung (``None`` for "any") -> ARS prefix -> bucket.
    """

    __slots__ = ("_any_leistung", "_by_leistung", "_lengths", "rule_count", "table")

    def __init__(self, table: RouteTable, index: dict[str | None, _Index]) -> None:
        self.table = table
        self.rule_count = len(table.rules)
        self._any_leistung: _Index = index.get(None, {})
        self._by_leistung: dict[str, _Index] = {k: v for k, v in index.items() if k is not None}
        present = {len(prefix) for prefixes in index.values() for prefix in prefixes}
        # Skipping lengths no rule uses saves dict probes on every lookup.
        self._lengths = tuple(n for n in _PREFIX_LENGTHS if n in present)

    def _buckets(self, query: RouteQuery) -> Iterator[tuple[Rule, ...]]:
        """Every bucket the query can match, in specificity order (for explanations)."""
        ars = _usable_ars(query.ars)
        specific = self._by_leistung.get(query.leistung) if query.leistung is not None else None
        for length in self._lengths:
            if length > len(ars):
                continue
            prefix = ars[:length]
            for index in (specific, self._any_leistung):
                bucket = None if index is None else index.get(prefix)
                if bucket is not None:
                    yield bucket if type(bucket) is tuple else (bucket,)  # type: ignore[misc]

    def resolve(self, query: RouteQuery) -> Resolution:
        """The winning rule, or an unroutable resolution. No explanation: the hot path."""
        ars = _usable_ars(query.ars)
        size = len(ars)
        specific = self._by_leistung.get(query.leistung) if query.leistung is not None else None
        general = self._any_leistung
        day: list[date] = []
        for length in self._lengths:
            if length > size:
                continue
            prefix = ars[:length]
            if specific is not None:
                bucket = specific.get(prefix)
                if bucket is not None:
                    if type(bucket) is not tuple:
                        return Resolution(query, bucket)  # type: ignore[arg-type]
                    found = _first(bucket, query, day)
                    if found is not None:
                        return Resolution(query, found)
            bucket = general.get(prefix)
            if bucket is not None:
                if type(bucket) is not tuple:
                    return Resolution(query, bucket)  # type: ignore[arg-type]
                found = _first(bucket, query, day)
                if found is not None:
                    return Resolution(query, found)
        return Resolution(query, None)

    def explain(self, query: RouteQuery) -> Resolution:
        """Like :meth:`resolve`, plus every matching rule and the criterion that decided."""
        day = _berlin_day(query.at)
        valid: list[Candidate] = []
        excluded: list[Candidate] = []
        for bucket in self._buckets(query):
            for rule in bucket:
                if _matches_rest(rule, query):
                    ok = rule.valid_at(day)
                    (valid if ok else excluded).append(Candidate(rule, specificity(rule), ok))
        valid.sort(key=lambda c: c.specificity, reverse=True)
        if not valid:
            decided = "no rule matches" + (
                f" at {day.isoformat()} ({len(excluded)} outside their validity)"
                if excluded
                else ""
            )
            return Resolution(query, None, (), decided, tuple(excluded))
        if len(valid) == 1:
            decided = "only matching rule"
        else:
            best, runner_up = valid[0].specificity, valid[1].specificity
            position = next(
                i for i, (a, b) in enumerate(zip(best, runner_up, strict=True)) if a != b
            )
            decided = (
                f"{CRITERIA[position]}: {_level(position, best[position])} > "
                f"{_level(position, runner_up[position])}"
            )
        return Resolution(query, valid[0].rule, tuple(valid), decided, tuple(excluded))


_MESSAGE_LEVELS = ("any", "standard", "standard+message type")


def _level(position: int, value: int) -> str:
    """A specificity component in an operator's words."""
    if position == 0:
        return f"{value} ({ARS_LEVELS[value]})"
    if position == 2:
        return _MESSAGE_LEVELS[value]
    if position == 5:
        return str(value)
    return "specific" if value else "any"


def _overlap(a: Rule, b: Rule) -> bool:
    a_start, b_start = a.valid_from or date.min, b.valid_from or date.min
    a_end, b_end = a.valid_until or date.max, b.valid_until or date.max
    return a_start < b_end and b_start < a_end


# A table of 100,000 copies of one rule must not become 10^10 tie reports: each rule that
# ties is named once, with one rule it ties with, and a group lists at most this many.
_MAX_TIES_LISTED = 100


def _ties(bucket: list[Rule]) -> Iterator[str]:
    groups: dict[tuple[object, ...], list[Rule]] = defaultdict(list)
    for rule in bucket:
        groups[(rule.standard, rule.message_type, rule.reader, rule.channel, rule.priority)].append(
            rule
        )
    for rules in groups.values():
        if len(rules) < 2:
            continue
        # Sweep by start: a rule overlaps an earlier one iff it starts before the latest end
        # seen so far, and the rule holding that end is one it ties with.
        ordered = sorted(rules, key=lambda rule: rule.valid_from or date.min)
        reaching = ordered[0]
        listed = unlisted = 0
        for second in ordered[1:]:
            if _overlap(reaching, second):
                if listed < _MAX_TIES_LISTED:
                    listed += 1
                    yield (
                        f"rules tie (same criteria and priority {second.priority}, overlapping "
                        f"validity): {reaching.describe()} | {second.describe()}; give one a "
                        "different priority or non-overlapping valid_from/valid_until"
                    )
                else:
                    unlisted += 1
            if (second.valid_until or date.max) > (reaching.valid_until or date.max):
                reaching = second
        if unlisted:
            yield f"... and {unlisted} further rules tie with the rules above"


def compile_table(table: RouteTable) -> Resolver:
    """Build the index; raise :class:`RouteTableError` listing every tie.

    Equal specificity for two rules that can match the same message implies identical match
    criteria (equal prefix lengths and co-matching prefixes are equal prefixes, and so on), so
    ties can only occur inside one (Leistung, ARS prefix) bucket, between rules with the same
    remaining criteria and priority.
    """
    grouped: dict[str | None, dict[str, list[Rule]]] = defaultdict(dict)
    for rule in table.rules:
        prefixes = grouped[rule.leistung]
        prefix = rule.ars or ""
        bucket = prefixes.get(prefix)
        if bucket is None:
            prefixes[prefix] = [rule]
        else:
            bucket.append(rule)
    problems: list[str] = []
    index: dict[str | None, _Index] = {}
    buckets = 0
    for leistung, prefixes in grouped.items():
        compiled: _Index = {}
        for prefix, rules in prefixes.items():
            buckets += 1
            if len(rules) == 1 and _unconditional(rules[0]):
                compiled[prefix] = rules[0]
                continue
            problems.extend(_ties(rules))
            rules.sort(key=specificity, reverse=True)
            compiled[prefix] = tuple(rules)
        index[leistung] = compiled
    if problems:
        raise RouteTableError(problems)
    log.info("routing table compiled rules=%d buckets=%d", len(table.rules), buckets)
    return Resolver(table, index)
