"""Worker processes of one hub (``poststelle run --workers N``): started, watched, restarted.

The supervisor starts each worker as a child process from one command line, waits until it
prints its ready line, and restarts one that exits with a delay that grows with every exit
in a row (1 s, 2 s, 4 s ... at most 30 s; a worker that ran a minute starts again from 1 s).
Every child holds the read end of a pipe on its standard input: when the supervisor's
process dies, however it dies, the pipe closes and the child stops (``--supervised``), so
no worker outlives its hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["READY_PREFIX", "SupervisorError", "WorkerSupervisor", "restart_delay"]

log = logging.getLogger(__name__)

# The first line a worker prints on its standard output once it routes and delivers.
READY_PREFIX = "Poststelle worker running"
_READY_TIMEOUT = 120.0
_STOP_TIMEOUT = 10.0
_FIRST_DELAY = 1.0
_MAX_DELAY = 30.0
# A worker that ran this long counts as healthy: its next exit restarts it at once-ish.
_STABLE_AFTER = 60.0


def restart_delay(exits_in_a_row: int) -> float:
    """The pause before the n-th restart in a row: 1 s, 2 s, 4 s ... at most 30 s."""
    return float(min(_MAX_DELAY, _FIRST_DELAY * 2 ** max(0, exits_in_a_row - 1)))


class SupervisorError(RuntimeError):
    """A worker did not start: the hub's own configuration works, so this one is real."""


@dataclass
class _Child:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    exits_in_a_row: int = 0
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    drain: asyncio.Task[None] | None = field(default=None, repr=False)


class WorkerSupervisor:
    """``count`` children, each running ``argv``; ``start`` returns once all are ready."""

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self._argv = list(argv)
        self._children = [_Child(index) for index in range(1, count + 1)]
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The running children's process ids, in worker order."""
        return [
            child.process.pid
            for child in self._children
            if child.process is not None and child.process.returncode is None
        ]

    @property
    def restarts(self) -> int:
        return sum(child.restarts for child in self._children)

    async def start(self) -> None:
        """Start every worker; one that does not come up stops the others and raises."""
        try:
            await asyncio.gather(*(self._launch(child) for child in self._children))
        except BaseException:
            await self.stop()
            raise
        for child in self._children:
            child.watcher = asyncio.create_task(self._watch(child), name=f"worker-{child.index}")

    async def _launch(self, child: _Child) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,  # closes when this process dies: the child stops
            stdout=asyncio.subprocess.PIPE,
            # Out of the terminal's process group: Ctrl+C reaches the supervisor alone, which
            # then stops the workers, instead of racing them to an exit it would restart.
            start_new_session=True,
        )
        child.process, child.started_at = process, time.monotonic()
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=_READY_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line.decode(errors="replace").startswith(READY_PREFIX):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise SupervisorError(
                f"worker {child.index} did not start (exit status {process.returncode}); "
                "its errors are above"
            )
        # Nothing else is expected on stdout, but a full pipe would block the child.
        child.drain = asyncio.create_task(_discard(process.stdout))
        log.info("worker process started index=%d pid=%d", child.index, process.pid)

    async def _watch(self, child: _Child) -> None:
        while not self._stopping:
            assert child.process is not None
            returncode = await child.process.wait()
            if self._stopping:
                return
            ran = time.monotonic() - child.started_at
            child.exits_in_a_row = 1 if ran >= _STABLE_AFTER else child.exits_in_a_row + 1
            delay = restart_delay(child.exits_in_a_row)
            log.warning(
                "worker process exited, restarting index=%d pid=%d returncode=%s ran=%.1fs "
                "exits_in_a_row=%d restart_in=%.1fs",
                child.index,
                child.process.pid,
                returncode,
                ran,
                child.exits_in_a_row,
                delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._launch(child)
            except SupervisorError as exc:
                log.error("worker process restart failed index=%d error=%s", child.index, exc)
                child.started_at = time.monotonic()
                continue
            child.restarts += 1

    async def stop(self) -> None:
        """SIGTERM every worker (its stdin closes too) and wait; SIGKILL after 10 s."""
        self._stopping = True
        for child in self._children:
            if child.watcher is not None:
                child.watcher.cancel()
        await asyncio.gather(*(self._end(child) for child in self._children))
        for child in self._children:
            for task in (child.watcher, child.drain):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _end(self, child: _Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=_STOP_TIMEOUT)
        except TimeoutError:
            log.warning("worker process did not stop, killing pid=%d", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        log.info(
            "worker process stopped index=%d pid=%d returncode=%s",
            child.index,
            process.pid,
            process.returncode,
        )


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
