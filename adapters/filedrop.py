"""File-drop back end: one JSON file per case event, for software that watches a folder.

Files appear atomically (written to a temporary name in the same folder, flushed to disk,
then renamed), so a watcher never reads half a file. Names are deterministic (the case id),
and a redelivered event whose file is already there byte for byte is not written again: no
second file, no rewrite, no new change notification for a watcher.

The event's claim-checked attachments are fetched from the hub's object store and written,
byte for byte, to ``<case-id>.files/<name>`` *before* ``<case-id>.json``: the JSON appearing
means the case is complete.

The legacy software answers the same way: it drops ``<anything>.json`` with ``case_id`` and
a reply (``kind`` = status, decision, rejection, receipt, plus its fields) into the ``in/``
folder. Accepted files move to ``in/done/``; files that cannot be a reply move to
``in/rejected/`` beside a ``.reason.txt`` — kept, never deleted — after the first attempt:
symlinks and other non-regular files (never followed or read), files over
``reply_max_bytes``, JSON nested too deep, invalid JSON or replies, unknown cases. When the
hub cannot take a reply just now, the file stays and is tried again after a growing delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar, Literal

import pydantic_core
from pydantic import Field, TypeAdapter, ValidationError

from poststelle.adapters._names import safe_file_name
from poststelle.adapters._replyfiles import ReplyFileRefused, move_aside, read_reply_file
from poststelle.adapters.base import (
    AdapterContext,
    AdapterSettings,
    AttachmentMissing,
    ReadAttachment,
    StoredCaseEvent,
)
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.contracts.events import AttachmentRef, CaseEvent
from poststelle.contracts.replies import CaseReply

__all__ = ["FileDropBackend", "FileDropSettings", "write_atomically", "write_once"]

log = logging.getLogger(__name__)

AcceptReply = Callable[..., Awaitable[str]]
# A reply the hub could not take is tried again after poll interval x 2^n, at most this.
_MAX_RETRY_DELAY = 300.0
_ATTACHMENT_REFS = TypeAdapter(list[AttachmentRef])


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


def write_once(path: Path, content: bytes) -> bool:
    """``write_atomically`` unless ``path`` already holds ``content``; ``True`` if written.
    Whoever watches the folder sees a repeat delivery of a case not at all."""
    try:
        if path.stat().st_size == len(content) and path.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    write_atomically(path, content)
    return True


class FileDropSettings(AdapterSettings):
    directory: Path | None = None
    """Root of the drop; files go to ``<directory>/<tenant>/<backend>/``. Default
    ``<data-dir>/outbox``."""
    replies: bool = True
    """Read replies from ``<folder>/in/``."""
    reply_poll_interval: float = Field(default=1.0, gt=0)
    reply_max_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Larger reply files are rejected unread"
    )


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
        # File name -> (failed attempts, monotonic time of the next one).
        self._retries: dict[str, tuple[int, float]] = {}

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
            await self.take_replies()
            await asyncio.sleep(self.settings.reply_poll_interval)

    async def take_replies(self) -> None:
        """One pass over ``in/``: every ``*.json`` entry is taken, rejected or left for a
        later pass (the hub could not take it; see ``_retries``)."""
        try:
            names = await asyncio.to_thread(self._reply_names)
        except OSError as exc:  # in/ removed or unreadable: say so, look again next poll
            log.warning("reply folder unreadable folder=%s error=%r", self.inbox, exc)
            return
        # Files that disappeared (moved away by someone else) stop being tracked.
        for name in set(self._retries) - set(names):
            del self._retries[name]
        for name in names:
            retry = self._retries.get(name)
            if retry is None or retry[1] <= time.monotonic():
                await self._take_reply(self.inbox / name)

    def _reply_names(self) -> list[str]:
        with os.scandir(self.inbox) as entries:
            return sorted(entry.name for entry in entries if entry.name.endswith(".json"))

    async def _take_reply(self, path: Path) -> None:
        assert self._accept_reply is not None
        try:
            taken = await asyncio.to_thread(
                read_reply_file, path, max_bytes=self.settings.reply_max_bytes
            )
            reply = CaseReply.model_validate(taken.document)
            await self._accept_reply(
                taken.case_id,
                reply,
                via=f"filedrop:{self.tenant}/{self.name}",
                backend=(self.tenant, self.name),
            )
        except ReplyFileRefused as exc:
            await self._settle(path, str(exc))
            return
        except (ValueError, LookupError) as exc:
            # Not a reply (ValidationError is a ValueError), or no such case: no later
            # attempt can do better.
            await self._settle(path, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # the hub (or the disk) is unavailable: try again later
            self._postpone(path.name, exc)
            return
        await self._settle(path, None)

    def _postpone(self, name: str, exc: Exception) -> None:
        attempts = self._retries.get(name, (0, 0.0))[0] + 1
        delay = min(_MAX_RETRY_DELAY, self.settings.reply_poll_interval * 2**attempts)
        self._retries[name] = (attempts, time.monotonic() + delay)
        log.warning(
            "reply not taken yet file=%s attempt=%d retry_in=%.1fs error=%r",
            name,
            attempts,
            delay,
            exc,
        )

    async def _settle(self, path: Path, reason: str | None) -> None:
        """Move a taken file to ``done/``, a refused one to ``rejected/`` with its reason."""
        self._retries.pop(path.name, None)
        try:
            await asyncio.to_thread(self._move, path, reason)
        except OSError as exc:
            # Cannot move it (permissions?): leave it, and do not read it again every poll.
            self._postpone(path.name, exc)

    def _move(self, path: Path, reason: str | None) -> None:
        if reason is None:
            move_aside(path, self.inbox / "done")
            return
        parked = move_aside(path, self.inbox / "rejected")
        parked.with_name(f"{parked.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
        log.warning("reply file rejected file=%s moved_to=%s reason=%s", path.name, parked, reason)

    def health(self) -> dict[str, object]:
        return {"ok": os.access(self.folder, os.W_OK), "folder": str(self.folder)}

    def path_for(self, event: CaseEvent) -> Path:
        return self.folder / f"{event.data.case_id}.json"

    def files_for(self, event: CaseEvent) -> Path:
        """The folder beside the event that holds the case's attachments."""
        return self._files_of(event.data.case_id)

    def _files_of(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.files"

    async def _write_attachments(self, case_id: str, attachments: list[AttachmentRef]) -> None:
        stored = [a for a in attachments if a.kind == "inline"]
        if not stored:
            return
        if self._read_attachment is None:
            raise PermanentDeliveryError("this file drop has no access to the attachment store")
        used: set[str] = set()
        for index, attachment in enumerate(stored, start=1):
            name = _unique(safe_file_name(attachment.name, f"attachment-{index}"), used, index)
            content = await self._fetch(attachment)
            target = self._files_of(case_id) / name
            try:
                await asyncio.to_thread(write_once, target, content)
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

    def _check_addressee(self, tenant: str, backend: str) -> None:
        if tenant != self.tenant or backend != self.name:
            raise PermanentDeliveryError(
                f"event for {tenant}/{backend} reached {self.tenant}/{self.name}"
            )

    async def deliver(self, event: CaseEvent) -> None:
        self._check_addressee(event.data.tenant, event.data.backend)
        await self._write_attachments(event.data.case_id, event.data.attachments)
        await self._write_event(event.data.case_id, event.model_dump_json(indent=2).encode())

    async def deliver_stored(self, stored: StoredCaseEvent) -> None:
        """The stored bytes, indented as ``deliver`` writes them, without the model: the
        stored JSON *is* the model's dump, so re-indenting its document gives the same file
        byte for byte (``tests/adapters/test_filedrop_stored.py``)."""
        self._check_addressee(stored.tenant, stored.backend)
        document = pydantic_core.from_json(stored.raw)
        try:
            attachments = _ATTACHMENT_REFS.validate_python(
                [
                    a
                    for a in document["data"].get("attachments") or ()
                    if a.get("kind", "inline") == "inline"
                ]
            )
        except (ValidationError, AttributeError, KeyError, TypeError) as exc:
            raise PermanentDeliveryError(f"attachments of event {stored.id}: {exc}") from exc
        await self._write_attachments(stored.case_id, attachments)
        await self._write_event(stored.case_id, pydantic_core.to_json(document, indent=2))

    async def _write_event(self, case_id: str, body: bytes) -> None:
        path = self.folder / f"{case_id}.json"
        try:
            written = await asyncio.to_thread(write_once, path, body)
        except OSError as exc:
            raise RetryableDeliveryError(f"cannot write {path}: {exc}") from exc
        if not written:
            log.info("file drop already holds the case, not rewritten path=%s", path)


def _unique(name: str, used: set[str], index: int) -> str:
    """Two attachments with one name both arrive: the later ones get their index in front."""
    if name in used:
        name = f"{index}-{name}"
    used.add(name)
    return name
