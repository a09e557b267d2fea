"""What a polling inbound adapter tells ``/healthz`` about its rounds.

One shape for every poller (XTA today, others later), so an operator reads the same keys
whatever the source: when it last polled, when a round last went through without a failure,
how many messages it has taken in, and the last error with its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

__all__ = ["PollHealth", "PollTask", "saturation_of"]


def saturation_of(extras: Mapping[str, Any]) -> Callable[[], bool] | None:
    """The hub's admission control's ``saturated``, if the hub lends one (``extras`` of the
    adapter context): a poller cannot be refused like an HTTP client, so it stops fetching."""
    saturated = getattr(extras.get("admission"), "saturated", None)
    return cast("Callable[[], bool]", saturated) if callable(saturated) else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass
class PollHealth:
    """Facts about an inbound adapter's poll rounds; ``record`` once per round."""

    last_poll: datetime | None = None
    last_success: datetime | None = None
    received: int = 0
    last_poll_errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None

    def record(self, received: int, errors: Sequence[str]) -> None:
        """A round ended: ``received`` messages taken in, ``errors`` the texts of what failed."""
        now = datetime.now(UTC)
        self.last_poll = now
        self.received += received
        self.last_poll_errors = len(errors)
        if errors:
            # The last error stays visible after later good rounds: its time tells it is old.
            self.last_error, self.last_error_at = errors[-1], now
        else:
            self.last_success = now

    @property
    def last_poll_ok(self) -> bool:
        return self.last_poll is not None and self.last_poll_errors == 0

    def report(self) -> dict[str, object]:
        return {
            "last_poll": _iso(self.last_poll),
            "last_poll_ok": self.last_poll_ok,
            "last_poll_errors": self.last_poll_errors,
            "last_success": _iso(self.last_success),
            "received": self.received,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
        }


class PollTask:
    """The background task a poller runs its rounds in: one at a time; ``stop`` waits for
    the round under way (``grace`` seconds at most), then cancels it."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        if not self.running:
            self._task = asyncio.create_task(run(), name=name)

    async def stop(self, grace: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=grace)
            if not task.done():
                task.cancel()
