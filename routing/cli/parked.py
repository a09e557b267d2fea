"""What ``quarantine`` and ``dlq`` commands share: paging options, replay results, and the
name a replay is audited under."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Awaitable, Callable

from poststelle.contracts.progress import step_progress
from poststelle.routing.ops.parked import Progress, ReplayResult

__all__ = ["add_paging_options", "next_page_hint", "replay_actor", "replay_with_progress"]


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


async def replay_with_progress(
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


def replay_actor() -> str:
    """Who replays from the command line, for the cases' audit trail: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "cli:unknown"
