"""File-drop back end: one JSON file per case event, for software that watches a folder.

Files appear atomically (written to a temporary name in the same folder, flushed to disk,
then renamed), so a watcher never reads half a file. A redelivered event rewrites the same
name with the same content, which makes at-least-once delivery harmless.

The event's claim-checked attachments are fetched from the hub's object store and written,
byte for byte, to ``<case-id>.files/<name>`` *before* ``<case-id>.json``: the JSON appearing
means the case is complete.

The legacy software answers the same way: it drops ``<anything>.json`` with ``case_id`` and
a reply (``kind`` = status, decision, rejection, receipt, plus its fields) into the ``in/``
folder. Accepted files move to ``in/done/``; files that cannot be a reply move to
``in/rejected/`` beside a ``.reason.txt`` — kept, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationError

from poststelle.adapters._names import safe_file_name
from poststelle.adapters.base import (
    AdapterContext,
    AdapterSettings,
    AttachmentMissing,
    ReadAttachment,
)
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.contracts.events import AttachmentRef, CaseEvent
from poststelle.contracts.replies import CaseReply

__all__ = ["FileDropBackend", "FileDropSettings", "write_atomically"]

log = logging.getLogger(__name__)

AcceptReply = Callable[..., Awaitable[str]]


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
    replies: bool = True
    """Read replies from ``<folder>/in/``."""
    reply_poll_interval: float = Field(default=1.0, gt=0)


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
        self.inbox = self.folder / "in"
        self.settings = settings
        self._accept_reply: AcceptReply | None = context.extras.get("accept_reply")
        self._read_attachment: ReadAttachment | None = context.read_attachment
        self._reply_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        if self.settings.replies and self._accept_reply and self._reply_task is None:
            await asyncio.to_thread(self.inbox.mkdir, exist_ok=True)
            self._reply_task = asyncio.create_task(self._read_replies(), name=f"in-{self.name}")

    async def stop(self) -> None:
        task, self._reply_task = self._reply_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_replies(self) -> None:
        while True:
            for path in sorted(self.inbox.glob("*.json")):
                await self._take_reply(path)
            await asyncio.sleep(self.settings.reply_poll_interval)

    async def _take_reply(self, path: Path) -> None:
        assert self._accept_reply is not None
        try:
            document = json.loads(await asyncio.to_thread(path.read_bytes))
            case_id = str(document.pop("case_id"))
            reply = CaseReply.model_validate(document)
            await self._accept_reply(case_id, reply, via=f"filedrop:{self.tenant}/{self.name}")
        except (ValueError, KeyError, TypeError, ValidationError, LookupError) as exc:
            await asyncio.to_thread(self._park, path, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # the hub is unavailable: the file stays for the next poll
            log.warning("reply not stored yet file=%s error=%r", path.name, exc)
            return
        await asyncio.to_thread(self._archive, path)

    def _archive(self, path: Path) -> None:
        done = self.inbox / "done"
        done.mkdir(exist_ok=True)
        path.replace(done / path.name)

    def _park(self, path: Path, reason: str) -> None:
        log.warning("reply file rejected file=%s reason=%s", path.name, reason)
        rejected = self.inbox / "rejected"
        rejected.mkdir(exist_ok=True)
        path.replace(rejected / path.name)
        (rejected / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")

    def health(self) -> dict[str, object]:
        return {"ok": os.access(self.folder, os.W_OK), "folder": str(self.folder)}

    def path_for(self, event: CaseEvent) -> Path:
        return self.folder / f"{event.data.case_id}.json"

    def files_for(self, event: CaseEvent) -> Path:
        """The folder beside the event that holds the case's attachments."""
        return self.folder / f"{event.data.case_id}.files"

    async def _write_attachments(self, event: CaseEvent) -> None:
        stored = [a for a in event.data.attachments if a.kind == "inline"]
        if not stored:
            return
        if self._read_attachment is None:
            raise PermanentDeliveryError("this file drop has no access to the attachment store")
        used: set[str] = set()
        for index, attachment in enumerate(stored, start=1):
            name = _unique(safe_file_name(attachment.name, f"attachment-{index}"), used, index)
            content = await self._fetch(attachment)
            target = self.files_for(event) / name
            try:
                await asyncio.to_thread(write_atomically, target, content)
            except OSError as exc:
                raise RetryableDeliveryError(f"cannot write {target}: {exc}") from exc

    async def _fetch(self, attachment: AttachmentRef) -> bytes:
        assert self._read_attachment is not None
        try:
            content = await self._read_attachment(attachment.ref)
        except AttachmentMissing as exc:
            raise PermanentDeliveryError(f"attachment {attachment.name!r}: {exc}") from exc
        except Exception as exc:  # the store is unavailable for now
            raise RetryableDeliveryError(f"attachment {attachment.name!r}: {exc!r}") from exc
        if attachment.sha256 and hashlib.sha256(content).hexdigest() != attachment.sha256:
            raise PermanentDeliveryError(
                f"attachment {attachment.name!r}: stored bytes do not match its sha256"
            )
        return content

    async def deliver(self, event: CaseEvent) -> None:
        if event.data.tenant != self.tenant or event.data.backend != self.name:
            raise PermanentDeliveryError(
                f"event for {event.data.tenant}/{event.data.backend} "
                f"reached {self.tenant}/{self.name}"
            )
        await self._write_attachments(event)
        body = event.model_dump_json(indent=2).encode()
        try:
            await asyncio.to_thread(write_atomically, self.path_for(event), body)
        except OSError as exc:
            raise RetryableDeliveryError(f"cannot write {self.path_for(event)}: {exc}") from exc


def _unique(name: str, used: set[str], index: int) -> str:
    """Two attachments with one name both arrive: the later ones get their index in front."""
    if name in used:
        name = f"{index}-{name}"
    used.add(name)
    return name
