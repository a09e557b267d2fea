"""``poststelle dlq list|replay``: the operator's view of deliveries that gave up."""

from __future__ import annotations

import argparse

from poststelle.routing.cli.common import add_common_options
from poststelle.routing.cli.parked import add_paging_options, list_parked, replay_parked

__all__ = ["register"]


def _cmd_list(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.dlq import DeadLetter, list_dead_letters

    def lines(letter: DeadLetter) -> list[str]:
        when = letter.time[:19].replace("T", " ")
        return [
            f"#{letter.sequence:<6} {when}  {letter.consumer}  case={letter.case_id or '-'}"
            f"  {letter.size} bytes",
            f"         {letter.reason}",
        ]

    return list_parked(args, list_dead_letters, by="consumer", empty="no dead letters", lines=lines)


def _cmd_replay(args: argparse.Namespace) -> int:
    from poststelle.routing.ops.dlq import replay_dead_letters

    return replay_parked(
        args,
        replay_dead_letters,
        by="consumer",
        replayed_to="to their original subjects",
        not_replayable="no original subject",
    )


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
