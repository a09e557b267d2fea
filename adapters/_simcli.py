"""What the simulators' command lines share: talking to a running simulator's admin API.

``poststelle fitconnect-sim`` and ``poststelle xta-sim`` both list what a simulator holds and
inject or clear faults over HTTP; the requests, the exit codes (2 for a wrong call, 1 when the
simulator refuses or cannot be reached) and the messages are the same for both.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from poststelle.adapters._simulator import ThreadedServer

__all__ = ["add_fault_parser", "fault_command", "list_command", "serve_until_interrupted"]


def serve_until_interrupted(simulator: ThreadedServer) -> int:
    """Keep the started ``simulator`` serving until Ctrl-C, then stop it."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


def add_fault_parser(
    actions: argparse._SubParsersAction,  # type: ignore[type-arg]
    *,
    description: str,
    kinds: Sequence[str],
    operations: Sequence[str] | None = None,
    operation_help: str | None = None,
) -> argparse.ArgumentParser:
    """The ``fault`` command with what every simulator's takes (``--url``, ``--clear``,
    ``--kind``, ``--operation``, one of ``operations`` if given, and ``--times``); the caller
    adds what its kinds need."""
    fault: argparse.ArgumentParser = actions.add_parser(
        "fault",
        help="inject a fault into a running simulator's next calls (or --clear them)",
        description=description,
    )
    fault.add_argument("--url", required=True)
    fault.add_argument("--clear", action="store_true", help="remove every injected fault")
    fault.add_argument("--kind", choices=list(kinds))
    fault.add_argument(
        "--operation",
        default="*",
        choices=list(operations) if operations is not None else None,
        help=operation_help,
    )
    fault.add_argument("--times", type=int, default=1, help="how many calls it hits")
    return fault


def _fail(prog: str, message: str, code: int = 1) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def list_command(
    prog: str,
    url: str,
    *,
    as_json: bool,
    empty: str,
    line: Callable[[Mapping[str, Any]], str],
) -> int:
    """GET ``url`` and print its entries: as the JSON it is, ``empty`` for none, or one
    ``line`` per entry."""
    try:
        response = httpx.get(url)
    except httpx.HTTPError as exc:
        return _fail(f"{prog} list", str(exc))
    if response.status_code != 200:
        return _fail(f"{prog} list", f"HTTP {response.status_code}: {response.text}")
    entries = response.json()
    if as_json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print(empty)
    for entry in entries:
        print(line(entry))
    return 0


def fault_command(prog: str, url: str, *, clear: bool, rule: Mapping[str, Any]) -> int:
    """POST ``rule`` (its ``kind`` set) to the simulator's ``url`` for faults, or DELETE them
    all with ``clear``: exactly one of the two."""
    if clear == (rule.get("kind") is not None):
        return _fail(f"{prog} fault", "give --kind or --clear", 2)
    try:
        response = httpx.delete(url) if clear else httpx.post(url, json=dict(rule))
    except httpx.HTTPError as exc:
        return _fail(f"{prog} fault", str(exc))
    if response.status_code not in (200, 201):
        return _fail(f"{prog} fault", f"HTTP {response.status_code}: {response.text}")
    print("faults cleared" if clear else f"fault injected: {json.dumps(dict(rule))}")
    return 0
