"""``poststelle quarantine list|replay``: the operator's view of arrivals the hub parked."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from poststelle.routing.cli.common import add_common_options, with_hub_client
from poststelle.routing.cli.parked import (
    add_paging_options,
    next_page_hint,
    replay_actor,
    replay_with_progress,
)

__all__ = ["register"]


def _cmd_quarantine_list(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.quarantine import list_quarantined

    async def work(hub: Any) -> int:
        items = await list_quarantined(
            hub.js, reason=args.reason, after=args.after, limit=args.limit
        )
        if args.json:
            print(json.dumps([item.as_json() for item in items], indent=2))
            return 0
        if not items:
            print("quarantine is empty" if not args.after else "nothing after that sequence")
            return 0
        for item in items:
            when = (
                datetime.fromisoformat(item.time).strftime("%Y-%m-%d %H:%M:%S")
                if item.time
                else "-"
            )
            print(f"#{item.sequence:<6} {when}  {item.step}/{item.reason}  case={item.case_id}")
            print(f"         {item.detail}")
        hint = next_page_hint([item.sequence for item in items], args.limit)
        if hint:
            print(hint)
        return 0

    return asyncio.run(with_hub_client(args, work))


def _cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.quarantine import replay_quarantined

    if args.reason is None and not args.seq:
        print("error: name a --reason or at least one --seq to replay", file=sys.stderr)
        return 2

    async def work(hub: Any) -> int:
        result = await replay_with_progress(
            args,
            lambda progress: replay_quarantined(
                hub.js,
                reason=args.reason,
                sequences=args.seq,
                progress=progress,
                actor=replay_actor(),
            ),
        )
        if result is None:
            return 0
        print(f"replayed {len(result.replayed)} message(s) into INBOX")
        for sequence in result.skipped:
            print(
                f"not replayable (a quarantined reply, not an arrival): #{sequence}",
                file=sys.stderr,
            )
        return 1 if result.skipped else 0

    return asyncio.run(with_hub_client(args, work))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    quarantine = subparsers.add_parser("quarantine", help="parked messages")
    quarantine_commands = quarantine.add_subparsers(dest="quarantine_command", required=True)
    q_list = quarantine_commands.add_parser("list", help="what is parked, with step and reason")
    add_common_options(q_list)
    q_list.add_argument("--reason", help="only this reason (e.g. not-xml, unroutable)")
    q_list.add_argument("--json", action="store_true")
    add_paging_options(q_list)
    q_list.set_defaults(func=_cmd_quarantine_list)
    q_replay = quarantine_commands.add_parser("replay", help="send parked messages through again")
    add_common_options(q_replay)
    q_replay.add_argument("--json", action="store_true", help="the result as JSON, no progress")
    q_replay.add_argument("--reason", help="replay everything parked with this reason")
    q_replay.add_argument(
        "--seq", type=int, action="append", help="replay this record (repeatable)"
    )
    q_replay.set_defaults(func=_cmd_quarantine_replay)
