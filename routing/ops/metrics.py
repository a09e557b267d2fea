"""In-process counters: the hub's own account of conservation (received = routed +
quarantined + duplicates + in flight)."""

from __future__ import annotations

from collections import Counter

__all__ = ["Counters"]


class Counters:
    def __init__(self) -> None:
        self._values: Counter[str] = Counter()

    def incr(self, name: str, by: int = 1) -> None:
        self._values[name] += by

    def get(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._values.items()))
