"""``poststelle dlq list|replay``: the operator's view of deliveries that gave up."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from poststelle.routing.cli.common import add_common_options, with_hub_client
from poststelle.routing.cli.parked import (
    add_paging_options,
    next_page_hint,
    replay_actor,
    replay_with_progress,
)

__all__ = ["register"]


def _cmd_list(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.dlq import list_dead_letters

    async def work(hub: Any) -> int:
        letters = await list_dead_letters(
            hub.js, consumer=args.consumer, after=args.after, limit=args.limit
        )
        if args.json:
            print(json.dumps([letter.as_json() for letter in letters], indent=2))
            return 0
        if not letters:
            print("no dead letters")
            return 0
        for letter in letters:
            when = letter.time[:19].replace("T", " ")
            print(
                f"#{letter.sequence:<6} {when}  {letter.consumer}  case={letter.case_id or '-'}"
                f"  {letter.size} bytes"
            )
            print(f"         {letter.reason}")
        hint = next_page_hint([letter.sequence for letter in letters], args.limit)
        if hint:
            print(hint)
        return 0

    return asyncio.run(with_hub_client(args, work))


def _cmd_replay(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.dlq import replay_dead_letters

    if args.consumer is None and not args.seq:
        print("error: name a --consumer or at least one --seq to replay", file=sys.stderr)
        return 2

    async def work(hub: Any) -> int:
        result = await replay_with_progress(
            args,
            lambda progress: replay_dead_letters(
                hub.js,
                consumer=args.consumer,
                sequences=args.seq,
                progress=progress,
                actor=replay_actor(),
            ),
        )
        if result is None:
            return 0
        print(f"replayed {len(result.replayed)} message(s) to their original subjects")
        for sequence in result.skipped:
            print(f"not replayable (no original subject): #{sequence}", file=sys.stderr)
        return 1 if result.skipped else 0

    return asyncio.run(with_hub_client(args, work))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dlq = subparsers.add_parser("dlq", help="deliveries that exhausted their retries")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = commands.add_parser("list", help="dead letters: consumer, case, reason, time, size")
    add_common_options(listing)
    listing.add_argument("--consumer", help="only this consumer (e.g. case_stadt-kiel_akte)")
    listing.add_argument("--json", action="store_true")
    add_paging_options(listing)
    listing.set_defaults(func=_cmd_list)

    replay = commands.add_parser(
        "replay", help="publish dead letters to their original subject again, then drop them"
    )
    add_common_options(replay)
    replay.add_argument("--json", action="store_true", help="the result as JSON, no progress")
    replay.add_argument("--consumer", help="replay everything this consumer gave up on")
    replay.add_argument(
        "--seq",
        type=int,
        nargs="+",
        action="extend",
        metavar="N",
        help="replay these DLQ records (see dlq list)",
    )
    replay.set_defaults(func=_cmd_replay)
