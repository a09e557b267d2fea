"""The smallest route resolver: the ``[[routes]]`` list of the hub's config file.

It answers the same question as the routing table (``RouteResolver``); first match wins,
which is enough for a demo set-up with a handful of rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RouteResolver", "RouteTarget", "RoutingFacts", "StaticRoute", "StaticRouteResolver"]


@dataclass(frozen=True)
class RoutingFacts:
    """What the core knows about a message when it asks where it goes."""

    standard: str
    message_type: str
    channel: str
    leistung: str | None = None
    ars: str | None = None
    reader: str | None = None


@dataclass(frozen=True)
class RouteTarget:
    tenant: str
    backend: str
    rule: str


class RouteResolver(Protocol):
    def resolve(self, facts: RoutingFacts) -> RouteTarget | None: ...


class StaticRoute(Protocol):
    """One ``[[routes]]`` entry of the hub's config (``hub.config.StaticRoute``), as read here:
    the table does not import the hub, so it names only the fields it uses."""

    @property
    def standard(self) -> str | None: ...
    @property
    def message_type(self) -> str | None: ...
    @property
    def tenant(self) -> str: ...
    @property
    def backend(self) -> str: ...


class StaticRouteResolver:
    def __init__(self, routes: Sequence[StaticRoute]) -> None:
        self._routes = tuple(routes)

    def resolve(self, facts: RoutingFacts) -> RouteTarget | None:
        for index, route in enumerate(self._routes):
            if route.standard not in (None, facts.standard):
                continue
            if route.message_type not in (None, facts.message_type):
                continue
            return RouteTarget(route.tenant, route.backend, rule=f"config routes[{index}]")
        return None
