"""Dead letters from JetStream advisories, and the operator's list and replay."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import FetchTimeoutError

from poststelle.contracts.envelope import (
    H_CASE_ID,
    H_MSG_ID,
    H_ORIGINAL_SUBJECT,
    dead_letter_id,
    dlq_subject,
)
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub, connect
from poststelle.routing.ops.dlq import (
    MAX_DELIVERIES_REASON,
    list_dead_letters,
    replay_dead_letters,
)
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import CASES, DLQ, ensure_topology
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

CRASHED = "deliver-crash-test"
SUBJECT = "case.crash.test.antrag"


async def _crashed_worker(
    subscription: JetStreamContext.PullSubscription, stop: asyncio.Event, deliveries: list[int]
) -> None:
    """A consumer whose handler never acks, as if its process died mid-delivery each time."""
    while not stop.is_set():
        try:
            deliveries.extend(1 for _ in await subscription.fetch(1, timeout=0.2))
        except (FetchTimeoutError, TimeoutError):
            continue


async def _given_up(js: JetStreamContext, deliveries: list[int]) -> bool:
    """Three deliveries seen and none pending: the server has stopped redelivering."""
    if len(deliveries) < 3:
        return False
    info = await js.consumer_info(CASES, CRASHED)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def _exhaust(js: JetStreamContext, case_id: str) -> int:
    subscription = await js.pull_subscribe(
        "case.crash.>",
        durable=CRASHED,
        stream=CASES,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=0.3, max_deliver=3),
    )
    stop = asyncio.Event()
    deliveries: list[int] = []
    worker = asyncio.create_task(_crashed_worker(subscription, stop, deliveries))
    ack = await js.publish(SUBJECT, b'{"event": 1}', headers={H_CASE_ID: case_id})
    try:
        await eventually(lambda: _given_up(js, deliveries))
    finally:
        stop.set()
        await worker
    assert len(deliveries) == 3
    return ack.seq


async def test_message_that_never_gets_acked_lands_in_dlq_once(hub: Hub) -> None:
    sequence = await _exhaust(hub.js, "case-crash-1")
    [letter] = await eventually(lambda: list_dead_letters(hub.js, consumer=CRASHED))
    assert letter.case_id == "case-crash-1"
    assert letter.reason.startswith(MAX_DELIVERIES_REASON)
    assert letter.subject == SUBJECT
    assert letter.size == len(b'{"event": 1}')
    record = await hub.js.get_msg(DLQ, letter.sequence)
    assert record.headers is not None
    assert record.headers[H_MSG_ID] == dead_letter_id(CRASHED, sequence)
    assert record.data == b'{"event": 1}'
    # The advisory is read once: once the recorder has acked everything, still one record.
    await eventually(lambda: _recorder_idle(hub.js))
    assert len(await list_dead_letters(hub.js)) == 1
    assert hub.counters.get("dlq.recorded") == 1
    assert hub.audit is not None
    hops = [
        (entry.hop, entry.detail.get("consumer")) for entry in await hub.audit.read("case-crash-1")
    ]
    assert hops == [("dead-lettered", CRASHED)]


async def test_message_the_worker_already_dead_lettered_is_not_recorded_again(hub: Hub) -> None:
    # The worker's own record carries the same dedupe id the recorder will use.
    next_sequence = (await hub.js.stream_info(CASES)).state.last_seq + 1
    await hub.js.publish(
        dlq_subject(CRASHED),
        b'{"event": 1}',
        headers={H_MSG_ID: dead_letter_id(CRASHED, next_sequence), H_CASE_ID: "case-crash-2"},
    )
    assert await _exhaust(hub.js, "case-crash-2") == next_sequence
    advisories = await eventually(
        lambda: _consumer_delivered(hub.js, "ADVISORIES", "dlq-recorder", at_least=1)
    )
    assert advisories >= 1
    assert len(await list_dead_letters(hub.js)) == 1
    assert hub.counters.get("dlq.recorded") == 0


async def test_advisory_raised_while_the_hub_was_down_is_recorded_at_start(
    hub_config: HubConfig, fresh_nats: EmbeddedNatsServer
) -> None:
    nc = await connect(hub_config, fresh_nats.client_url)
    try:
        js = nc.jetstream()
        await ensure_topology(js)
        await _exhaust(js, "case-crash-3")
    finally:
        await nc.close()
    async with Hub(hub_config) as hub:
        [letter] = await eventually(lambda: list_dead_letters(hub.js))
    assert (letter.consumer, letter.case_id) == (CRASHED, "case-crash-3")


async def test_replay_sends_the_original_back_and_clears_the_record(hub: Hub) -> None:
    await _exhaust(hub.js, "case-crash-4")
    [letter] = await eventually(lambda: list_dead_letters(hub.js))
    with pytest.raises(ValueError, match="--consumer"):
        await replay_dead_letters(hub.js)
    before = (await hub.js.stream_info(CASES)).state.last_seq

    result = await replay_dead_letters(hub.js, consumer=CRASHED)

    assert result.replayed == [letter.sequence]
    assert result.skipped == []
    assert await list_dead_letters(hub.js) == []
    replayed = await hub.js.get_msg(CASES, before + 1)
    assert replayed.subject == SUBJECT
    assert replayed.data == b'{"event": 1}'
    assert replayed.headers is not None
    assert replayed.headers[H_CASE_ID] == "case-crash-4"
    assert replayed.headers[H_MSG_ID] == f"replay:DLQ:{letter.sequence}"
    assert H_ORIGINAL_SUBJECT not in replayed.headers


async def test_replay_refuses_subjects_outside_the_hubs_streams(hub: Hub) -> None:
    await hub.js.publish(
        dlq_subject("someone"),
        b"x",
        headers={H_ORIGINAL_SUBJECT: "$JS.API.STREAM.DELETE.CASES", H_MSG_ID: "forged"},
    )
    [letter] = await list_dead_letters(hub.js)
    result = await replay_dead_letters(hub.js, sequences=[letter.sequence])
    assert (result.replayed, result.skipped) == ([], [letter.sequence])
    assert len(await list_dead_letters(hub.js)) == 1


async def test_recorder_ignores_what_is_not_a_max_deliveries_advisory(hub: Hub) -> None:
    assert hub.dead_letters is not None
    for body in (b"not json", b"[]", json.dumps({"type": "other"}).encode()):
        assert await hub.dead_letters.record(body) is False
    foreign = {
        "type": "io.nats.jetstream.advisory.v1.max_deliver",
        "stream": "KV_cases",
        "consumer": "x",
        "stream_seq": 1,
        "deliveries": 3,
    }
    assert await hub.dead_letters.record(json.dumps(foreign).encode()) is False
    assert await list_dead_letters(hub.js) == []


async def _recorder_idle(js: JetStreamContext) -> bool:
    info = await js.consumer_info("ADVISORIES", "dlq-recorder")
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _consumer_delivered(
    js: JetStreamContext, stream: str, durable: str, *, at_least: int
) -> int:
    info = await js.consumer_info(stream, durable)
    acked = info.ack_floor.stream_seq if info.ack_floor else 0
    return acked if acked >= at_least else 0


async def _acked_by_the_backend(hub: Hub) -> dict[str, Any] | None:
    """The report once the back end's consumer has the delivery's ack (sent unawaited)."""
    report: dict[str, Any] = await collect_stats(hub.js)
    return report if report["conservation"]["delivered"] == 1 else None


async def test_stats_balance_received_against_routed_parked_and_in_flight(hub: Hub) -> None:
    async with httpx.AsyncClient(base_url=hub.http_url) as http:
        body, _ = xbau_antrag()
        for payload in (body, body, b"<not-xml"):  # the second is a recognised duplicate
            response = await http.post(
                "/v1/submissions", content=payload, headers={"Content-Type": "application/xml"}
            )
            assert response.status_code == 202
    await eventually(lambda: hub.counters.get("delivery.delivered") == 1)
    await eventually(lambda: hub.counters.get("core.quarantined") == 1)
    report = await eventually(lambda: _acked_by_the_backend(hub))
    [backend] = report["conservation"]["delivered_by_backend"]
    assert report["conservation"] == {
        "received": 2,
        "routed": 1,
        "quarantined": 1,
        "router_dead_lettered": 0,
        "in_flight": 0,
        "unaccounted": 0,
        "dead_lettered": 0,
        "replayed": {},
        "forwarded": 0,
        "forwarded_to": {},
        "arrived_from_peers": 0,
        "arrived_from": {},
        "delivered": 1,
        "delivering": 0,
        "delivery_dead_lettered": 0,
        "native_backlog": 0,
        "delivered_by_backend": {backend: 1},
    }
    assert report["consumers"]["router"]["stream_pending"] == 0
    assert any(name.startswith("case_") for name in report["consumers"])
