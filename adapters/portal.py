"""Portal intake over HTTP: ``POST /v1/submissions`` takes an XÖV message as it is.

The answer ``202`` is sent only after JetStream stored the raw bytes. Errors are RFC 9457
``application/problem+json`` documents. ``PortalAdapter`` is the inbound adapter that serves
this application with uvicorn on its own socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from poststelle.adapters.base import AdapterContext, AdapterSettings, Publish

__all__ = ["PortalAdapter", "PortalSettings", "create_portal_app", "problem"]

CHANNEL = "portal"
XML_MEDIA_TYPES = {"application/xml", "text/xml"}
HealthReport = Callable[[], Awaitable[dict[str, Any]]]


async def _no_hub_health() -> dict[str, Any]:
    return {"status": "ok"}


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


def create_portal_app(
    publish: Publish,
    *,
    max_body_bytes: int,
    health: HealthReport = _no_hub_health,
    adapter_name: str = "http",
) -> FastAPI:
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
            raw = await _read_limited(request, max_body_bytes)
        except _BodyTooLarge:
            return problem(
                413,
                "Submission too large",
                f"the body exceeds the limit of {max_body_bytes} bytes",
                limit=max_body_bytes,
            )
        if not raw.strip():
            return problem(400, "Empty submission", "the body is empty")
        try:
            accepted = await publish(
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
        report = await health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app


class PortalSettings(AdapterSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=40 * 1024 * 1024, gt=0)


class PortalAdapter:
    """The HTTP intake as an inbound adapter: it owns its socket and its uvicorn server."""

    kind: ClassVar[Literal["inbound"]] = "inbound"
    settings_model: ClassVar[type[AdapterSettings]] = PortalSettings

    def __init__(self, *, name: str, settings: PortalSettings, context: AdapterContext) -> None:
        if context.publish is None:
            raise ValueError("the portal adapter needs a publish callable")
        self.name = name
        self.settings = settings
        self.app = create_portal_app(
            context.publish,
            max_body_bytes=settings.max_body_bytes,
            health=context.extras.get("health", _no_hub_health),
            adapter_name=name,
        )
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("portal not started")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        if self._task is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        self._socket = sock
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self.name)
        # uvicorn exposes readiness only as a flag.
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the start-up error
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if self._server is not None:
            self._server.should_exit = True
        if task is not None:
            await asyncio.wait({task}, timeout=5.0)
            if not task.done():
                task.cancel()
        if self._socket is not None:
            self._socket.close()

    def health(self) -> dict[str, object]:
        running = self._task is not None and not self._task.done()
        return {"ok": running, "url": self.url if self._socket else None}
