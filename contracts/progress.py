"""Progress of the command line's long operations (``contracts add`` of a large set, ``routes
import`` of a national table, replays of thousands of messages), on standard error.

On a terminal it is a rich progress bar per step; anywhere else (a pipe, a log, ``--json``)
the bar would be noise, so a long count says how far it is about once a second, and each
step is one line if the command asks for it (``announce``). Standard output stays for the
command's result. It lives here, in the lowest room that has a command line, so
``contracts`` and ``routing`` commands show the same.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

__all__ = ["StepProgress", "step_progress"]

# Counts below this finish before anyone looks: no lines for them off a terminal.
_LINES_FROM = 500
_LINE_EVERY = 1.0


class StepProgress:
    """Steps one after the other, each with a count (``update``) or without (a spinner)."""

    def __init__(self, stream: TextIO | None, *, bars: bool, announce: bool = False) -> None:
        """``stream`` ``None``: silent."""
        self._stream = stream
        self._bars = bars
        self._announce = announce
        self._progress: Any = None
        self._task: Any = None
        self._description = ""
        self._line_at = 0.0

    def __enter__(self) -> StepProgress:
        if self._bars:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_task()
        if self._progress is not None:
            self._progress.stop()

    def step(self, description: str, total: int | None = None) -> None:
        """Begin the next step; the one before is done."""
        self._finish_task()
        self._description = description
        if self._progress is None:
            if self._stream is not None and self._announce:
                print(f"{description} ...", file=self._stream, flush=True)
            self._line_at = time.monotonic()
            return
        self._task = self._progress.add_task(description, total=total)

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` items of the current step."""
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self._description, total=total)
            self._progress.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        if (
            self._stream is None
            or total < _LINES_FROM
            or (now - self._line_at < _LINE_EVERY and done < total)
        ):
            return
        self._line_at = now
        print(f"{self._description} {done}/{total}", file=self._stream, flush=True)

    def report(self, step: str, done: int, total: int) -> None:
        """A callback for code that names its step with every count (``contracts add``)."""
        if step != self._description:
            self.step(step, total)
        self.update(done, total)

    def _finish_task(self) -> None:
        if self._progress is None or self._task is None:
            return
        task = self._progress.tasks[self._task]
        # A step without a count ends as a full bar of one.
        self._progress.update(self._task, total=task.total or 1, completed=task.total or 1)
        self._task = None


def step_progress(
    *, quiet: bool = False, announce: bool = False, stream: TextIO | None = None
) -> StepProgress:
    """Bars on a terminal unless ``quiet`` (``--json``: nothing but the document); lines
    elsewhere (none when ``quiet``): long counts, and every step with ``announce``."""
    out = stream or sys.stderr
    if quiet:
        return StepProgress(None, bars=False)
    return StepProgress(out, bars=out.isatty(), announce=announce)
