"""The one exception every step of message understanding raises."""

from __future__ import annotations

from typing import Any

__all__ = ["MessageRejected"]


class MessageRejected(Exception):
    """A message that cannot go on; it is quarantined under ``step`` and ``reason``.

    ``step`` is the pipeline step (``parse``, ``identify``, ``validate``, ``map``) and ``reason``
    a short, stable code (``dtd-forbidden``, ``schema-invalid``, ...) that becomes a subject token
    of the quarantine stream, so it never contains user input. ``detail`` is for humans;
    ``errors`` carries structured findings (e.g. schema errors with line and path) when a step
    has them.
    """

    def __init__(
        self, step: str, reason: str, detail: str, *, errors: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(f"{step}/{reason}: {detail}")
        self.step = step
        self.reason = reason
        self.detail = detail
        self.errors = errors
