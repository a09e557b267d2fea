"""``poststelle stats``: the streams' own account of conservation.

Every arrival JetStream stored in ``INBOX`` (re-sends within the dedupe window are dropped
there and never counted) is either routed to ``CASES``, parked in ``QUARANTINE`` by the
routing core, or still in flight behind the router's consumer:

    INBOX = CASES (routed) + QUARANTINE (inbound steps) + router pending + router unacked

A quarantine replay adds an ``INBOX`` message and removes its record, so each one shows
as one ``unaccounted`` message until the equation learns to count replays. Reply quarantines
(step ``reply``) belong to the way back and are reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.routing.core import ROUTER_DURABLE
from poststelle.routing.topology import CASES, DLQ, INBOX, OUTBOX, QUARANTINE, REPLIES

__all__ = ["collect_stats", "register"]


async def _messages(js: JetStreamContext, stream: str, subject: str | None = None) -> int:
    try:
        info = await js.stream_info(stream, subjects_filter=subject)
    except NotFoundError:
        return 0
    if subject is None:
        return int(info.state.messages)
    return sum((info.state.subjects or {}).values())


async def collect_stats(js: JetStreamContext) -> dict[str, Any]:
    streams = {name: await _messages(js, name) for name in (INBOX, CASES, QUARANTINE, DLQ)}
    streams[REPLIES] = await _messages(js, REPLIES)
    streams[OUTBOX] = await _messages(js, OUTBOX)
    reply_quarantined = await _messages(js, QUARANTINE, "quarantine.reply.>")
    consumers: dict[str, dict[str, int]] = {}
    for stream in (INBOX, CASES, REPLIES, OUTBOX):
        try:
            infos = await js.consumers_info(stream)
        except NotFoundError:
            continue
        for info in infos:
            consumers[info.name] = {
                "stream_pending": int(info.num_pending or 0),
                "ack_pending": int(info.num_ack_pending or 0),
                "redelivered": int(info.num_redelivered or 0),
            }
    router = consumers.get(ROUTER_DURABLE, {})
    in_flight = router.get("stream_pending", 0) + router.get("ack_pending", 0)
    routed_or_parked = streams[CASES] + streams[QUARANTINE] - reply_quarantined
    return {
        "streams": streams,
        "consumers": consumers,
        "conservation": {
            "received": streams[INBOX],
            "routed": streams[CASES],
            "quarantined": streams[QUARANTINE] - reply_quarantined,
            "in_flight": in_flight,
            "dead_lettered": streams[DLQ],
            # Zero when nothing was lost; replays make it differ by the number replayed.
            "unaccounted": streams[INBOX] - routed_or_parked - in_flight,
        },
    }


def _cmd_stats(args: argparse.Namespace) -> int:
    from poststelle.routing.cli import with_hub_client

    async def work(hub: Any) -> int:
        report = await collect_stats(hub.js)
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        balance = report["conservation"]
        print(
            "received {received} = routed {routed} + quarantined {quarantined}"
            " + in flight {in_flight}   (unaccounted {unaccounted};"
            " dead-lettered {dead_lettered})".format(**balance)
        )
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
    from poststelle.routing.cli import add_common_options

    stats = subparsers.add_parser(
        "stats", help="stream counts and consumer backlogs: received = routed + parked + in flight"
    )
    add_common_options(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_cmd_stats)
