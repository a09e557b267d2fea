"""Which broker errors heal by themselves: the one place that tells transient from permanent.

A transient error (the broker is away, reconnecting or slow) is worth a retry after a pause:
HTTP answers ``503`` with ``Retry-After``, a worker naks with a delay. Anything else will fail
the same way again and gets a permanent answer (``4xx``/``500``, quarantine, DLQ).
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

__all__ = ["RETRY_AFTER", "TRANSIENT_ERRORS", "is_transient"]

# Seconds a client should wait before trying again after a transient failure.
RETRY_AFTER = 5

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)
