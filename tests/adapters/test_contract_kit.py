"""Every adapter the project ships passes the same contract kit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.filedrop import FileDropBackend, FileDropSettings
from poststelle.adapters.portal import PortalAdapter, PortalSettings
from poststelle.adapters.testing import (
    InboundAdapterContract,
    OutboundAdapterContract,
    RecordingPublisher,
)
from poststelle.adapters.webhook import WebhookBackend, WebhookSettings
from tests.adapters.receiver import Receiver, webhook_receiver


class TestFileDrop(OutboundAdapterContract):
    @pytest.fixture
    async def adapter(self, tmp_path: Path) -> AsyncIterator[FileDropBackend]:
        backend = FileDropBackend(
            name="akte",
            tenant="stadt-kiel",
            settings=FileDropSettings(),
            context=AdapterContext(data_dir=tmp_path),
        )
        await backend.start()
        yield backend
        await backend.stop()

    async def received(self, adapter: Any) -> list[str]:
        return [json.loads(p.read_bytes())["id"] for p in adapter.folder.glob("*.json")]

    async def make_backend_fail(self, adapter: Any) -> None:
        adapter.folder.rmdir()
        adapter.folder.write_text("a file where the folder should be")


class TestWebhook(OutboundAdapterContract):
    @pytest.fixture
    def receiver(self) -> Iterator[Receiver]:
        with webhook_receiver() as receiver:
            yield receiver

    @pytest.fixture
    async def adapter(self, receiver: Receiver, tmp_path: Path) -> AsyncIterator[WebhookBackend]:
        backend = WebhookBackend(
            name="fachverfahren",
            tenant="stadt-kiel",
            settings=WebhookSettings.model_validate({"url": receiver.url, "secret": "s3cret"}),
            context=AdapterContext(data_dir=tmp_path),
        )
        await backend.start()
        self._receiver = receiver
        yield backend
        await backend.stop()

    async def received(self, adapter: Any) -> list[str]:
        assert self._receiver.bad_signatures == 0
        return self._receiver.accepted_keys()

    async def make_backend_fail(self, adapter: Any) -> None:
        self._receiver.statuses.append(503)


class TestPortal(InboundAdapterContract):
    @pytest.fixture
    async def adapter(
        self, publisher: RecordingPublisher, tmp_path: Path
    ) -> AsyncIterator[PortalAdapter]:
        portal = PortalAdapter(
            name="http",
            settings=PortalSettings(port=0),
            context=AdapterContext(data_dir=tmp_path, publish=publisher),
        )
        await portal.start()
        self._pending: set[str] = set()
        self._senders: list[asyncio.Task[None]] = []
        yield portal
        for task in self._senders:
            task.cancel()
        await portal.stop()

    async def put(self, adapter: Any, raw: bytes) -> str:
        source_id = f"id-{len(self._senders)}-{hash(raw)}"
        self._pending.add(source_id)

        async def send_until_accepted() -> None:
            # A portal keeps its submission until the hub answers 2xx, and tries again.
            async with httpx.AsyncClient(base_url=adapter.url) as client:
                while True:
                    response = await client.post(
                        "/v1/submissions",
                        content=raw,
                        headers={"Content-Type": "application/xml", "Idempotency-Key": source_id},
                    )
                    if response.status_code == 202:
                        self._pending.discard(source_id)
                        return
                    await asyncio.sleep(0.05)

        self._senders.append(asyncio.create_task(send_until_accepted()))
        return source_id

    async def still_at_source(self, adapter: Any) -> set[str]:
        return set(self._pending)
