"""File-drop back end: one JSON file per case event, for software that watches a folder.

Files appear atomically (written to a temporary name in the same folder, flushed to disk,
then renamed), so a watcher never reads half a file. A redelivered event rewrites the same
name with the same content, which makes at-least-once delivery harmless.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

from poststelle.adapters.base import AdapterContext, AdapterSettings
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.contracts.events import CaseEvent

__all__ = ["FileDropBackend", "FileDropSettings", "write_atomically"]


def write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileDropSettings(AdapterSettings):
    directory: Path | None = None
    """Root of the drop; files go to ``<directory>/<tenant>/<backend>/``. Default
    ``<data-dir>/outbox``."""


class FileDropBackend:
    """Writes ``<directory>/<tenant>/<backend>/<case-id>.json``."""

    kind: ClassVar[Literal["outbound"]] = "outbound"
    settings_model: ClassVar[type[AdapterSettings]] = FileDropSettings

    def __init__(
        self, *, name: str, tenant: str, settings: FileDropSettings, context: AdapterContext
    ) -> None:
        self.name = name
        self.tenant = tenant
        self.root = (settings.directory or context.data_dir / "outbox").resolve()
        self.folder = self.root / tenant / name

    async def start(self) -> None:
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"ok": os.access(self.folder, os.W_OK), "folder": str(self.folder)}

    def path_for(self, event: CaseEvent) -> Path:
        return self.folder / f"{event.data.case_id}.json"

    async def deliver(self, event: CaseEvent) -> None:
        if event.data.tenant != self.tenant or event.data.backend != self.name:
            raise PermanentDeliveryError(
                f"event for {event.data.tenant}/{event.data.backend} "
                f"reached {self.tenant}/{self.name}"
            )
        body = event.model_dump_json(indent=2).encode()
        try:
            await asyncio.to_thread(write_atomically, self.path_for(event), body)
        except OSError as exc:
            raise RetryableDeliveryError(f"cannot write {self.path_for(event)}: {exc}") from exc
