"""Federation between state hubs: territory ownership.

Each Land runs its own hub and owns the ARS prefix of its territory (its two-digit Land code).
A hub may only publish rules inside its territory; a rule without an ARS would claim the whole
country and is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass

from poststelle.routing.rules import RouteTable, RouteTableError, validate_ars_prefix

__all__ = ["STATE_PREFIXES", "Territory", "check_territory"]

# Short state ids (lower-case, usable as JetStream domains) -> Land code in the ARS.
STATE_PREFIXES: dict[str, str] = {
    "sh": "01",
    "hh": "02",
    "ni": "03",
    "hb": "04",
    "nw": "05",
    "he": "06",
    "rp": "07",
    "bw": "08",
    "by": "09",
    "sl": "10",
    "be": "11",
    "bb": "12",
    "mv": "13",
    "sn": "14",
    "st": "15",
    "th": "16",
}


@dataclass(frozen=True, slots=True)
class Territory:
    """The ARS prefixes one hub may publish rules for."""

    state: str
    prefixes: tuple[str, ...]

    @classmethod
    def for_state(cls, state: str) -> Territory:
        code = STATE_PREFIXES.get(state.lower())
        if code is None:
            raise ValueError(
                f"unknown state {state!r}; use one of {', '.join(sorted(STATE_PREFIXES))}"
            )
        return cls(state.lower(), (code,))

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            validate_ars_prefix(prefix)

    def covers(self, ars: str | None) -> bool:
        return ars is not None and any(ars.startswith(prefix) for prefix in self.prefixes)


def check_territory(table: RouteTable, territory: Territory) -> None:
    """Raise :class:`RouteTableError` naming every rule outside ``territory``."""
    owned = ", ".join(territory.prefixes)
    problems = [
        f"rule {index} ({rule.key}): outside the territory of {territory.state} "
        f"(ARS prefixes {owned})"
        + ("; a rule without ARS claims every state" if rule.ars is None else "")
        for index, rule in enumerate(table.rules, start=1)
        if not territory.covers(rule.ars)
    ]
    if problems:
        raise RouteTableError(problems)
