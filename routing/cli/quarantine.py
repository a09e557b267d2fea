"""``poststelle quarantine list|replay``: the operator's view of arrivals the hub parked."""

from __future__ import annotations

import argparse
from datetime import datetime

from poststelle.routing.cli.common import add_common_options
from poststelle.routing.cli.parked import add_paging_options, list_parked, replay_parked

__all__ = ["register"]


def _cmd_quarantine_list(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.quarantine import QuarantinedMessage, list_quarantined

    def lines(item: QuarantinedMessage) -> list[str]:
        when = datetime.fromisoformat(item.time).strftime("%Y-%m-%d %H:%M:%S") if item.time else "-"
        return [
            f"#{item.sequence:<6} {when}  {item.step}/{item.reason}  case={item.case_id}",
            f"         {item.detail}",
        ]

    return list_parked(
        args,
        list_quarantined,
        by="reason",
        empty="quarantine is empty" if not args.after else "nothing after that sequence",
        lines=lines,
    )


def _cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.quarantine import replay_quarantined

    return replay_parked(
        args,
        replay_quarantined,
        by="reason",
        replayed_to="into INBOX",
        not_replayable="a quarantined reply, not an arrival",
    )


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
