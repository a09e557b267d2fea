"""Which broker errors heal by themselves: the one place that tells transient from permanent.

A transient error (the broker is away, reconnecting, slow, or answering with a server-side
failure) is worth a retry after a pause: HTTP answers ``503`` with ``Retry-After``, a worker
naks with a growing delay. Anything else will fail the same way again and gets a permanent
answer (``4xx``/``500``, quarantine, DLQ), never a retry loop.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

__all__ = ["RETRY_AFTER", "is_transient"]

# Seconds a client should wait before trying again after a transient failure.
RETRY_AFTER = 5

_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,  # nats.js.errors derive from it
    TimeoutError,  # asyncio.TimeoutError is TimeoutError
    ConnectionError,
)
# Broker errors that name a fault of the request itself: the same request fails again.
_PERMANENT_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.js.errors.BadRequestError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _BROKER_ERRORS) and not isinstance(exc, _PERMANENT_BROKER_ERRORS)
