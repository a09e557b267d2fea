"""Delivery to back ends: one durable pull consumer per back end on ``CASES``.

Failures never spin: a retryable error naks with a delay that grows with the delivery count
(FastStream's and JetStream's own redelivery would be immediate), a permanent one records the
event in ``DLQ`` with the reason and terminates it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from pydantic import ValidationError

from poststelle.adapters.base import OutboundAdapter
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.contracts.events import CaseEvent
from poststelle.routing.audit import AuditTrail
from poststelle.routing.envelope import H_CASE_ID, H_DETAIL, H_MSG_ID, H_REASON, safe_token
from poststelle.routing.metrics import Counters
from poststelle.routing.topology import CASES

__all__ = ["DeliveryWorker", "consumer_name", "retry_delay"]

log = logging.getLogger(__name__)


def consumer_name(tenant: str, backend: str) -> str:
    return f"deliver-{safe_token(tenant)}-{safe_token(backend)}"


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential back-off: 1 s, 2 s, 4 s ... at most five minutes."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


class DeliveryWorker:
    def __init__(
        self,
        js: JetStreamContext,
        backend: OutboundAdapter,
        audit: AuditTrail,
        counters: Counters,
        *,
        max_deliver: int = 10,
        batch_size: int = 32,
    ) -> None:
        self._js = js
        self.backend = backend
        self._audit = audit
        self._counters = counters
        self._max_deliver = max_deliver
        self._batch_size = batch_size
        self._stopping = asyncio.Event()
        self.durable = consumer_name(backend.tenant, backend.name)

    async def run(self) -> None:
        await self.backend.start()
        subscription = await self._js.pull_subscribe(
            f"case.{safe_token(self.backend.tenant)}.{safe_token(self.backend.name)}.>",
            durable=self.durable,
            stream=CASES,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=60.0,
                max_deliver=self._max_deliver,
                max_ack_pending=1000,
            ),
        )
        log.info("delivery worker started durable=%s", self.durable)
        try:
            while not self._stopping.is_set():
                try:
                    batch = await subscription.fetch(self._batch_size, timeout=0.5)
                except (FetchTimeoutError, TimeoutError):
                    continue
                for msg in batch:
                    await self._deliver(msg)
        finally:
            await self.backend.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _deliver(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        try:
            event = CaseEvent.model_validate_json(msg.data)
            await self.backend.deliver(event)
        except ValidationError as exc:
            await self._dead_letter(msg, f"not a CaseEvent: {exc.error_count()} errors")
            return
        except PermanentDeliveryError as exc:
            await self._dead_letter(msg, str(exc))
            return
        except RetryableDeliveryError as exc:
            if attempt >= self._max_deliver:
                await self._dead_letter(msg, f"retries exhausted: {exc}")
                return
            delay = retry_delay(attempt)
            log.warning(
                "delivery failed durable=%s attempt=%s retry_in=%.1fs error=%s",
                self.durable,
                attempt,
                delay,
                exc,
            )
            self._counters.incr("delivery.retried")
            await msg.nak(delay=delay)
            return
        await msg.ack_sync()
        self._counters.incr("delivery.delivered")
        await self._audit.append(
            event.data.case_id,
            "delivered",
            backend=self.backend.name,
            tenant=self.backend.tenant,
            event_id=event.id,
            attempt=attempt,
        )

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        case_id = (msg.headers or {}).get(H_CASE_ID, "")
        headers: dict[str, Any] = {
            H_MSG_ID: f"dlq:{self.durable}:{msg.metadata.sequence.stream}",
            H_CASE_ID: case_id,
            H_REASON: "delivery-failed",
            H_DETAIL: " ".join(reason.split())[:1000],
        }
        await self._js.publish(f"dlq.{self.durable}", msg.data, headers=headers)
        await msg.term()
        self._counters.incr("delivery.dead_lettered")
        if case_id:
            await self._audit.append(case_id, "dead-lettered", consumer=self.durable, reason=reason)
