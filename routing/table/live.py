"""The hub's route resolver: the ``routes`` table, hot-reloaded, behind the core's protocol.

Until an operator imports a table (``poststelle routes import``), the ``[[routes]]`` of the
config file answer, so a fresh demo hub routes without any import. Once a table exists it
alone decides: a message it does not cover is unroutable, never silently sent elsewhere.
"""

from __future__ import annotations

from poststelle.routing.table.resolver import Resolver, RouteQuery
from poststelle.routing.table.static import RouteResolver, RouteTarget, RoutingFacts
from poststelle.routing.table.store import RouteTableWatcher, SnapshotPointer

__all__ = ["TableRouteResolver", "ags_index", "region_as_ars"]

# AGS: Land 2 · Regierungsbezirk 1 · Kreis 2 · Gemeinde 3 — the ARS without its four
# Gemeindeverband digits. Many XÖV messages (XBau's gemeindeschluessel) carry the AGS.
_AGS_LENGTH = 8
_ARS_LENGTH = 12
_KREIS_PREFIX = 5


def ags_index(resolver: Resolver) -> dict[str, str]:
    """AGS → ARS for every Gemeinde the table names, so an AGS finds its Gemeinde's rules."""
    index: dict[str, str] = {}
    for rule in resolver.table.rules:
        if rule.ars is not None and len(rule.ars) == _ARS_LENGTH:
            index[rule.ars[:_KREIS_PREFIX] + rule.ars[9:]] = rule.ars
    return index


def region_as_ars(region: str | None, by_ags: dict[str, str]) -> str | None:
    """The region as an ARS (prefix). An AGS the table does not know keeps its Kreis:
    the Gemeindeverband is not derivable from the AGS, the Kreis is."""
    if region is None or len(region) != _AGS_LENGTH or not region.isdigit():
        return region
    return by_ags.get(region, region[:_KREIS_PREFIX])


class TableRouteResolver:
    def __init__(self, watcher: RouteTableWatcher, fallback: RouteResolver) -> None:
        self._watcher = watcher
        self._fallback = fallback
        self._by_ags: dict[str, str] = {}
        self._indexed: Resolver | None = None

    def on_swap(self, resolver: Resolver, pointer: SnapshotPointer) -> None:
        self._by_ags, self._indexed = ags_index(resolver), resolver

    def resolve(self, facts: RoutingFacts) -> RouteTarget | None:
        resolver = self._watcher.resolver
        if resolver is None:
            return self._fallback.resolve(facts)
        if resolver is not self._indexed:
            self.on_swap(resolver, self._watcher.pointer)  # type: ignore[arg-type]
        resolution = resolver.resolve(
            RouteQuery(
                leistung=facts.leistung,
                ars=region_as_ars(facts.ars, self._by_ags),
                standard=facts.standard,
                message_type=facts.message_type,
                reader=facts.reader,
                channel=facts.channel,
            )
        )
        rule = resolution.rule
        if rule is None:
            return None
        pointer = self._watcher.pointer
        snapshot = pointer.snapshot if pointer is not None else "?"
        return RouteTarget(rule.tenant, rule.backend, rule=f"table {snapshot}: {rule.key}")
