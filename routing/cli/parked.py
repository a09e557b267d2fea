"""What ``quarantine`` and ``dlq`` commands share: paging options, the list and replay flows,
and the name a replay is audited under. Each command says only what differs: how it fetches
or replays its records, how a record reads as text, and where a replay sends them."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from poststelle.contracts.progress import step_progress
from poststelle.routing.cli.common import with_hub_client
from poststelle.routing.ops.parked import Progress, ReplayResult

__all__ = ["add_paging_options", "list_parked", "next_page_hint", "replay_parked"]


class _Listed(Protocol):
    @property
    def sequence(self) -> int: ...

    def as_json(self) -> dict[str, Any]: ...


_Item = TypeVar("_Item", bound=_Listed)


def add_paging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, metavar="N", help="at most N records")
    parser.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only records after sequence SEQ"
    )


def next_page_hint(sequences: list[int], limit: int | None) -> str | None:
    """The option that lists the next page, when this page was cut at ``limit``."""
    if limit is None or not sequences or len(sequences) < limit:
        return None
    return f"more may follow: --after {sequences[-1]}"


def list_parked(
    args: argparse.Namespace,
    fetch: Callable[..., Awaitable[Sequence[_Item]]],
    *,
    by: str,
    empty: str,
    lines: Callable[[_Item], Iterable[str]],
) -> int:
    """``list``: one page from ``fetch(js, <by>=--<by>, after=, limit=)``, printed as JSON
    (``--json``), as ``lines`` per record, or ``empty``; then the option for the next page
    when the page was cut."""

    async def work(hub: Any) -> int:
        items = await fetch(hub.js, **{by: getattr(args, by)}, after=args.after, limit=args.limit)
        if args.json:
            print(json.dumps([item.as_json() for item in items], indent=2))
            return 0
        if not items:
            print(empty)
            return 0
        for item in items:
            for line in lines(item):
                print(line)
        hint = next_page_hint([item.sequence for item in items], args.limit)
        if hint:
            print(hint)
        return 0

    return asyncio.run(with_hub_client(args, work))


def replay_parked(
    args: argparse.Namespace,
    replay: Callable[..., Awaitable[ReplayResult]],
    *,
    by: str,
    replayed_to: str,
    not_replayable: str,
) -> int:
    """``replay``: refuse without ``--<by>`` or ``--seq``; run ``replay(js, <by>=--<by>,
    sequences=--seq, progress=, actor=)`` with progress; say how many went ``replayed_to``
    and which were skipped (exit 1 if any were)."""
    chosen = getattr(args, by)
    if chosen is None and not args.seq:
        print(f"error: name a --{by} or at least one --seq to replay", file=sys.stderr)
        return 2

    async def work(hub: Any) -> int:
        actor = _replay_actor()
        result = await _replay_with_progress(
            args,
            lambda progress: replay(
                hub.js, **{by: chosen}, sequences=args.seq, progress=progress, actor=actor
            ),
        )
        if result is None:
            return 0
        print(f"replayed {len(result.replayed)} message(s) {replayed_to}")
        for sequence in result.skipped:
            print(f"not replayable ({not_replayable}): #{sequence}", file=sys.stderr)
        return 1 if result.skipped else 0

    return asyncio.run(with_hub_client(args, work))


async def _replay_with_progress(
    args: argparse.Namespace, replay: Callable[[Progress], Awaitable[ReplayResult]]
) -> ReplayResult | None:
    """Run ``replay`` with a progress bar on a terminal (lines elsewhere, nothing with
    ``--json``); with ``--json`` print the result as a document and return ``None``."""
    with step_progress(quiet=args.json) as progress:
        progress.step("replaying")
        result = await replay(progress.update)
    if args.json:
        print(json.dumps({"replayed": result.replayed, "skipped": result.skipped}))
        return None
    return result


def _replay_actor() -> str:
    """Who replays from the command line, for the cases' audit trail: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "cli:unknown"
