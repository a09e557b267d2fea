"""The file drop writes a case once: under its deterministic name, through a temporary file
in the same folder renamed into place, and a repeat delivery of the same event (after a
crash of the hub before its ack) neither adds a file nor rewrites the one there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext, StoredCaseEvent
from poststelle.adapters.filedrop import FileDropBackend, FileDropSettings
from poststelle.adapters.testing import sample_event

from .test_filedrop_attachments import _backend, _with_files

OLD = 1_000_000_000  # 2001: a file time no write of this test leaves behind


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its inode and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def test_a_repeat_delivery_neither_adds_nor_rewrites_a_file(tmp_path: Path) -> None:
    backend, store = _backend(tmp_path)
    event = _with_files(store, [("plan.pdf", b"%PDF-1\x00\xff"), ("lage.pdf", b"%PDF-2")])
    stored = StoredCaseEvent.from_json(event.model_dump_json().encode())
    await backend.deliver_stored(stored)
    for path in backend.folder.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD * 10**9, OLD * 10**9))
    before = _tree(backend.folder)
    assert sorted(before) == [
        f"{event.data.case_id}.files/lage.pdf",
        f"{event.data.case_id}.files/plan.pdf",
        f"{event.data.case_id}.json",
    ]

    await backend.deliver_stored(stored)
    await backend.deliver(event)  # the model path writes the same bytes

    assert _tree(backend.folder) == before


async def test_a_case_is_written_through_a_temporary_file_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileDropBackend(
        name="akte",
        tenant="amt",
        settings=FileDropSettings(directory=tmp_path / "outbox", replies=False),
        context=AdapterContext(data_dir=tmp_path),
    )
    renames: list[tuple[Path, Path]] = []
    replace = os.replace

    def recording_replace(source: Any, target: Any) -> None:
        renames.append((Path(source), Path(target)))
        replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    event = sample_event("amt", "akte")
    await backend.deliver(event)
    await backend.deliver(event)

    target = backend.folder / f"{event.data.case_id}.json"
    [(temporary, renamed)] = renames  # one write, the repeat none
    assert renamed == target
    assert temporary.parent == target.parent and temporary.name.endswith(".tmp")
    assert sorted(p.name for p in backend.folder.iterdir()) == [target.name]


async def test_a_changed_event_of_the_same_case_replaces_its_file(tmp_path: Path) -> None:
    backend, _ = _backend(tmp_path)
    event = sample_event("amt", "akte")
    await backend.deliver(event)
    changed = event.model_copy(update={"id": "another-event-of-the-case"})
    await backend.deliver(changed)

    [written] = backend.folder.glob("*.json")
    assert b"another-event-of-the-case" in written.read_bytes()
