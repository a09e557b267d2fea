"""File names from senders, made safe to show and to write: a label, never a path."""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["safe_file_name"]


def safe_file_name(filename: str | None, fallback: str) -> str:
    """The sender's file name as a label only: no directories, no control characters,
    never ``.``/``..`` and never hidden (a leading dot would hide it from a watcher)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = "".join(char for char in name if char.isprintable()).strip().lstrip(".")
    return name[:255] or fallback
