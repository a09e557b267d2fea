"""How a client of a remote service (a Zustelldienst, an XTA server) waits and tries again.

One set of settings and one policy for every such client: the same keys in the configuration,
the same exponential back-off, the same log line for each retry, whether the client is async
(FIT-Connect, httpx) or sync (XTA, zeep).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = ["RemoteCallSettings", "retry_policy"]


class RemoteCallSettings(BaseModel):
    """TLS, timeouts and retries of the calls to a remote service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verify_tls: bool = True

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    retry_attempts: int = Field(default=5, ge=1, le=50)
    retry_initial_wait: float = Field(default=0.5, ge=0)
    retry_max_wait: float = Field(default=30.0, ge=0)


def retry_policy(
    settings: RemoteCallSettings,
    transient: type[BaseException],
    *,
    logger: logging.Logger,
    service: str,
    operation: str,
) -> dict[str, Any]:
    """The arguments of ``tenacity.Retrying`` or ``AsyncRetrying`` for one ``operation``:
    up to ``retry_attempts`` tries while it fails with ``transient``, each retry logged as a
    warning by ``logger``; the last error is raised as it is."""

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        # The text goes into the line itself: the console format shows no extras.
        logger.warning(
            "%s call failed, retrying operation=%s attempt=%d error=%s",
            service,
            operation,
            state.attempt_number,
            exc,
            extra={
                "operation": operation,
                "attempt": state.attempt_number,
                "error": str(exc),
                "sleep": state.next_action.sleep if state.next_action else None,
            },
        )

    return {
        "stop": stop_after_attempt(settings.retry_attempts),
        "wait": wait_exponential(
            multiplier=settings.retry_initial_wait, max=settings.retry_max_wait
        ),
        "retry": retry_if_exception_type(transient),
        "before_sleep": log_retry,
        "reraise": True,
    }
