"""A deliberately small path language for JSON submissions.

``formData.control.leikaIds[0]`` walks keys and indexes; ``items[*].name`` fans out into a list.
Keys containing dots or brackets are written in quotes: ``formData."a.b"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["JsonPathError", "compile_json_path"]

_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_$][\w$-]*)|\[(\d+|\*)\]|(\.))')


class JsonPathError(ValueError):
    pass


def _steps(path: str) -> list[str | int | None]:
    steps: list[str | int | None] = []
    pos = 0
    expect_name = True
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None or match.end() == pos:
            raise JsonPathError(f"cannot read {path[pos:]!r} in path {path!r}")
        quoted, name, index, dot = match.groups()
        if dot:
            if expect_name:
                raise JsonPathError(f"unexpected '.' in path {path!r}")
            expect_name = True
        elif index is not None:
            steps.append(None if index == "*" else int(index))
            expect_name = False
        else:
            if not expect_name:
                raise JsonPathError(f"missing '.' before {match.group(0)!r} in {path!r}")
            steps.append(quoted if quoted is not None else name)
            expect_name = False
        pos = match.end()
    if not steps or expect_name:
        raise JsonPathError(f"incomplete path {path!r}")
    return steps


def _has(value: Any, step: str | int | None) -> bool:
    if isinstance(step, int):
        return isinstance(value, list) and step < len(value)
    return isinstance(step, str) and isinstance(value, dict) and step in value


def compile_json_path(path: str) -> Callable[[Any], Any]:
    """Return a function taking a JSON value to the selected value (list when fanned out)."""
    steps = _steps(path)
    fans_out = None in steps

    def select(document: Any) -> Any:
        current: list[Any] = [document]
        for step in steps:
            following: list[Any] = []
            for value in current:
                if step is None and isinstance(value, list):
                    following.extend(value)
                elif _has(value, step):
                    following.append(value[step])
            current = following
        if fans_out:
            return current
        return current[0] if current else None

    return select
