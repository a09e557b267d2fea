"""``poststelle stats``: received = routed + parked + in flight, from the streams alone."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from poststelle.routing.cli.common import add_common_options, with_hub_client
from poststelle.routing.ops.stats import collect_stats

__all__ = ["register"]


def _cmd_stats(args: argparse.Namespace) -> int:
    async def work(hub: Any) -> int:
        report = await collect_stats(hub.js)
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        balance = report["conservation"]
        print(
            "received {received} = routed {routed} + quarantined {quarantined}"
            " + dead-lettered by the router {router_dead_lettered} + in flight {in_flight}"
            "   (unaccounted {unaccounted}; dead-lettered in all {dead_lettered})".format(**balance)
        )
        replays = ", ".join(f"{n} into {name}" for name, n in balance["replayed"].items())
        print(f"  replays (not arrivals): {replays or 'none'}")
        for name, count in report["streams"].items():
            print(f"  {name:<11} {count:>8} messages")
        for name, numbers in sorted(report["consumers"].items()):
            print(
                f"  {name:<40} pending {numbers['stream_pending']:>6}"
                f"  unacked {numbers['ack_pending']:>6}  redelivered {numbers['redelivered']:>6}"
            )
        return 0 if balance["unaccounted"] == 0 else 1

    return asyncio.run(with_hub_client(args, work))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stats = subparsers.add_parser(
        "stats", help="stream counts and consumer backlogs: received = routed + parked + in flight"
    )
    add_common_options(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_cmd_stats)
