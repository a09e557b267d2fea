"""The streams' own account of conservation (``poststelle stats``).

Every arrival JetStream stored in ``INBOX`` (re-sends within the dedupe window are dropped
there and never counted) is either routed to ``CASES``, parked in ``QUARANTINE`` by the
routing core, dead-lettered by the router, or still in flight behind the router's consumer:

    received = routed + quarantined + router dead letters + router pending + router unacked

Replays are not arrivals. A replay publishes a parked record again (a quarantine record
into ``INBOX``, a dead letter to its original subject, e.g. ``CASES``), writes an entry to
the ``REPLAYS`` ledger (``replays.<from>.<to>``, same dedupe id as the replayed message)
and only then deletes the record. So the numbers are derived from the streams alone, by
any process, after any crash:

    received = INBOX messages - replays into INBOX
    routed   = CASES messages - replays into CASES

A replay interrupted after its publish leaves its record parked while the copy is routed
or parked again: until the same replay runs again (the dedupe ids make that a no-op that
writes the ledger entry and deletes the record), a copy into ``INBOX`` counts as one more
arrival (the equation still holds), a copy into ``CASES`` as one more routing
(``unaccounted`` -1). Redeliveries are no new messages: the routing core's outputs carry
ids derived from the arrival, so a redelivered arrival is stored once. Reply quarantines
(step ``reply``) belong to the way back and are reported apart. The equation holds while
nothing has aged out: ``INBOX`` keeps 30 days, ``CASES`` 90 (``streams/topology.py``).
"""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.contracts.envelope import dlq_subject
from poststelle.routing.streams.topology import (
    CASES,
    DLQ,
    INBOX,
    OUTBOX,
    QUARANTINE,
    REPLAYS,
    REPLIES,
    ROUTER_DURABLE,
)

__all__ = ["collect_stats"]


async def _messages(js: JetStreamContext, stream: str, subject: str | None = None) -> int:
    try:
        info = await js.stream_info(stream, subjects_filter=subject)
    except NotFoundError:
        return 0
    if subject is None:
        return int(info.state.messages)
    return sum((info.state.subjects or {}).values())


async def _replays_into(js: JetStreamContext) -> dict[str, int]:
    """Replays per target stream, from the ``REPLAYS`` ledger's subjects."""
    try:
        info = await js.stream_info(REPLAYS, subjects_filter="replays.>")
    except NotFoundError:
        return {}
    into: dict[str, int] = {}
    for subject, count in (info.state.subjects or {}).items():
        target = subject.rsplit(".", 1)[-1]
        into[target] = into.get(target, 0) + int(count)
    return into


async def collect_stats(js: JetStreamContext) -> dict[str, Any]:
    streams = {name: await _messages(js, name) for name in (INBOX, CASES, QUARANTINE, DLQ)}
    streams[REPLIES] = await _messages(js, REPLIES)
    streams[OUTBOX] = await _messages(js, OUTBOX)
    streams[REPLAYS] = await _messages(js, REPLAYS)
    reply_quarantined = await _messages(js, QUARANTINE, "quarantine.reply.>")
    router_dead_lettered = await _messages(js, DLQ, dlq_subject(ROUTER_DURABLE))
    replayed = await _replays_into(js)
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
    received = streams[INBOX] - replayed.get(INBOX, 0)
    routed = streams[CASES] - replayed.get(CASES, 0)
    quarantined = streams[QUARANTINE] - reply_quarantined
    return {
        "streams": streams,
        "consumers": consumers,
        "conservation": {
            "received": received,
            "routed": routed,
            "quarantined": quarantined,
            "router_dead_lettered": router_dead_lettered,
            "in_flight": in_flight,
            "unaccounted": received - routed - quarantined - router_dead_lettered - in_flight,
            "dead_lettered": streams[DLQ],
            "replayed": dict(sorted(replayed.items())),
        },
    }
