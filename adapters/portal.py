"""Portal intake over HTTP: ``POST /v1/submissions`` takes an XÖV message as it is,
``POST /antrag`` an OZG-Cloud multipart application (see ``_ozg``).

The answer ``202`` is sent only after JetStream stored the raw bytes. Errors are RFC 9457
``application/problem+json`` documents. With ``api_keys`` configured both intake routes
want a portal's key in ``X-API-Key``. ``PortalAdapter`` is the inbound adapter that serves
this application with uvicorn on its own socket.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field, HttpUrl, SecretStr

from poststelle.adapters._apikey import api_key_guard, install_api_key_errors
from poststelle.adapters._ozg import StoreAttachment, add_ozg_intake
from poststelle.adapters._problem import not_stored, problem, problem_response_doc
from poststelle.adapters.base import AdapterContext, AdapterSettings, Publish
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from poststelle.contracts.replies import Answer, CaseReply

__all__ = ["PortalAdapter", "PortalSettings", "create_portal_app", "problem"]

CHANNEL = "portal"
XML_MEDIA_TYPES = {"application/xml", "text/xml"}
HealthReport = Callable[[], Awaitable[dict[str, Any]]]
AcceptReply = Callable[..., Awaitable[str]]
CaseStatus = Callable[[str], Awaitable[dict[str, Any] | None]]


async def _no_hub_health() -> dict[str, Any]:
    return {"status": "ok"}


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
    accept_reply: AcceptReply | None = None,
    case_status: CaseStatus | None = None,
    adapter_name: str = "http",
    api_keys: Mapping[str, SecretStr] | None = None,
    store_attachment: StoreAttachment | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Poststelle intake",
        version="1",
        description="Submit XÖV messages and online applications to the Poststelle hub.",
    )
    guarded = [Depends(api_key_guard(api_keys))] if api_keys else []
    install_api_key_errors(app)

    @app.post(
        "/v1/submissions",
        status_code=202,
        summary="Submit one XÖV message (raw XML body)",
        dependencies=guarded,
        responses={
            401: {"description": "API key missing or wrong"},
            413: problem_response_doc("Body over the size limit"),
            415: problem_response_doc("Not an XML media type"),
            500: problem_response_doc("The message cannot be stored (not worth retrying)"),
            503: problem_response_doc("The hub is unavailable for now; see Retry-After"),
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
                # The message's identity dedupes; the portal's key is a fact of the delivery.
                transport_id=request.headers.get("idempotency-key"),
            )
        except Exception as exc:  # nothing was acknowledged: the answer says if a retry helps
            return not_stored(exc, "the message")
        return JSONResponse(
            {
                "case_id": accepted.case_id,
                "message_id": accepted.message_id,
                "duplicate": accepted.duplicate,
            },
            status_code=202,
        )

    add_ozg_intake(
        app,
        publish,
        max_body_bytes=max_body_bytes,
        store_attachment=store_attachment,
        adapter_name=adapter_name,
        dependencies=guarded,
    )

    if accept_reply is not None:

        @app.post(
            "/v1/cases/{case_id}/events",
            status_code=202,
            summary="A back end reports status, decision or rejection for a case",
            responses={404: {"description": "No such case"}},
        )
        async def case_event(case_id: str, reply: CaseReply) -> JSONResponse:
            try:
                key = await accept_reply(case_id, reply, via="http")
            except LookupError as exc:
                return problem(404, "Unknown case", str(exc))
            except Exception as exc:
                return not_stored(exc, "the reply")
            return JSONResponse({"case_id": case_id, "reply_id": key}, status_code=202)

    if case_status is not None:

        @app.get("/v1/cases/{case_id}", summary="A case's state and last reply")
        async def case(case_id: str) -> JSONResponse:
            record = await case_status(case_id)
            if record is None:
                return problem(404, "Unknown case", f"no case {case_id!r} is registered")
            keys = ("case_id", "state", "message_type", "tenant", "backend", "last_reply")
            return JSONResponse({key: record.get(key) for key in keys})

    @app.get("/healthz", summary="NATS connectivity and consumer state")
    async def healthz() -> JSONResponse:
        report = await health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app


class PortalSettings(AdapterSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=40 * 1024 * 1024, gt=0)
    callback_url: HttpUrl | None = Field(
        default=None, description="The portal's status endpoint; answers are POSTed there"
    )
    callback_secret: SecretStr | None = Field(default=None, description="HMAC key for callbacks")
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Portal name -> API key; when set, intake requests need X-API-Key",
    )


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
            accept_reply=context.extras.get("accept_reply"),
            case_status=context.extras.get("case_status"),
            adapter_name=name,
            api_keys=settings.api_keys,
            store_attachment=context.extras.get("store_attachment"),
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

    async def answer(self, answer: Answer) -> dict[str, object]:
        """Tell the portal about the case: POST the status to its callback, if it has one.

        Without a callback the status is still available at ``GET /v1/cases/{case_id}``.
        """
        if self.settings.callback_url is None:
            return {"callback": "none"}
        secret = self.settings.callback_secret
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": answer.content_type,
            "Idempotency-Key": f"{answer.case_id}:{answer.kind}",
            TIMESTAMP_HEADER: timestamp,
        }
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(
                secret.get_secret_value().encode(), timestamp, answer.content
            )
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    str(self.settings.callback_url), content=answer.content, headers=headers
                )
        except httpx.TransportError as exc:
            raise RetryableDeliveryError(f"portal callback: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise RetryableDeliveryError(f"portal callback: HTTP {response.status_code}")
        if not response.is_success:
            raise PermanentDeliveryError(
                f"portal callback: HTTP {response.status_code}: {response.text[:300]}"
            )
        return {"callback": str(self.settings.callback_url), "status": response.status_code}
