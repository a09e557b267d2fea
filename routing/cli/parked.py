"""What ``quarantine`` and ``dlq`` commands share: paging options, replay progress, and the
name a replay is audited under."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TextIO

from poststelle.routing.ops.parked import Progress

__all__ = ["add_paging_options", "next_page_hint", "replay_actor", "replay_progress"]

# Short replays finish before anyone looks; long ones say how far they are.
_PROGRESS_FROM = 500
_PROGRESS_EVERY = 1.0


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


def replay_progress(stream: TextIO | None = None) -> Progress:
    """A ``Progress`` that writes ``replayed N/M`` to stderr about once a second."""
    out = stream or sys.stderr
    last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if total < _PROGRESS_FROM or (now - last < _PROGRESS_EVERY and done < total):
            return
        last = now
        print(f"replayed {done}/{total}", file=out, flush=True)

    return report


def replay_actor() -> str:
    """Who replays from the command line, for the cases' audit trail: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "cli:unknown"
