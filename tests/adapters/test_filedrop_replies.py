"""The file drop's ``in/`` folder under hostile or broken input.

The reader is driven one pass at a time (``take_replies``) with a recording stand-in for the
hub's ``accept_reply``: what matters here is what the reader does with files, not NATS.
The whole way through a real hub is ``tests/integration/test_reply_path.py``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.filedrop import FileDropBackend, FileDropSettings
from poststelle.contracts._safexml import json_depth_exceeds
from poststelle.contracts.replies import CaseReply
from poststelle.routing.hub.replies import UnknownCaseError
from tests.integration.conftest import eventually

KNOWN_CASE = "666c45bc-af93-5fbe-9296-177186944635"
STATUS = {"kind": "status", "vorgang": "BA-2026-00417", "antrag_vollstaendig": True}


class Hub:
    """Stands in for ``Hub.accept_reply``: records replies, knows one case."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, CaseReply]] = []
        self.unavailable = 0

    async def accept_reply(
        self,
        case_id: str,
        reply: CaseReply,
        *,
        via: str,
        backend: tuple[str, str] | None = None,
    ) -> str:
        # The file drop speaks for its own back end only: the hub checks the case is its.
        assert backend is not None, "a reply file must name the back end it came from"
        if self.unavailable:
            self.unavailable -= 1
            raise TimeoutError("nats: timeout")
        if case_id != KNOWN_CASE:
            raise UnknownCaseError(f"no case {case_id!r} is registered")
        self.taken.append((case_id, reply))
        return reply.idempotency_key()


@pytest.fixture
def hub() -> Hub:
    return Hub()


def drop(tmp_path: Path, hub: Hub, **settings: Any) -> FileDropBackend:
    backend = FileDropBackend(
        name="akte",
        tenant="stadt-kiel",
        settings=FileDropSettings(directory=tmp_path / "drop", **settings),
        context=AdapterContext(data_dir=tmp_path, extras={"accept_reply": hub.accept_reply}),
    )
    backend.inbox.mkdir(parents=True)
    return backend


def reason(backend: FileDropBackend, name: str) -> str:
    return (backend.inbox / "rejected" / f"{name}.reason.txt").read_text()


def good_reply() -> bytes:
    return json.dumps({"case_id": KNOWN_CASE, **STATUS}).encode()


async def test_a_good_file_is_taken_and_moved_to_done(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    (backend.inbox / "status.json").write_bytes(good_reply())
    await backend.take_replies()
    assert [(case_id, reply.kind) for case_id, reply in hub.taken] == [(KNOWN_CASE, "status")]
    assert (backend.inbox / "done" / "status.json").read_bytes() == good_reply()
    assert not (backend.inbox / "status.json").exists()


async def test_a_symlink_is_rejected_and_its_target_never_read(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    # The target is a perfectly good reply: had the link been followed, it would be taken.
    target = tmp_path / "elsewhere.json"
    target.write_bytes(good_reply())
    before = os.stat(target)
    (backend.inbox / "x.json").symlink_to(target)
    await backend.take_replies()
    assert hub.taken == []
    parked = backend.inbox / "rejected" / "x.json"
    assert parked.is_symlink() and os.readlink(parked) == str(target)
    assert "symbolic link" in reason(backend, "x.json")
    after = os.stat(target)
    assert target.read_bytes() == good_reply()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )


async def test_a_symlink_to_etc_passwd_is_not_followed(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    (backend.inbox / "passwd.json").symlink_to("/etc/passwd")
    await backend.take_replies()
    assert "symbolic link" in reason(backend, "passwd.json")
    assert "root" not in reason(backend, "passwd.json")
    assert (backend.inbox / "rejected" / "passwd.json").is_symlink()


async def test_a_folder_named_like_a_reply_is_rejected_once(
    tmp_path: Path, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    backend = drop(tmp_path, hub)
    (backend.inbox / "x.json").mkdir()
    (backend.inbox / "x.json" / "inside.txt").write_text("kept")
    with caplog.at_level(logging.WARNING):
        await backend.take_replies()
        await backend.take_replies()
    assert "a folder" in reason(backend, "x.json")
    assert (backend.inbox / "rejected" / "x.json" / "inside.txt").read_text() == "kept"
    assert len(caplog.records) == 1


async def test_a_fifo_is_rejected_without_being_opened(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    os.mkfifo(backend.inbox / "pipe.json")
    # Opening a FIFO for reading blocks until a writer comes: a reader that opened it would
    # hang here rather than return.
    await backend.take_replies()
    assert "a FIFO" in reason(backend, "pipe.json")


async def test_a_200k_deep_array_is_rejected_without_recursion(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    (backend.inbox / "deep.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    await backend.take_replies()
    assert "nested deeper than 32 levels" in reason(backend, "deep.json")
    assert hub.taken == []


async def test_a_file_over_the_size_limit_is_rejected_unread(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub, reply_max_bytes=1000)
    big = {"case_id": KNOWN_CASE, **STATUS, "note": "x" * 2000}
    (backend.inbox / "big.json").write_text(json.dumps(big))
    (backend.inbox / "small.json").write_bytes(good_reply())
    await backend.take_replies()
    assert "over the limit of 1000 bytes" in reason(backend, "big.json")
    assert (backend.inbox / "done" / "small.json").exists()
    assert len(hub.taken) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b'["case_id"]', "a JSON list, not an object"),
        (json.dumps(STATUS).encode(), "no case_id"),
        (json.dumps({"case_id": KNOWN_CASE, "kind": "verdict"}).encode(), "ValidationError"),
        (json.dumps({"case_id": "no-such-case", **STATUS}).encode(), "no-such-case"),
    ],
    ids=["invalid-json", "not-utf8", "not-an-object", "no-case-id", "not-a-reply", "unknown"],
)
async def test_a_poison_file_is_rejected_after_the_first_attempt(
    tmp_path: Path, hub: Hub, content: bytes, expected: str
) -> None:
    backend = drop(tmp_path, hub)
    (backend.inbox / "bad.json").write_bytes(content)
    await backend.take_replies()
    assert not (backend.inbox / "bad.json").exists()
    assert (backend.inbox / "rejected" / "bad.json").read_bytes() == content
    assert expected in reason(backend, "bad.json")


async def test_a_rejected_name_never_overwrites_an_earlier_one(tmp_path: Path, hub: Hub) -> None:
    backend = drop(tmp_path, hub)
    for content in (b"first", b"second"):
        (backend.inbox / "bad.json").write_bytes(content)
        await backend.take_replies()
    rejected = backend.inbox / "rejected"
    assert (rejected / "bad.json").read_bytes() == b"first"
    assert (rejected / "bad.1.json").read_bytes() == b"second"
    assert (rejected / "bad.1.json.reason.txt").exists()


async def test_the_hub_unavailable_is_retried_after_a_delay(
    tmp_path: Path, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    backend = drop(tmp_path, hub, reply_poll_interval=0.1)
    hub.unavailable = 1
    (backend.inbox / "status.json").write_bytes(good_reply())
    with caplog.at_level(logging.WARNING):
        await backend.take_replies()
        # The delay has not passed: the next pass leaves the file alone.
        await backend.take_replies()
    assert [record.getMessage() for record in caplog.records] == [
        "reply not taken yet file=status.json attempt=1 retry_in=0.2s "
        "error=TimeoutError('nats: timeout')"
    ]
    assert (backend.inbox / "status.json").exists()

    async def taken() -> bool:
        await backend.take_replies()
        return (backend.inbox / "done" / "status.json").exists()

    await eventually(taken, within=5.0)
    assert len(hub.taken) == 1
    assert not (backend.inbox / "rejected").exists()


async def test_the_running_reader_rejects_poison_and_takes_good_files(
    tmp_path: Path, hub: Hub
) -> None:
    backend = drop(tmp_path, hub, reply_poll_interval=0.05)
    (backend.inbox / "deep.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    (backend.inbox / "x.json").mkdir()
    (backend.inbox / "status.json").write_bytes(good_reply())
    await backend.start()
    try:
        await eventually(lambda: (backend.inbox / "done" / "status.json").exists())
        await eventually(lambda: not list(backend.inbox.glob("*.json")))
    finally:
        await backend.stop()
    assert sorted(path.name for path in (backend.inbox / "rejected").iterdir()) == [
        "deep.json",
        "deep.json.reason.txt",
        "x.json",
        "x.json.reason.txt",
    ]


def test_depth_ignores_brackets_inside_strings() -> None:
    nested_three = b'{"a": "[[[[[[", "b": [{"c": "\\\\\\"]]]"}], "d": "\\\\"}'
    assert not json_depth_exceeds(nested_three, limit=3)
    assert json_depth_exceeds(nested_three, limit=2)
    assert json_depth_exceeds(b"[" * 100, limit=5)
    assert not json_depth_exceeds(b"[[]," * 50 + b"[]" + b"]" * 50, limit=51)
    assert json_depth_exceeds(b"[[]," * 50 + b"[]" + b"]" * 50, limit=50)
    # Unbalanced or mismatched brackets never pass for shallow.
    assert json_depth_exceeds(b"[}" * 10, limit=5)
