"""The file drop hands its back end the case's files byte for byte, beside the event and
before it: the JSON appearing means the case is complete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from poststelle.adapters.base import AdapterContext, AttachmentMissing
from poststelle.adapters.errors import PermanentDeliveryError
from poststelle.adapters.filedrop import FileDropBackend, FileDropSettings
from poststelle.adapters.testing import sample_event
from poststelle.contracts.events import AttachmentRef, CaseEvent


class Store:
    def __init__(self, backend_folder: Path) -> None:
        self.objects: dict[str, bytes] = {}
        self.json_existed: list[bool] = []
        self._folder = backend_folder

    async def __call__(self, ref: str) -> bytes:
        self.json_existed.append(any(self._folder.glob("*.json")))
        if ref not in self.objects:
            raise AttachmentMissing(f"object {ref} not found")
        return self.objects[ref]


def _backend(tmp_path: Path) -> tuple[FileDropBackend, Store]:
    folder = tmp_path / "outbox" / "amt" / "akte"
    store = Store(folder)
    backend = FileDropBackend(
        name="akte",
        tenant="amt",
        settings=FileDropSettings(directory=tmp_path / "outbox", replies=False),
        context=AdapterContext(data_dir=tmp_path, read_attachment=store),
    )
    return backend, store


def _with_files(store: Store, files: list[tuple[str, bytes]]) -> CaseEvent:
    event = sample_event("amt", "akte")
    refs = []
    for index, (name, content) in enumerate(files):
        ref = f"attachments/{event.data.case_id}/{index}"
        store.objects[ref] = content
        digest = hashlib.sha256(content).hexdigest()
        refs.append(
            AttachmentRef(
                name=name, media_type="application/pdf", size=len(content), sha256=digest, ref=ref
            )
        )
    return event.model_copy(update={"data": event.data.model_copy(update={"attachments": refs})})


async def test_files_are_written_byte_identical_before_the_event(tmp_path: Path) -> None:
    backend, store = _backend(tmp_path)
    files = [("plan.pdf", b"%PDF-1\x00\xff"), ("plan.pdf", b"%PDF-2"), ("../../etc/passwd", b"x")]
    event = _with_files(store, files)
    await backend.deliver(event)
    written = backend.files_for(event)
    assert (written / "plan.pdf").read_bytes() == b"%PDF-1\x00\xff"
    assert (written / "2-plan.pdf").read_bytes() == b"%PDF-2"
    assert (written / "passwd").read_bytes() == b"x"
    assert sorted(p.name for p in written.iterdir()) == ["2-plan.pdf", "passwd", "plan.pdf"]
    assert store.json_existed == [False, False, False]
    assert backend.path_for(event).exists()


async def test_missing_or_altered_file_is_permanent_and_no_event_appears(tmp_path: Path) -> None:
    backend, store = _backend(tmp_path)
    missing = _with_files(store, [("plan.pdf", b"%PDF")])
    store.objects.clear()
    with pytest.raises(PermanentDeliveryError, match="not found"):
        await backend.deliver(missing)
    altered = _with_files(store, [("plan.pdf", b"%PDF")])
    store.objects[altered.data.attachments[0].ref] = b"%PDF tampered"
    with pytest.raises(PermanentDeliveryError, match="sha256"):
        await backend.deliver(altered)
    assert not backend.path_for(missing).exists()
    assert not backend.path_for(altered).exists()
