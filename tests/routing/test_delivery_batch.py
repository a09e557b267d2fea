"""The delivery worker works a fetched batch as one, on a real nats-server: one failing
event is nak'd and redelivered alone, the rest of its batch is acked and delivered once; an
event is acked only once its ``delivered`` record is stored; stored bytes that are no
CaseEvent are dead-lettered with the reason."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import nats
from nats.js import JetStreamContext

from poststelle.adapters.base import AdapterSettings, StoredCaseEvent
from poststelle.adapters.errors import RetryableDeliveryError
from poststelle.adapters.testing import sample_event
from poststelle.contracts.envelope import H_CASE_ID, H_DETAIL, H_MSG_ID, dlq_subject
from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.delivery import DeliveryWorker, consumer_name, ledger_key
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import (
    CASES,
    DELIVERED_BUCKET,
    DELIVERED_TTL,
    DLQ,
    INBOX,
    ensure_topology,
)
from tests.integration.conftest import eventually

TENANT, BACKEND = "stadt-kiel", "akte"


@dataclass
class RecordingBackend:
    """Takes stored events; fails the listed event ids once each (retryable)."""

    kind: ClassVar[Literal["outbound"]] = "outbound"
    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings
    name: str = BACKEND
    tenant: str = TENANT
    fail_once: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, bytes] = field(default_factory=dict)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"ok": True}

    async def deliver(self, event: CaseEvent) -> None:
        raise AssertionError("a back end that takes stored events gets no parsed one")

    async def deliver_stored(self, stored: StoredCaseEvent) -> None:
        self.calls[stored.id] += 1
        if stored.id in self.fail_once:
            self.fail_once.discard(stored.id)
            raise RetryableDeliveryError("scripted outage")
        self.bodies[stored.id] = stored.raw


@dataclass
class ModelBackend:
    """A back end without ``deliver_stored``: it gets the parsed model."""

    kind: ClassVar[Literal["outbound"]] = "outbound"
    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings
    name: str = BACKEND
    tenant: str = TENANT
    events: list[CaseEvent] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"ok": True}

    async def deliver(self, event: CaseEvent) -> None:
        self.events.append(event)


class FailingFirstRecord(AuditTrail):
    """The first ``delivered`` record of one case is not stored (the broker refused it)."""

    def __init__(self, js: JetStreamContext, case_id: str) -> None:
        super().__init__(js)
        self._case_id = case_id
        self.refused = 0

    async def append_async(self, case_id: str, hop: str, **detail: Any) -> asyncio.Future[Any]:
        if case_id == self._case_id and hop == "delivered" and not self.refused:
            self.refused += 1
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(nats.errors.TimeoutError())
            return refused
        return await super().append_async(case_id, hop, **detail)


async def _store(js: JetStreamContext, raw: bytes, msg_id: str, case_id: str = "") -> None:
    await js.publish(
        f"case.{TENANT}.{BACKEND}.baugenehmigung",
        raw,
        headers={H_MSG_ID: msg_id, H_CASE_ID: case_id},
    )


async def _stored_events(js: JetStreamContext, count: int) -> list[CaseEvent]:
    events = [sample_event(TENANT, BACKEND) for _ in range(count)]
    for event in events:
        await _store(js, event.model_dump_json().encode(), event.id, event.data.case_id)
    return events


async def _settled(js: JetStreamContext) -> bool:
    info = await js.consumer_info(CASES, consumer_name(TENANT, BACKEND))
    return not info.num_pending and not info.num_ack_pending


async def _run(worker: DeliveryWorker, until: Callable[[], Any]) -> None:
    task = asyncio.create_task(worker.run())
    try:
        await eventually(until)
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=10)


async def _delivered_hops(audit: AuditTrail, case_id: str) -> int:
    return sum(entry.hop == "delivered" for entry in await audit.read(case_id))


async def test_one_failure_in_a_batch_is_redelivered_alone(js: JetStreamContext) -> None:
    events = await _stored_events(js, 6)
    failing = events[2]
    backend = RecordingBackend(fail_once={failing.id})
    audit, counters = AuditTrail(js), Counters()
    worker = DeliveryWorker(js, backend, audit, counters, batch_size=32)

    async def done() -> bool:
        return len(backend.bodies) == len(events) and await _settled(js)

    await _run(worker, done)

    assert backend.calls == {e.id: 2 if e is failing else 1 for e in events}
    info = await js.consumer_info(CASES, consumer_name(TENANT, BACKEND))
    assert info.num_redelivered == 0  # the one redelivery was acked too
    assert (counters.get("delivery.delivered"), counters.get("delivery.retried")) == (6, 1)
    for event in events:
        assert await _delivered_hops(audit, event.data.case_id) == 1
        # The back end got the stored bytes, not a re-serialisation.
        assert backend.bodies[event.id] == event.model_dump_json().encode()


async def test_an_event_is_acked_only_after_its_delivered_record_is_stored(
    js: JetStreamContext,
) -> None:
    events = await _stored_events(js, 3)
    unrecorded = events[1]
    backend = RecordingBackend()
    audit = FailingFirstRecord(js, unrecorded.data.case_id)
    worker = DeliveryWorker(js, backend, audit, Counters(), batch_size=32)

    async def done() -> bool:
        return backend.calls[unrecorded.id] == 2 and await _settled(js)

    await _run(worker, done)

    assert audit.refused == 1
    # Not acked while its record was missing: delivered again (harmless), then recorded.
    assert backend.calls == {e.id: 2 if e is unrecorded else 1 for e in events}
    for event in events:
        assert await _delivered_hops(audit, event.data.case_id) == 1


async def test_stored_bytes_that_are_no_case_event_are_dead_lettered_with_the_reason(
    js: JetStreamContext,
) -> None:
    [good] = await _stored_events(js, 1)
    no_backend = good.model_dump_json().replace('"backend":"akte"', '"backend_":"akte"')
    await _store(js, b"{not json", "garbage")
    await _store(js, no_backend.encode(), "no-backend")
    backend = RecordingBackend()
    worker = DeliveryWorker(js, backend, AuditTrail(js), Counters(), batch_size=32)

    async def parked() -> int:
        info = await js.stream_info(DLQ, subjects_filter=dlq_subject(worker.durable))
        return sum((info.state.subjects or {}).values())

    async def done() -> bool:
        return await parked() == 2 and await _settled(js)

    await _run(worker, done)

    assert backend.calls == {good.id: 1}
    details = []
    for sequence in (1, 2):
        record = await js.get_msg(DLQ, sequence)
        details.append((record.headers or {})[H_DETAIL])
    assert all(detail.startswith("not a CaseEvent: ") for detail in details), details
    assert any("data.backend" in detail for detail in details), details


async def test_a_back_end_without_deliver_stored_gets_the_validated_model(
    js: JetStreamContext,
) -> None:
    events = await _stored_events(js, 2)
    backend = ModelBackend()
    worker = DeliveryWorker(js, backend, AuditTrail(js), Counters(), batch_size=32)

    async def done() -> bool:
        return len(backend.events) == 2 and await _settled(js)

    await _run(worker, done)
    assert sorted(e.id for e in backend.events) == sorted(e.id for e in events)
    assert backend.events[0] in events


async def test_events_the_back_end_confirmed_are_not_handed_over_again(
    js: JetStreamContext,
) -> None:
    """The consumer's state lost (as after a server crash that took its last acks): every
    event comes again as new, and the delivered-ledger keeps the back end from seeing any of
    them twice; each is audited once as delivered and once as a recognised repeat."""
    events = await _stored_events(js, 5)
    backend = RecordingBackend()
    audit, counters = AuditTrail(js), Counters()

    async def first_done() -> bool:
        return len(backend.bodies) == len(events) and await _settled(js)

    await _run(DeliveryWorker(js, backend, audit, counters), first_done)
    ledger = await js.key_value(DELIVERED_BUCKET)
    for event in events:
        entry = await ledger.get(ledger_key(consumer_name(TENANT, BACKEND), event.id))
        assert entry.value == event.data.case_id.encode()

    await js.delete_consumer(CASES, consumer_name(TENANT, BACKEND))

    async def again_done() -> bool:
        return counters.get("delivery.repeats_recognised") == len(events) and await _settled(js)

    await _run(DeliveryWorker(js, backend, audit, counters), again_done)

    assert backend.calls == {e.id: 1 for e in events}
    assert counters.get("delivery.delivered") == len(events)
    for event in events:
        hops = [entry.hop for entry in await audit.read(event.data.case_id)]
        assert hops.count("delivered") == 1
        assert hops.count("delivery-repeat-recognised") == 1


def test_ledger_keys_are_kv_tokens_whatever_the_event_id() -> None:
    assert ledger_key("d", "abc-123") == "d.abc-123"
    odd = ledger_key("d", "urn:uuid:1.2/3")
    assert odd.startswith("d.") and len(odd) == 2 + 64 and "." not in odd[2:]


async def test_the_ledger_ttl_follows_the_configuration_without_losing_entries(
    js: JetStreamContext,
) -> None:
    ledger = await js.key_value(DELIVERED_BUCKET)
    await ledger.put("d.kept", b"1")
    assert (await js.stream_info(f"KV_{DELIVERED_BUCKET}")).config.max_age == DELIVERED_TTL

    await ensure_topology(js, delivered_ttl=3600)

    assert (await js.stream_info(f"KV_{DELIVERED_BUCKET}")).config.max_age == 3600
    entry = await ledger.get("d.kept")
    assert entry.value == b"1"


async def test_a_client_without_the_configuration_keeps_the_hubs_limits(
    js: JetStreamContext,
) -> None:
    await ensure_topology(js, delivered_ttl=1800, stream_max_bytes={INBOX: 64 * 1024 * 1024})

    # What a CLI command run without --config does: defaults, nothing existing updated.
    await ensure_topology(js, update_existing=False)

    assert (await js.stream_info(f"KV_{DELIVERED_BUCKET}")).config.max_age == 1800
    assert (await js.stream_info(INBOX)).config.max_bytes == 64 * 1024 * 1024
    await ensure_topology(js)
    assert (await js.stream_info(f"KV_{DELIVERED_BUCKET}")).config.max_age == DELIVERED_TTL
