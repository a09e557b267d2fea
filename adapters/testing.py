"""The adapter contract kit: the tests every adapter must pass, as pytest base classes.

Subclass one in a test module of your adapter's package and provide the fixtures it names::

    class TestMyBackend(OutboundAdapterContract):
        @pytest.fixture
        async def adapter(self, tmp_path): ...          # started by the kit
        async def received(self, adapter): ...          # event ids the back end has seen

The kit checks the protocol (kind, settings model, lifecycle, health) and the delivery
semantics the hub relies on: a delivered event arrives, a redelivered one is harmless, a
failing back end raises ``RetryableDeliveryError`` or ``PermanentDeliveryError`` and nothing
else. Inbound adapters are checked for "acknowledge the source only after publish returned".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from poststelle.adapters.base import AdapterSettings, InboundAdapter, OutboundAdapter
from poststelle.adapters.errors import DeliveryError
from poststelle.contracts.events import CaseEvent, CaseEventData, Origin
from poststelle.contracts.intake import Accepted, TooLarge

__all__ = [
    "InboundAdapterContract",
    "OutboundAdapterContract",
    "RecordingPublisher",
    "sample_event",
]


def sample_event(tenant: str, backend: str, *, source_message_id: str | None = None) -> CaseEvent:
    source = source_message_id or str(uuid.uuid4())
    return CaseEvent.received(
        CaseEventData(
            case_id=str(uuid.uuid5(uuid.NAMESPACE_URL, source)),
            standard="xbau",
            version="2.6",
            message_type="baugenehmigung.antrag.0200",
            nachrichten_uuid=source,
            origin=Origin(channel="contract-kit", adapter="kit", source_message_id=source),
            tenant=tenant,
            backend=backend,
            fields={"bauvorhaben": "Neubau eines Einfamilienhauses"},
        ),
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )


class _LifecycleContract:
    def test_declares_kind_and_settings_model(self, adapter: Any) -> None:
        assert adapter.kind in ("inbound", "outbound")
        assert issubclass(adapter.settings_model, AdapterSettings)
        assert isinstance(adapter.name, str) and adapter.name

    def test_settings_refuse_unknown_keys(self, adapter: Any) -> None:
        with pytest.raises(ValidationError):
            adapter.settings_model.model_validate({"surely_not_a_setting": 1})

    async def test_health_is_a_report_with_ok(self, adapter: Any) -> None:
        report = adapter.health()
        assert isinstance(report, dict)
        assert report.get("ok") is True

    async def test_start_and_stop_are_idempotent(self, adapter: Any) -> None:
        await adapter.start()
        await adapter.stop()
        await adapter.stop()
        await adapter.start()


class OutboundAdapterContract(_LifecycleContract):
    """Fixtures to provide: ``adapter`` (started, yields, stops) and ``received``."""

    async def received(self, adapter: Any) -> Sequence[str]:
        """Event ids the back end has taken so far (duplicates included)."""
        raise NotImplementedError

    async def make_backend_fail(self, adapter: Any) -> None:
        """Optional: make the next delivery fail (the kit then expects a DeliveryError)."""
        pytest.skip("this back end cannot be made to fail from the outside")

    def test_satisfies_the_protocol(self, adapter: Any) -> None:
        assert isinstance(adapter, OutboundAdapter)
        assert adapter.kind == "outbound"

    async def test_delivered_event_arrives(self, adapter: Any) -> None:
        event = sample_event(adapter.tenant, adapter.name)
        await adapter.deliver(event)
        assert event.id in await self.received(adapter)

    async def test_redelivery_is_harmless(self, adapter: Any) -> None:
        event = sample_event(adapter.tenant, adapter.name)
        await adapter.deliver(event)
        await adapter.deliver(event)
        seen = list(await self.received(adapter))
        # The back end either keeps one copy or sees the same idempotency key twice.
        assert seen.count(event.id) >= 1
        assert set(seen) >= {event.id}

    async def test_failure_is_a_delivery_error(self, adapter: Any) -> None:
        await self.make_backend_fail(adapter)
        with pytest.raises(DeliveryError):
            await adapter.deliver(sample_event(adapter.tenant, adapter.name))


class RecordingPublisher:
    """A stand-in for the hub's intake that can be told to fail."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, str | None]] = []
        self.fail_next = 0

    async def __call__(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
        transport_id: str | None = None,
        too_large: TooLarge = "refuse",
    ) -> Accepted:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("JetStream did not acknowledge")
        self.published.append((raw, source_message_id))
        return Accepted(
            case_id=str(uuid.uuid4()),
            message_id=source_message_id or "",
            duplicate=False,
            stream_sequence=len(self.published),
        )


class InboundAdapterContract(_LifecycleContract):
    """Fixtures to provide: ``publisher`` (a RecordingPublisher), ``adapter`` built with it
    and started; methods ``put`` (make something arrive at the source, return its id) and
    ``still_at_source`` (ids the source still holds, i.e. not acknowledged)."""

    arrival_timeout = 10.0

    @pytest.fixture
    def publisher(self) -> RecordingPublisher:
        return RecordingPublisher()

    async def put(self, adapter: Any, raw: bytes) -> str:
        raise NotImplementedError

    async def still_at_source(self, adapter: Any) -> set[str]:
        raise NotImplementedError

    def test_satisfies_the_protocol(self, adapter: Any) -> None:
        assert isinstance(adapter, InboundAdapter)
        assert adapter.kind == "inbound"

    async def _until(self, condition: Any) -> None:
        deadline = asyncio.get_running_loop().time() + self.arrival_timeout
        while not await condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the adapter did not act within the timeout")
            await asyncio.sleep(0.05)

    async def test_arrival_is_published_then_acknowledged(
        self, adapter: Any, publisher: RecordingPublisher
    ) -> None:
        body = b"<nachricht>" + uuid.uuid4().hex.encode() + b"</nachricht>"
        source_id = await self.put(adapter, body)

        async def published() -> bool:
            return any(raw == body for raw, _ in publisher.published)

        async def acknowledged() -> bool:
            return source_id not in await self.still_at_source(adapter)

        await self._until(published)
        await self._until(acknowledged)

    async def test_source_keeps_the_message_while_publishing_fails(
        self, adapter: Any, publisher: RecordingPublisher
    ) -> None:
        publisher.fail_next = 2
        body = b"<nachricht>" + uuid.uuid4().hex.encode() + b"</nachricht>"
        source_id = await self.put(adapter, body)

        async def failed_twice() -> bool:
            return publisher.fail_next == 0

        await self._until(failed_twice)
        if not any(raw == body for raw, _ in publisher.published):
            assert source_id in await self.still_at_source(adapter)

        async def published_once() -> bool:
            return [raw for raw, _ in publisher.published].count(body) >= 1

        async def acknowledged() -> bool:
            return source_id not in await self.still_at_source(adapter)

        await self._until(published_once)
        await self._until(acknowledged)
