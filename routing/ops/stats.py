"""The streams' own account of conservation (``poststelle stats``).

Every arrival JetStream stored in ``INBOX`` (re-sends within the dedupe window are dropped
there and never counted) is either routed to ``CASES``, forwarded to a peer state's hub
(``FEDERATION``), parked in ``QUARANTINE`` by the routing core, dead-lettered by the
router, or still in flight behind the router's consumer:

    received = routed + forwarded + quarantined + router dead letters
               + router pending + router unacked

Federation (``federation/states.py``): ``forwarded`` is the ``FEDERATION`` stream's count
(``fed.<peer>.<this state>``; a re-forward carries the arrival's dedupe id and is dropped
there), and on the peer's side those cases are arrivals like any other: its ``INBOX``
sources them as ``inbox.federation.<origin>``, counted apart as ``arrived_from_peers``
(a part of ``received``, not an extra term). A forwarded case is this hub's business done
once JetStream stored it in ``FEDERATION``; the peer's sourcing takes it from there.

What was routed is delivered, on its way to a back end, or dead-lettered there:

    routed = delivered + delivering + delivery dead letters (+ events no back end consumes)

from the back ends' durable consumers on ``CASES`` (``case_<tenant>_<backend>``): the
events on a consumer's subject that are neither pending, unacknowledged nor in ``DLQ``,
less the dead letters replayed into ``CASES`` (their original stays in the stream). A native
NATS back end (its consumer carries ``BACKEND_CONSUMED_BY`` in its metadata) pulls ``CASES``
itself: the hub's part ends when JetStream stored the event under the back end's subject,
so its events count as delivered from then; what it has not pulled yet is ``native_backlog``.

Replays are not arrivals. A replay publishes a parked record again (a quarantine record
into ``INBOX``, a dead letter to its original subject, e.g. ``CASES``), writes an entry to
the ``REPLAYS`` ledger (``replays.<from>.<to>.<subject>``, same dedupe id as the replayed
message) and only then deletes the record. So the numbers are derived from the streams alone, by
any process, after any crash:

    received = INBOX messages - replays into INBOX
    routed   = CASES messages - replays into CASES
    delivered = per back end: its events - backlog - its DLQ records - its replayed dead letters

A replay interrupted after its publish leaves its record parked while the copy is routed
or parked again: until the same replay runs again (the dedupe ids make that a no-op that
writes the ledger entry and deletes the record), a copy into ``INBOX`` counts as one more
arrival (the equation still holds), a copy into ``CASES`` as one more routing
(``unaccounted`` -1). Redeliveries are no new messages: the routing core's outputs carry
ids derived from the arrival, so a redelivered arrival is stored once. Reply quarantines
(step ``reply``) belong to the way back and are reported apart. The equation holds while
nothing has aged out: ``INBOX`` keeps 30 days, ``CASES`` 90 (``streams/topology.py``),
``FEDERATION`` 30. A quarantined arrival from a peer replayed into ``INBOX`` counts as one
more arrival from that peer.
"""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from poststelle.contracts.envelope import dlq_subject
from poststelle.routing.streams.topology import (
    BACKEND_CONSUMED_BY,
    BACKEND_CONSUMER_PREFIX,
    CASES,
    DLQ,
    FEDERATION,
    FEDERATION_ARRIVALS,
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


def _replays_into(ledger: dict[str, int]) -> dict[str, int]:
    """Replays per target stream, from the ``REPLAYS`` ledger's subjects."""
    return _by_token(ledger, 2)


def _replays_to(ledger: dict[str, int], stream: str) -> dict[str, int]:
    """Replays into ``stream`` per target subject (``""``: an entry that names none)."""
    into: dict[str, int] = {}
    for subject, count in ledger.items():
        parts = subject.split(".", 3)
        if len(parts) > 2 and parts[2] == stream:
            target = parts[3] if len(parts) > 3 else ""
            into[target] = into.get(target, 0) + count
    return into


async def _subjects(js: JetStreamContext, stream: str, subjects: str) -> dict[str, int]:
    try:
        info = await js.stream_info(stream, subjects_filter=subjects)
    except NotFoundError:
        return {}
    return {subject: int(count) for subject, count in (info.state.subjects or {}).items()}


def _by_token(counts: dict[str, int], index: int) -> dict[str, int]:
    grouped: dict[str, int] = {}
    for subject, count in counts.items():
        parts = subject.split(".")
        key = parts[index] if len(parts) > index else subject
        grouped[key] = grouped.get(key, 0) + count
    return grouped


def _on_subject(counts: dict[str, int], filter_subject: str) -> int:
    """Messages whose subject matches ``filter_subject`` (``*`` and a trailing ``>``)."""
    wanted = filter_subject.split(".")
    total = 0
    for subject, count in counts.items():
        tokens = subject.split(".")
        if wanted[-1] == ">":
            fits = len(tokens) >= len(wanted) and all(
                w in ("*", ">") or w == t for w, t in zip(wanted, tokens, strict=False)
            )
        else:
            fits = len(tokens) == len(wanted) and all(
                w == "*" or w == t for w, t in zip(wanted, tokens, strict=True)
            )
        total += count if fits else 0
    return total


async def _deliveries(
    js: JetStreamContext, infos: list[ConsumerInfo], replayed: dict[str, int]
) -> dict[str, Any]:
    """``delivered``, ``delivering``, dead letters and native backlogs of the back ends,
    from their consumers on ``CASES`` (``infos``) and two subject counts."""
    events = await _subjects(js, CASES, "case.>")
    letters = await _subjects(js, DLQ, "dlq.>")
    per_backend: dict[str, int] = {}
    delivering = dead = native_backlog = 0
    for info in infos:
        if not info.name.startswith(BACKEND_CONSUMER_PREFIX) or not info.config.filter_subject:
            continue
        backlog = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        parked = letters.get(dlq_subject(info.name), 0)
        native = (info.config.metadata or {}).get(BACKEND_CONSUMED_BY) == "backend"
        if native:
            native_backlog += backlog
            backlog = 0
        # A replayed dead letter is in the stream twice: its terminated original and the copy.
        again = _on_subject(replayed, info.config.filter_subject)
        per_backend[info.name] = (
            _on_subject(events, info.config.filter_subject) - backlog - parked - again
        )
        delivering += backlog
        dead += parked
    return {
        # Entries from before the ledger named subjects belong to no back end in particular.
        "delivered": sum(per_backend.values()) - replayed.get("", 0),
        "delivering": delivering,
        "delivery_dead_lettered": dead,
        "native_backlog": native_backlog,
        "delivered_by_backend": dict(sorted(per_backend.items())),
    }


async def collect_stats(js: JetStreamContext) -> dict[str, Any]:
    streams = {name: await _messages(js, name) for name in (INBOX, CASES, QUARANTINE, DLQ)}
    streams[REPLIES] = await _messages(js, REPLIES)
    streams[OUTBOX] = await _messages(js, OUTBOX)
    streams[REPLAYS] = await _messages(js, REPLAYS)
    forwarded_to = _by_token(await _subjects(js, FEDERATION, "fed.>"), 1)
    arrived_from = _by_token(await _subjects(js, INBOX, FEDERATION_ARRIVALS), 2)
    if forwarded_to:
        streams[FEDERATION] = await _messages(js, FEDERATION)
    reply_quarantined = await _messages(js, QUARANTINE, "quarantine.reply.>")
    router_dead_lettered = await _messages(js, DLQ, dlq_subject(ROUTER_DURABLE))
    ledger = await _subjects(js, REPLAYS, "replays.>")
    replayed = _replays_into(ledger)
    consumers: dict[str, dict[str, int]] = {}
    backend_consumers: list[ConsumerInfo] = []
    for stream in (INBOX, CASES, REPLIES, OUTBOX):
        try:
            infos = await js.consumers_info(stream)
        except NotFoundError:
            continue
        if stream == CASES:
            backend_consumers = infos
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
    forwarded = sum(forwarded_to.values())
    deliveries = await _deliveries(js, backend_consumers, _replays_to(ledger, CASES))
    return {
        "streams": streams,
        "consumers": consumers,
        "conservation": {
            "received": received,
            "routed": routed,
            "quarantined": quarantined,
            "router_dead_lettered": router_dead_lettered,
            "in_flight": in_flight,
            "unaccounted": received
            - routed
            - forwarded
            - quarantined
            - router_dead_lettered
            - in_flight,
            "dead_lettered": streams[DLQ],
            "replayed": dict(sorted(replayed.items())),
            "forwarded": forwarded,
            "forwarded_to": dict(sorted(forwarded_to.items())),
            "arrived_from_peers": sum(arrived_from.values()),
            "arrived_from": dict(sorted(arrived_from.items())),
            **deliveries,
        },
    }
