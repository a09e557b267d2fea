"""RFC 9457 problem documents, shared by every route of the HTTP intake."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from poststelle.routing.intake import IntakeUnavailable, MessageTooLarge
from poststelle.routing.transient import RETRY_AFTER, is_transient

__all__ = ["PROBLEM_MEDIA_TYPE", "not_stored", "problem", "problem_response_doc"]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def not_stored(exc: Exception, what: str) -> JSONResponse:
    """The answer for a submission the hub did not store.

    Only an error that heals by itself answers ``503`` (with ``Retry-After``): a client
    retries a 503, and retrying what can never succeed helps nobody.
    """
    if isinstance(exc, MessageTooLarge):
        return problem(413, "Submission too large", str(exc), limit=exc.limit)
    if isinstance(exc, IntakeUnavailable) or is_transient(exc):
        return problem(
            503,
            "Hub unavailable",
            f"{what} was not stored, try again later: {exc}",
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    log.error("submission not stored what=%s error=%r", what, exc, exc_info=exc)
    return problem(500, "Not stored", f"{what} was not stored: {exc!r}")


def problem_response_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a status answered with a problem document."""
    return {
        "description": description,
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                }
            }
        },
    }
