"""The routing core's batches on a real nats-server: one pub-ack wait per batch that acks each
arrival whose outputs were stored and naks only the one whose output the server refused, a
redelivered batch stored once, and CaseEvents that leave while their batch is still being
inspected. Each test drives ``process_batch`` itself on a hub without workers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from poststelle.contracts.envelope import H_CASE_ID
from poststelle.contracts.inspection import InspectedMessage, MessageInspector
from poststelle.routing.hub.caseregistry import load_case, update_case
from poststelle.routing.hub.config import HubConfig, StaticRoute
from poststelle.routing.hub.core import RoutingCore
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import AUDIT, CASES, INBOX, ROUTER_DURABLE
from poststelle.routing.table.static import StaticRouteResolver
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

ROUTES = [StaticRoute(standard="xbau", tenant="stadt-kiel", backend="bauakte")]


@pytest.fixture
async def client_hub(hub_config: HubConfig) -> AsyncIterator[Hub]:
    """The hub's streams and intake, no routing core of its own: the test runs the batches."""
    hub = Hub(hub_config, resolver=StaticRouteResolver(ROUTES))
    await hub.start(http=False, workers=False)
    try:
        yield hub
    finally:
        await hub.stop()


def _core(
    hub: Hub, *, js: Any | None = None, inspector: MessageInspector | None = None
) -> RoutingCore:
    assert hub.audit is not None
    return RoutingCore(
        js or hub.js,
        hub.resolver,
        hub.audit,
        hub.counters,
        inspector=inspector or MessageInspector(hub.config.data_dir),
    )


async def _submit(hub: Hub, count: int) -> list[str]:
    assert hub.intake is not None
    return [
        (await hub.intake.accept(xbau_antrag()[0], channel="portal", adapter="test")).case_id
        for _ in range(count)
    ]


async def _fetch(subscription: Any, count: int) -> list[Msg]:
    """Exactly ``count`` messages (a redelivery after a nak's delay included), or fail."""
    batch: list[Msg] = []
    deadline = time.monotonic() + 30.0
    while len(batch) < count and time.monotonic() < deadline:
        try:
            batch += await subscription.fetch(count - len(batch), timeout=5.0)
        except TimeoutError:
            continue
    assert len(batch) == count, f"{len(batch)} of {count} messages came"
    return batch


async def _stored_events(js: JetStreamContext) -> list[tuple[str, Any]]:
    """(case id, store time) of every CaseEvent in ``CASES``, in stored order."""
    state = (await js.stream_info(CASES)).state
    if not state.messages:
        return []
    events = []
    for seq in range(state.first_seq, state.last_seq + 1):
        stored = await js.get_msg(CASES, seq)
        events.append(((stored.headers or {})[H_CASE_ID], stored.time))
    return events


async def _router_settled(js: JetStreamContext) -> bool:
    info = await js.consumer_info(INBOX, ROUTER_DURABLE)
    return info.num_pending == 0 and info.num_ack_pending == 0


class _CaseEventRefused:
    """The hub's JetStream, except that one case's CaseEvent goes to a subject no stream
    takes: the server answers "no responders", as it does while ``CASES`` has no leader."""

    def __init__(self, js: JetStreamContext, case_id: str) -> None:
        self._js = js
        self._case_id = case_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish_async(self, subject: str, payload: bytes = b"", **kwargs: Any) -> Any:
        headers = kwargs.get("headers") or {}
        if subject.startswith("case.") and headers.get(H_CASE_ID) == self._case_id:
            subject = f"nowhere.{subject}"
        return await self._js.publish_async(subject, payload, **kwargs)


class _AckLost:
    """An arrival whose ack never reaches the server (a crash right after the pub-acks):
    it is nak'd instead, so it comes back at once."""

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._msg, name)

    async def ack(self) -> None:
        await self._msg.nak()


async def test_a_refused_output_naks_only_its_own_arrival(client_hub: Hub) -> None:
    case_ids = await _submit(client_hub, 5)
    refused = case_ids[2]
    core = _core(client_hub, js=_CaseEventRefused(client_hub.js, refused))
    subscription = await core.subscribe()

    await core.process_batch(await _fetch(subscription, 5))

    assert client_hub.counters.get("core.routed") == 4
    assert [case_id for case_id, _ in await _stored_events(client_hub.js)] == [
        case_id for case_id in case_ids if case_id != refused
    ]
    # Only the refused arrival comes back (after the nak's delay); the other four were acked.
    [again] = await _fetch(subscription, 1)
    assert (again.headers or {})[H_CASE_ID] == refused
    assert again.metadata.num_delivered == 2
    await _core(client_hub).process_batch([again])
    assert {case_id for case_id, _ in await _stored_events(client_hub.js)} == set(case_ids)
    await eventually(lambda: _router_settled(client_hub.js))


async def test_a_redelivered_batch_is_stored_once(client_hub: Hub) -> None:
    case_ids = await _submit(client_hub, 4)
    core = _core(client_hub)
    subscription = await core.subscribe()

    first = await _fetch(subscription, 4)
    await core.process_batch([_AckLost(msg) for msg in first])  # type: ignore[misc]
    again = await _fetch(subscription, 4)
    assert {msg.metadata.num_delivered for msg in again} == {2}
    await core.process_batch(again)

    # The CaseEvents and registry records carry ids derived from the arrival: the server
    # recognised the second batch's outputs as duplicates.
    assert sorted(case_id for case_id, _ in await _stored_events(client_hub.js)) == sorted(case_ids)
    await eventually(lambda: _router_settled(client_hub.js))
    balance = (await collect_stats(client_hub.js))["conservation"]
    assert (balance["received"], balance["routed"], balance["unaccounted"]) == (4, 4, 0)
    assert client_hub.audit is not None
    for case_id in case_ids:
        trail = await client_hub.audit.read(case_id)
        assert [entry.hop for entry in trail] == ["received", "routed"]


async def test_a_redelivered_arrival_keeps_what_happened_to_its_case_since(
    client_hub: Hub,
) -> None:
    """A redelivery (the ack was lost) must not write the case record again: the delivery
    worker may have marked the case delivered in between."""
    [case_id] = await _submit(client_hub, 1)
    core = _core(client_hub)
    subscription = await core.subscribe()
    [first] = await _fetch(subscription, 1)
    await core.process_batch([_AckLost(first)])  # type: ignore[list-item]

    def delivered(record: dict[str, Any]) -> bool:
        record["state"] = "delivered"
        return True

    assert await update_case(client_hub.js, case_id, delivered) is not None
    [again] = await _fetch(subscription, 1)
    assert again.metadata.num_delivered == 2
    await core.process_batch([again])

    await eventually(lambda: _router_settled(client_hub.js))
    record = await load_case(client_hub.js, case_id)
    assert record is not None and record["state"] == "delivered"
    assert [case for case, _ in await _stored_events(client_hub.js)] == [case_id]


async def test_routed_hop_is_in_the_trail_without_an_audit_record(client_hub: Hub) -> None:
    [case_id] = await _submit(client_hub, 1)
    core = _core(client_hub)
    await core.process_batch(await _fetch(await core.subscribe(), 1))

    assert client_hub.audit is not None
    received, routed = await client_hub.audit.read(case_id)
    [(_, stored_at)] = await _stored_events(client_hub.js)
    event = await client_hub.js.get_msg(
        CASES, (await client_hub.js.stream_info(CASES)).state.last_seq
    )
    assert routed.hop == "routed" and received.at <= routed.at <= stored_at
    assert routed.detail == {
        "tenant": "stadt-kiel",
        "backend": "bauakte",
        "rule": "config routes[0]",
        "event_id": (event.headers or {})["Nats-Msg-Id"],
        "message_type": "baugenehmigung.antrag.0200",
    }
    # One publish less per routed message: AUDIT holds only the intake's record.
    recorded = await client_hub.audit.read_recorded(case_id)
    assert [entry.hop for entry in recorded] == ["received"]
    info = await client_hub.js.stream_info(AUDIT)
    assert info.state.messages == 1


class _SlowInspector(MessageInspector):
    """Inspection as slow as a large message's (a busy loop, CPU like the real work), and
    the wall-clock time at which each inspection began."""

    def __init__(self, *args: Any, work_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._work_seconds = work_seconds
        self.started: list[float] = []

    def inspect(self, raw: bytes, **kwargs: Any) -> InspectedMessage:
        self.started.append(time.time())
        until = time.perf_counter() + self._work_seconds
        while time.perf_counter() < until:
            pass
        return super().inspect(raw, **kwargs)


async def test_first_case_event_is_stored_before_the_batch_is_inspected(
    client_hub: Hub,
) -> None:
    count = 60
    await _submit(client_hub, count)
    inspector = _SlowInspector(client_hub.config.data_dir, work_seconds=0.002)
    core = _core(client_hub, inspector=inspector)

    await core.process_batch(await _fetch(await core.subscribe(), count))

    events = await _stored_events(client_hub.js)
    assert len(events) == count
    first_stored = events[0][1].timestamp()
    # ~120 ms of inspection in one batch: the first event was written to the server and
    # stored while the core was still at work, not when the batch was done.
    assert first_stored < inspector.started[-1], (
        f"first CaseEvent stored {first_stored - inspector.started[0]:.3f} s after the batch "
        f"began, the last inspection began at {inspector.started[-1] - inspector.started[0]:.3f} s"
    )
