"""The house's rooms and the directions their imports may take (docs/architecture.md).

``ARROWS`` is the rule: ``A -> B`` lets room ``A`` import room ``B`` and whatever ``B`` may
import. Every import counts wherever it stands: at the top, inside a function (lazy), or as a
module name handed to ``importlib``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("mappings", "contracts", "adapters", "routing")
ROUTING_ROOMS = ("cli", "hub", "console", "federation", "table", "ops", "streams")
MAX_MODULES_PER_FOLDER = 12

# Room -> the rooms it imports directly; arrows point at what is imported.
ARROWS: dict[str, frozenset[str]] = {
    "mappings": frozenset(),
    "contracts": frozenset({"mappings"}),
    "adapters": frozenset({"contracts"}),
    "routing": frozenset(),  # the package itself holds no code
    "routing.streams": frozenset({"contracts"}),
    "routing.table": frozenset({"routing.streams"}),
    "routing.federation": frozenset({"routing.table"}),
    "routing.ops": frozenset({"routing.streams"}),
    "routing.console": frozenset({"routing.ops", "routing.table", "adapters"}),
    "routing.hub": frozenset({"routing.console", "routing.federation", "routing.ops", "adapters"}),
    "routing.cli": frozenset({"routing.hub"}),
}

_MODULE_NAME = re.compile(r"poststelle(\.[A-Za-z_][A-Za-z0-9_]*)+")


def allowed(arrows: dict[str, frozenset[str]] = ARROWS) -> dict[str, frozenset[str]]:
    """Every room a room may import: what its arrows reach, directly or through others."""
    reach: dict[str, frozenset[str]] = {}
    for room in arrows:
        seen: set[str] = set()
        todo = list(arrows[room])
        while todo:
            target = todo.pop()
            if target not in seen:
                seen.add(target)
                todo.extend(arrows.get(target, ()))
        reach[room] = frozenset(seen)
    return reach


def room_of(module: str) -> str | None:
    """``poststelle.routing.hub.core`` -> ``routing.hub``; ``None`` outside the house."""
    parts = module.split(".")
    if parts[0] != "poststelle" or len(parts) < 2 or parts[1] not in FOLDERS:
        return None
    if parts[1] == "routing" and len(parts) > 2:
        return f"routing.{parts[2]}"
    return parts[1]


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["poststelle", *parts])


def imports_in(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield node.lineno, base
            # ``from poststelle.routing import hub`` imports the room ``routing.hub``.
            for alias in node.names:
                name = f"{base}.{alias.name}"
                if room_of(name) != room_of(base):
                    yield node.lineno, name
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_NAME.fullmatch(node.value)
        ):
            yield node.lineno, node.value  # importlib.import_module("poststelle....")


def violations(root: Path, arrows: dict[str, frozenset[str]] = ARROWS) -> list[str]:
    reach = allowed(arrows)
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            module = _module_of(path, root)
            room = room_of(module)
            assert room is not None
            if room not in reach:
                found.append(f"{path.relative_to(root)}: in no room ({room} is not one)")
                continue
            for line, target in imports_in(path, module):
                target_room = room_of(target)
                if target_room in (None, room) or target_room in reach[room]:
                    continue
                if module.startswith(f"{target}."):
                    continue  # its own parent package (``poststelle.routing``): already loaded
                found.append(f"{path.relative_to(root)}:{line}: {room} imports {target}")
    return found


def test_every_import_follows_the_arrows() -> None:
    assert violations(ROOT) == []


def test_a_lazy_import_against_the_arrows_is_caught(tmp_path: Path) -> None:
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text('"""A room."""\n')
    for room in ROUTING_ROOMS:
        (tmp_path / "routing" / room).mkdir()
        (tmp_path / "routing" / room / "__init__.py").write_text("")
    (tmp_path / "routing" / "table" / "rules.py").write_text(
        "def load():\n    from poststelle.routing.hub.runtime import Hub\n    return Hub\n"
    )
    (tmp_path / "routing" / "ops" / "stats.py").write_text(
        "from ..hub import core\n"  # relative imports count as well
    )
    (tmp_path / "adapters" / "portal.py").write_text(
        "import importlib\n\nimportlib.import_module('poststelle.routing.streams.topology')\n"
    )
    (tmp_path / "routing" / "hub" / "runtime.py").write_text(
        "from poststelle.routing import cli\nfrom poststelle.adapters import portal\n"
    )
    (tmp_path / "routing" / "flat.py").write_text("")
    assert violations(tmp_path) == [
        "adapters/portal.py:3: adapters imports poststelle.routing.streams.topology",
        "routing/flat.py: in no room (routing.flat is not one)",
        "routing/hub/runtime.py:1: routing.hub imports poststelle.routing.cli",
        "routing/ops/stats.py:1: routing.ops imports poststelle.routing.hub",
        "routing/table/rules.py:2: routing.table imports poststelle.routing.hub.runtime",
    ]


def test_the_arrows_keep_the_floors_and_the_rooms_apart() -> None:
    reach = allowed()
    # mappings <- contracts <- adapters <- routing: nothing imports a floor above its own.
    assert reach["mappings"] == set()
    assert reach["contracts"] == {"mappings"}
    assert reach["adapters"] == {"contracts", "mappings"}
    # Inside routing: the table and the operator's tools work without the runtime.
    assert "routing.hub" not in reach["routing.table"] | reach["routing.ops"]
    # The console is mounted by the hub and works with what the hub hands it.
    assert "routing.hub" not in reach["routing.console"]
    # Nothing imports the command line.
    assert all("routing.cli" not in rooms for rooms in reach.values())


def _diagram_arrows() -> dict[str, frozenset[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert block, "docs/architecture.md has no mermaid diagram"
    arrows: dict[str, set[str]] = {room: set() for room in ARROWS}
    names = {room.rsplit(".", 1)[-1]: room for room in ARROWS if room != "routing"}
    for source, target in re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", block[1], re.MULTILINE):
        arrows[names[source]].add(names[target])
    return {room: frozenset(targets) for room, targets in arrows.items()}


def test_the_diagram_draws_the_arrows_the_suite_checks() -> None:
    assert _diagram_arrows() == ARROWS


def test_routing_holds_only_rooms_of_at_most_a_dozen_modules() -> None:
    flat = sorted(p.name for p in (ROOT / "routing").glob("*.py") if p.name != "__init__.py")
    assert flat == [], "a module of routing belongs in one of its rooms"
    rooms = sorted(p.name for p in (ROOT / "routing").iterdir() if (p / "__init__.py").exists())
    assert rooms == sorted(ROUTING_ROOMS)
    for room in ROUTING_ROOMS:
        folder = ROOT / "routing" / room
        modules = [p for p in folder.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}]
        assert len(modules) <= MAX_MODULES_PER_FOLDER, f"routing/{room} holds {len(modules)}"


@pytest.mark.parametrize("room", sorted(ARROWS))
def test_every_room_says_what_it_holds_and_may_import(room: str) -> None:
    init = ROOT / room.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and "May import" in doc, f"{init.relative_to(ROOT)}: say what it may import"
