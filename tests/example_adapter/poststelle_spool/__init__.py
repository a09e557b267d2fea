"""Spool-folder inbound adapter: the worked example of docs/writing-an-adapter.md.

Legacy software writes ``*.xml`` files into a folder. The adapter publishes each file to the
hub and deletes it only after the hub confirmed that JetStream stored it; if publishing
fails, the file stays and is tried again on the next poll. The file's name is the source
message id, so a file published twice (a crash between publish and delete) dedupes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from poststelle.adapters.base import AdapterContext, AdapterSettings, Publish

__all__ = ["SpoolInbound", "SpoolSettings"]

log = logging.getLogger(__name__)


class SpoolSettings(AdapterSettings):
    folder: Path
    poll_interval: float = Field(default=1.0, gt=0)
    pattern: str = "*.xml"


class SpoolInbound:
    kind: ClassVar[Literal["inbound"]] = "inbound"
    settings_model: ClassVar[type[AdapterSettings]] = SpoolSettings

    def __init__(self, *, name: str, settings: SpoolSettings, context: AdapterContext) -> None:
        if context.publish is None:
            raise ValueError("the spool adapter needs the hub's publish callable")
        self.name = name
        self.settings = settings
        self._publish: Publish = context.publish
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def start(self) -> None:
        self.settings.folder.mkdir(parents=True, exist_ok=True)
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"spool-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def health(self) -> dict[str, object]:
        running = self._task is not None and not self._task.done()
        return {"ok": running, "folder": str(self.settings.folder), "failures": self.failures}

    async def _poll(self) -> None:
        while True:
            for path in sorted(self.settings.folder.glob(self.settings.pattern)):
                try:
                    await self._publish(
                        path.read_bytes(),
                        channel="spool",
                        adapter=self.name,
                        transport_id=path.name,
                    )
                except Exception as exc:  # the file stays: that is the retry
                    self.failures += 1
                    log.warning("spool publish failed file=%s error=%r", path.name, exc)
                    break
                path.unlink()
            await asyncio.sleep(self.settings.poll_interval)
