"""What the simulators (FIT-Connect, XTA) share: a server in a thread, used with ``with``."""

from __future__ import annotations

from typing import Self

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """``start()`` binds and serves in a daemon thread and returns the URL; ``stop()`` ends it
    and may be called twice; ``with`` does both."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
