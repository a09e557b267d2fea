"""Adapters by name, from the entry-point group ``poststelle.adapters``.

A third-party package adds an adapter by declaring, in its own ``pyproject.toml``::

    [project.entry-points."poststelle.adapters"]
    my-adapter = "my_package:MyAdapter"

A misspelt name gets the closest registered names as a suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "AdapterRegistry", "UnknownAdapterError", "default_registry"]

ENTRY_POINT_GROUP = "poststelle.adapters"


class UnknownAdapterError(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown adapter {name!r}{hint} (registered: {', '.join(known) or 'none'})"
        )
        self.name = name
        self.suggestions = close


class AdapterRegistry:
    def __init__(self, points: Iterable[EntryPoint] | None = None) -> None:
        selected = entry_points(group=ENTRY_POINT_GROUP) if points is None else points
        self._points = {point.name: point for point in selected}
        self._loaded: dict[str, Any] = {}

    def names(self) -> list[str]:
        return sorted(self._points)

    def register(self, name: str, adapter_class: Any) -> None:
        """For tests and embedding: add a class without an installed distribution."""
        self._loaded[name] = adapter_class
        self._points.setdefault(name, EntryPoint(name, f"{adapter_class.__module__}:x", ""))

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        point = self._points.get(name)
        if point is None:
            raise UnknownAdapterError(name, self._points)
        adapter_class = point.load()
        self._loaded[name] = adapter_class
        return adapter_class


def default_registry() -> AdapterRegistry:
    return AdapterRegistry()
