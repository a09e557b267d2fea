"""RFC 9457 problem documents, shared by every route of the HTTP intake.

``install_problem_handlers`` makes every error the app can answer one: FastAPI's validation
errors, unknown routes and methods (Starlette's ``HTTPException``), ``ProblemError`` raised
by dependencies, and unexpected exceptions (``500`` without a traceback for the client; the
traceback goes to the log).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poststelle.contracts.intake import IntakeBusy, IntakeUnavailable, MessageTooLarge
from poststelle.contracts.transient import RETRY_AFTER, is_transient

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemError",
    "busy",
    "install_problem_handlers",
    "not_stored",
    "problem",
    "problem_response_doc",
]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_MAX_LISTED_ERRORS = 20


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def busy(exc: IntakeBusy) -> JSONResponse:
    """The answer when the hub refuses for load: ``429`` (too many requests in flight) or
    ``503`` (the hub is behind), both with ``Retry-After``; nothing was stored."""
    title = "Too many requests" if exc.status == 429 else "Hub overloaded"
    return problem(
        exc.status,
        title,
        f"not taken, try again in {exc.retry_after} s: {exc}",
        headers={"Retry-After": str(exc.retry_after)},
        retry_after=exc.retry_after,
    )


def not_stored(exc: Exception, what: str) -> JSONResponse:
    """The answer for a submission the hub did not store.

    Only an error that heals by itself answers ``503`` (with ``Retry-After``): a client
    retries a 503, and retrying what can never succeed helps nobody.
    """
    if isinstance(exc, MessageTooLarge):
        return problem(413, "Submission too large", str(exc), limit=exc.limit)
    if isinstance(exc, IntakeBusy):
        return busy(exc)
    if isinstance(exc, IntakeUnavailable) or is_transient(exc):
        return problem(
            503,
            "Hub unavailable",
            f"{what} was not stored, try again later: {exc}",
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    log.error("submission not stored what=%s error=%r", what, exc, exc_info=exc)
    return problem(500, "Not stored", f"{what} was not stored: {exc!r}")


class ProblemError(Exception):
    """Raised where returning a response is not possible (dependencies); answered as a
    problem document with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


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


def _location(loc: Any) -> str:
    return ".".join(str(part) for part in loc) if isinstance(loc, list | tuple) else str(loc)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # loc, msg and type only: the rejected input is the sender's own and may be large.
    errors = [
        {
            "loc": _location(item.get("loc", ())),
            "msg": item.get("msg", ""),
            "type": item.get("type", ""),
        }
        for item in exc.errors()[:_MAX_LISTED_ERRORS]
    ]
    detail = "; ".join(f"{error['loc']}: {error['msg']}" for error in errors)
    return problem(422, "Invalid request", detail or "the request is not valid", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    title = HTTPStatus(exc.status_code).phrase
    response = problem(exc.status_code, title, str(exc.detail or title))
    # 405 must name the allowed methods; Starlette puts them here.
    response.headers.update(exc.headers or {})
    return response


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem(exc.status, exc.title, exc.detail)


class _UnexpectedErrors:
    """Turns an exception no route handled into a ``500`` problem document.

    A plain ASGI middleware rather than an ``Exception`` handler: Starlette re-raises after
    such a handler, which would log the traceback twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception(
                "request failed method=%s path=%s", scope.get("method"), scope.get("path")
            )
            if started:  # too late for a problem document; the connection is dropped
                raise
            response = problem(500, "Internal Server Error", "the hub could not handle the request")
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_middleware(_UnexpectedErrors)
