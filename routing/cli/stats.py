"""``poststelle stats``: received = routed + forwarded + parked + in flight, and what was
routed delivered or on its way, from the streams alone."""

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
            " + forwarded to peer states {forwarded}"
            "   (unaccounted {unaccounted}; dead-lettered in all {dead_lettered})".format(**balance)
        )
        print(
            "  routed {routed}: delivered {delivered} + being delivered {delivering}"
            " + dead-lettered by back ends {delivery_dead_lettered}"
            "   (native back ends have yet to pull {native_backlog})".format(**balance)
        )
        peers = ", ".join(f"{n} from {peer}" for peer, n in balance["arrived_from"].items())
        targets = ", ".join(f"{n} to {peer}" for peer, n in balance["forwarded_to"].items())
        print(
            f"  federation: arrived from peers {balance['arrived_from_peers']}"
            f" ({peers or 'none'}, part of received); forwarded {targets or 'none'}"
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
        "stats",
        help="stream counts and consumer backlogs: received = routed + forwarded + parked"
        " + in flight",
    )
    add_common_options(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_cmd_stats)
