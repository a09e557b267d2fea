"""An XTA answer reaches the recipient's mailbox once, even when the hub dies between
``sendMessage`` and acking its ``OUTBOX`` record: the answer worker keeps the MessageID of the
first attempt in the delivered-ledger before sending, the resend carries it, the simulator
(like a real XTA server, XTA-WS Fehlernummer 9024) refuses it as already taken, and the
answer counts as sent. Real nats-server, real SOAP over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.errors import RetryableDeliveryError
from poststelle.adapters.xta.adapter import (
    TransportIdMemo,
    XtaMailboxAdapter,
    XtaMailboxSettings,
    XtaParty,
)
from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.replies import Answer
from poststelle.routing.hub.delivery import AnswerWorker
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import OUTBOX, ensure_topology
from tests.integration.conftest import eventually

from .conftest import AMT, HUB, make_settings

ADAPTER = "xta-amt"


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    with EmbeddedNatsServer(store_dir=tmp_path / "nats") as server:
        client = await nats.connect(server.client_url)
        stream = client.jetstream()
        await ensure_topology(stream)
        try:
            yield stream
        finally:
            await client.close()


def _mailbox_adapter(sim: XtaSimulator, xta_dir: Path, data_dir: Path) -> XtaMailboxAdapter:
    async def publish(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing is polled here")

    return XtaMailboxAdapter(
        name=ADAPTER,
        settings=XtaMailboxSettings(
            connection=make_settings(sim, xta_dir), readers=[XtaParty(identifier=HUB.value)]
        ),
        context=AdapterContext(data_dir=data_dir, publish=publish),
    )


class AckLostOnce:
    """The XTA adapter, except that its first answer "crashes" the hub right after
    ``sendMessage`` succeeded: the record is not acked and comes again."""

    def __init__(self, inner: XtaMailboxAdapter) -> None:
        self.name = inner.name
        self._inner = inner
        self.sent: list[dict[str, object]] = []

    async def answer(self, answer: Answer) -> dict[str, object]:
        raise AssertionError("the worker answers XTA once, with a memo")

    async def answer_once(self, answer: Answer, memo: TransportIdMemo) -> dict[str, object]:
        facts = await self._inner.answer_once(answer, memo)
        self.sent.append(facts)
        if len(self.sent) == 1:
            raise RetryableDeliveryError("hub died between sendMessage and the OUTBOX ack")
        return facts


class AckLostOnceWithoutMemo:
    """The same crash for an adapter that gets no memo: what happened before the ledger."""

    def __init__(self, inner: XtaMailboxAdapter) -> None:
        self.name = inner.name
        self._inner = inner
        self.sent: list[dict[str, object]] = []

    async def answer(self, answer: Answer) -> dict[str, object]:
        facts = await self._inner.answer(answer)
        self.sent.append(facts)
        if len(self.sent) == 1:
            raise RetryableDeliveryError("hub died between sendMessage and the OUTBOX ack")
        return facts


async def _queue_answer(js: JetStreamContext) -> None:
    answer = Answer(
        case_id="case-xta-once",
        kind="status",
        content=b"<statusmitteilung/>",
        content_type="application/xml",
        message_type="baugenehmigung.statusmitteilung.0201",
        namespace="http://www.xleitstelle.de/xbau/2/3",
        reply_route={"reader": AMT.value, "author": HUB.value},
    )
    await js.publish(f"outbox.xta.{ADAPTER}", answer.content, headers=answer.headers())


async def _answered(js: JetStreamContext, adapter: AckLostOnce | AckLostOnceWithoutMemo) -> None:
    worker = AnswerWorker(js, adapter, AuditTrail(js), Counters())  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())

    async def settled() -> bool:
        if len(adapter.sent) < 2:
            return False
        info = await js.consumer_info(OUTBOX, worker.durable)
        return not info.num_pending and not info.num_ack_pending

    try:
        await eventually(settled)
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_a_resend_after_a_crash_reuses_the_message_id_and_is_recognised(
    js: JetStreamContext, simulator: XtaSimulator, xta_dir: Path, tmp_path: Path
) -> None:
    adapter = AckLostOnce(_mailbox_adapter(simulator, xta_dir, tmp_path))
    await _queue_answer(js)

    await _answered(js, adapter)

    first, resend = adapter.sent
    assert first["outcome"] == "accepted"
    assert resend["outcome"] == "already-accepted"  # fault 9024 from the server
    assert resend["xta_message_id"] == first["xta_message_id"]
    assert simulator.calls("sendMessage") == 2
    assert simulator.calls("createMessageId") == 1
    assert [m.metadata.message_id for m in simulator.mailbox(AMT.value)] == [
        first["xta_message_id"]
    ]


async def test_without_the_memo_the_same_crash_duplicates_the_answer(
    js: JetStreamContext, simulator: XtaSimulator, xta_dir: Path, tmp_path: Path
) -> None:
    """The control: the test above can fail, the crash it stages does duplicate."""
    adapter = AckLostOnceWithoutMemo(_mailbox_adapter(simulator, xta_dir, tmp_path))
    await _queue_answer(js)

    await _answered(js, adapter)

    assert len(simulator.mailbox(AMT.value)) == 2
