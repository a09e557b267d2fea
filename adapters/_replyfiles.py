"""Reading reply files from a file drop's ``in/`` folder without trusting the folder.

Anyone who can write to ``in/`` may leave a symlink (``x.json -> /etc/passwd``), a FIFO, a
folder named ``x.json``, a huge file or a 200,000-deep JSON array there. ``read_reply_file``
refuses all of those with ``ReplyFileRefused`` before parsing: a link is never followed
(``lstat`` first, then ``open(O_NOFOLLOW)`` and ``fstat`` on the very descriptor read, so a
file swapped in between is caught), the size is bounded before and while reading, and the
nesting depth is measured on the bytes before ``json.loads`` can recurse.

``move_aside`` moves a file (or link, or folder) into ``done/`` or ``rejected/`` under a
name that is free there, so an earlier file of the same name is never overwritten.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poststelle.contracts._safexml import json_depth_exceeds

__all__ = [
    "MAX_REPLY_DEPTH",
    "ReplyFile",
    "ReplyFileRefused",
    "move_aside",
    "read_reply_file",
]

# A CaseReply nests three levels (reply, anlagen, anlage); 32 leaves room for extensions
# and stays far below the interpreter's recursion limit.
MAX_REPLY_DEPTH = 32


class ReplyFileRefused(Exception):
    """This file can never become a reply: it goes to ``rejected/`` with the reason."""


@dataclass(frozen=True)
class ReplyFile:
    case_id: str
    document: dict[str, Any]


def _file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    # lstat first: a FIFO or a device is refused without ever being opened.
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise ReplyFileRefused(f"{_file_kind(before.st_mode)}, not a regular file: not read")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link after the lstat
            raise ReplyFileRefused("a symbolic link, not a regular file: not read") from exc
        raise
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise ReplyFileRefused(f"{_file_kind(opened.st_mode)}, not a regular file: not read")
        if opened.st_size > max_bytes:
            raise ReplyFileRefused(
                f"{opened.st_size} bytes, over the limit of {max_bytes} bytes: not read"
            )
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise ReplyFileRefused(f"over the limit of {max_bytes} bytes: not read")
    return data


def read_reply_file(path: Path, *, max_bytes: int, max_depth: int = MAX_REPLY_DEPTH) -> ReplyFile:
    """The case id and the reply fields of one file; ``ReplyFileRefused`` if it cannot be
    one, ``OSError`` if it could not be read now (worth another try)."""
    data = _read_bounded(path, max_bytes)
    if json_depth_exceeds(data, max_depth):
        raise ReplyFileRefused(f"JSON nested deeper than {max_depth} levels: not parsed")
    try:
        document: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ReplyFileRefused(f"not JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(document, dict):
        raise ReplyFileRefused(f"a JSON {type(document).__name__}, not an object")
    case_id = document.pop("case_id", None)
    if not isinstance(case_id, str) or not case_id:
        raise ReplyFileRefused("no case_id (a non-empty string) in the reply")
    return ReplyFile(case_id=case_id, document=document)


def move_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` itself (a link stays a link) into ``folder``; returns the new path."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    counter = 1
    while os.path.lexists(target):
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    os.rename(path, target)
    return target
