"""YAML loading that remembers where each key stood, so a bad mapping names its line."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LineDict", "load_with_lines"]


class LineDict(dict[str, Any]):
    """A mapping whose ``lines[key]`` is the 1-based line of ``key`` in its file."""

    line: int = 0
    lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[str(key)] = loader.construct_object(value_node, deep=True)
        result.lines[str(key)] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_with_lines(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
