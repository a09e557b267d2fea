"""Portal intake over HTTP: ``POST /v1/submissions`` takes an XÖV message as it is.

The answer ``202`` is sent only after JetStream stored the raw bytes. Errors are RFC 9457
``application/problem+json`` documents.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from poststelle.routing.intake import Accepted

__all__ = ["PortalServices", "create_portal_app", "problem"]

CHANNEL = "portal"
XML_MEDIA_TYPES = {"application/xml", "text/xml"}


class PortalServices(Protocol):
    """What the intake needs from the hub."""

    @property
    def max_body_bytes(self) -> int: ...

    async def accept(
        self,
        raw: bytes,
        *,
        channel: str,
        adapter: str,
        source_message_id: str | None = None,
        content_type: str = "application/xml",
        extra_headers: dict[str, str] | None = None,
    ) -> Accepted: ...

    async def health(self) -> dict[str, Any]: ...


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class _BodyTooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_portal_app(services: PortalServices, *, adapter_name: str = "http") -> FastAPI:
    app = FastAPI(
        title="Poststelle intake",
        version="1",
        description="Submit XÖV messages and online applications to the Poststelle hub.",
    )

    @app.post(
        "/v1/submissions",
        status_code=202,
        summary="Submit one XÖV message (raw XML body)",
        responses={
            413: {"description": "Body over the size limit"},
            415: {"description": "Not an XML media type"},
            503: {"description": "The hub could not store the message"},
        },
    )
    async def submit(request: Request) -> JSONResponse:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in XML_MEDIA_TYPES:
            return problem(
                415,
                "Unsupported media type",
                f"send the XÖV message as application/xml, not {media_type or 'nothing'}",
            )
        try:
            raw = await _read_limited(request, services.max_body_bytes)
        except _BodyTooLarge:
            return problem(
                413,
                "Submission too large",
                f"the body exceeds the limit of {services.max_body_bytes} bytes",
                limit=services.max_body_bytes,
            )
        if not raw.strip():
            return problem(400, "Empty submission", "the body is empty")
        try:
            accepted = await services.accept(
                raw,
                channel=CHANNEL,
                adapter=adapter_name,
                content_type=media_type,
                source_message_id=request.headers.get("idempotency-key"),
            )
        except Exception as exc:  # nothing was stored: the sender must try again
            return problem(503, "Hub unavailable", f"the message was not stored: {exc!r}")
        return JSONResponse(
            {
                "case_id": accepted.case_id,
                "message_id": accepted.message_id,
                "duplicate": accepted.duplicate,
            },
            status_code=202,
        )

    @app.get("/healthz", summary="NATS connectivity and consumer state")
    async def healthz() -> JSONResponse:
        report = await services.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app
