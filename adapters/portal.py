"""Portal intake over HTTP: ``POST /v1/submissions`` takes an XÖV message as it is,
``POST /antrag`` an OZG-Cloud multipart application (see ``_ozg``).

The answer ``202`` is sent only after JetStream stored the raw bytes. Errors are RFC 9457
``application/problem+json`` documents. With API keys configured every route but
``/healthz`` and the documentation wants one in ``X-API-Key``: portals submit and read their
own cases, back ends reply to theirs (``_apikey``, ``_access``). ``PortalAdapter`` is the
inbound adapter that serves this application with uvicorn on its own socket.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import context as trace_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, Field, HttpUrl, SecretStr, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

from poststelle.adapters._access import (
    check_may_read,
    portal_headers,
    replying_backend,
    submitting_portal,
)
from poststelle.adapters._apikey import Caller, Credentials, caller_guard
from poststelle.adapters._ozg import (
    ANTRAG_PATH,
    DEFAULT_MAX_ATTACHMENTS,
    StoreAttachment,
    add_ozg_intake,
)
from poststelle.adapters._problem import (
    busy,
    install_problem_handlers,
    not_stored,
    problem,
    problem_response_doc,
)
from poststelle.adapters.base import AdapterContext, AdapterSettings, Publish
from poststelle.adapters.errors import PermanentDeliveryError, RetryableDeliveryError
from poststelle.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from poststelle.contracts.intake import Admission, IntakeBusy
from poststelle.contracts.replies import (
    Answer,
    AnswerInvalidError,
    CannotAnswerError,
    CaseReply,
    ForeignCaseError,
)

__all__ = ["MAX_REPLY_BYTES", "PortalAdapter", "PortalSettings", "create_portal_app", "problem"]

CHANNEL = "portal"
SUBMISSIONS_PATH = "/v1/submissions"
# The routes that take arrivals: admission control answers for them before a body is read.
_INTAKE_PATHS = frozenset({SUBMISSIONS_PATH, ANTRAG_PATH})
XML_MEDIA_TYPES = {"application/xml", "text/xml"}
HealthReport = Callable[[], Awaitable[dict[str, Any]]]
# The Prometheus text and its media type (the hub's ``metrics_exposition``).
MetricsExposition = Callable[[], Awaitable[tuple[bytes, str]]]
AcceptReply = Callable[..., Awaitable[str]]
CaseStatus = Callable[[str], Awaitable[dict[str, Any] | None]]
# Replies carry references to documents, not documents: far below an application's limit.
MAX_REPLY_BYTES = 1024 * 1024
_REPLY_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CaseReply"}}},
}
_GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response_doc("API key missing or not a configured one"),
    403: problem_response_doc("A valid key, but not for this route or this case"),
}


async def _no_hub_health() -> dict[str, Any]:
    return {"status": "ok"}


class _BodyTooLarge(Exception):
    pass


class _AdmissionGate:
    """ASGI middleware in front of the intake routes: asks ``admission`` before the route
    reads a byte of the body and holds an in-flight slot until the answer is sent, so the
    bodies in memory at once are bounded by the in-flight limit. A refusal is ``429`` or
    ``503`` with ``Retry-After`` (``busy``)."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self._app = app
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in _INTAKE_PATHS
        ):
            await self._app(scope, receive, send)
            return
        try:
            self._admission.enter()
        except IntakeBusy as exc:
            await busy(exc)(scope, receive, send)
            return
        try:
            await self._app(scope, receive, send)
        finally:
            self._admission.leave()


_TRACE_CONTEXT = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class _CallerTrace:
    """ASGI middleware: a submission that comes with a W3C ``traceparent`` continues the
    caller's trace (the hub's intake span becomes its child, docs/observability.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {
            name.decode(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in _TRACE_HEADERS
        }
        if "traceparent" not in carrier:
            await self._app(scope, receive, send)
            return
        token = trace_context.attach(_TRACE_CONTEXT.extract(carrier))
        try:
            await self._app(scope, receive, send)
        finally:
            trace_context.detach(token)


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


async def _read_reply(request: Request) -> CaseReply:
    """The reply in the body, read only once the key was checked (FastAPI reads a declared
    body before any dependency runs) and only up to ``MAX_REPLY_BYTES``."""
    raw = await _read_limited(request, MAX_REPLY_BYTES)
    try:
        return CaseReply.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_input=False)
        ]
        raise RequestValidationError(errors) from exc


def _finish_openapi(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put ``models`` (and what they refer to) into the OpenAPI components, for bodies that
    routes read themselves and document by ``openapi_extra``; and document FastAPI's own
    validation answers as what they are here, problem documents."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # also caches it as app.openapi_schema
        _, definitions = models_json_schema(
            [(model, "validation") for model in models],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.get("$defs", {}))
        for item in schema["paths"].values():
            for operation in item.values():
                answers = operation.get("responses", {})
                if "application/json" in answers.get("422", {}).get("content", {}):
                    answers["422"] = problem_response_doc("Invalid request")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_portal_app(
    publish: Publish,
    *,
    max_body_bytes: int,
    health: HealthReport = _no_hub_health,
    accept_reply: AcceptReply | None = None,
    case_status: CaseStatus | None = None,
    adapter_name: str = "http",
    api_keys: Mapping[str, SecretStr] | None = None,
    backend_keys: Mapping[str, SecretStr] | None = None,
    store_attachment: StoreAttachment | None = None,
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
    admission: Admission | None = None,
    metrics: MetricsExposition | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Poststelle intake",
        version="1",
        description="Submit XÖV messages and online applications to the Poststelle hub.",
    )
    install_problem_handlers(app)
    if admission is not None:
        app.add_middleware(_AdmissionGate, admission=admission)
    app.add_middleware(_CallerTrace)
    credentials = Credentials(portals=api_keys or {}, backends=backend_keys or {})
    guarded = _GUARDED_RESPONSES if credentials.configured else {}
    # One Depends object, used as the default of every guarded route's ``caller``.
    as_caller = Depends(caller_guard(credentials))

    async def portal(caller: Caller | None = as_caller) -> str | None:
        return submitting_portal(caller)

    @app.post(
        SUBMISSIONS_PATH,
        status_code=202,
        summary="Submit one XÖV message (raw XML body)",
        responses={
            **guarded,
            400: problem_response_doc("Empty body"),
            413: problem_response_doc("Body over the size limit"),
            415: problem_response_doc("Not an XML media type"),
            429: problem_response_doc("Too many requests in flight; see Retry-After"),
            500: problem_response_doc("The message cannot be stored (not worth retrying)"),
            503: problem_response_doc(
                "The hub is unavailable or behind (backlog) for now; see Retry-After"
            ),
        },
    )
    async def submit(request: Request, portal_name: str | None = Depends(portal)) -> JSONResponse:
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
                extra_headers=portal_headers(portal_name),
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
        portal=portal,
        responses=guarded,
        max_attachments=max_attachments,
    )

    if accept_reply is not None:

        @app.post(
            "/v1/cases/{case_id}/events",
            status_code=202,
            summary="A back end reports status, decision or rejection for a case",
            description=(
                "Answered 202 once the reply is stored; a reply the case's origin cannot be "
                "answered with (e.g. a decision without the Bescheid document for an XTA "
                "case) is refused with 422 and the reason, and one whose answer its "
                "standard's schema refuses (e.g. a character outside xdomea 2.4.0's Latin "
                "set) with 422, the reason and the schema errors (line, path, message)."
            ),
            openapi_extra={"requestBody": _REPLY_BODY},
            responses={
                **guarded,
                404: problem_response_doc("No such case"),
                413: problem_response_doc("Body over the size limit"),
                422: problem_response_doc("Not a valid reply, or one the origin cannot take"),
                503: problem_response_doc("The hub could not store the reply"),
            },
        )
        async def case_event(
            case_id: str, request: Request, caller: Caller | None = as_caller
        ) -> JSONResponse:
            backend = replying_backend(caller)
            try:
                reply = await _read_reply(request)
            except _BodyTooLarge:
                return problem(
                    413,
                    "Reply too large",
                    f"the body exceeds the limit of {MAX_REPLY_BYTES} bytes",
                    limit=MAX_REPLY_BYTES,
                )
            via = f"http:{caller.name}" if caller else "http"
            try:
                key = await accept_reply(
                    case_id, reply, via=via, backend=backend, check_answer=True
                )
            except ForeignCaseError as exc:
                return problem(403, "Forbidden", str(exc))
            except LookupError as exc:
                return problem(404, "Unknown case", str(exc))
            except AnswerInvalidError as exc:
                # The back end learns what to fix: each finding as the validator said it.
                return problem(
                    422,
                    "Answer invalid",
                    str(exc),
                    reason=exc.reason,
                    errors=[e.as_dict() for e in exc.errors],
                )
            except CannotAnswerError as exc:
                return problem(422, "Reply cannot be answered", str(exc))
            except Exception as exc:
                return not_stored(exc, "the reply")
            return JSONResponse({"case_id": case_id, "reply_id": key}, status_code=202)

    if case_status is not None:

        @app.get(
            "/v1/cases/{case_id}",
            summary="A case's state and last reply",
            responses={**guarded, 404: problem_response_doc("No such case")},
        )
        async def case(case_id: str, caller: Caller | None = as_caller) -> JSONResponse:
            record = await case_status(case_id)
            if record is None:
                return problem(404, "Unknown case", f"no case {case_id!r} is registered")
            check_may_read(caller, record)
            keys = (
                "case_id",
                "state",
                "message_type",
                "tenant",
                "backend",
                "delivered_at",
                "last_reply",
            )
            return JSONResponse({key: record.get(key) for key in keys})

    @app.get("/healthz", summary="NATS connectivity and consumer state")
    async def healthz() -> JSONResponse:
        report = await health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    if metrics is not None:
        exposition = metrics

        # Open like /healthz: a scraper holds no API key. The series name consumers (tenant
        # and back end), no message content; keep the port off the public network.
        @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
        async def prometheus_metrics() -> Response:
            body, media_type = await exposition()
            return Response(content=body, media_type=media_type)

    _finish_openapi(app, *([CaseReply] if accept_reply is not None else []))
    return app


class PortalSettings(AdapterSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=40 * 1024 * 1024, gt=0)
    max_attachments: int = Field(
        default=DEFAULT_MAX_ATTACHMENTS,
        ge=1,
        le=1000,
        description="Most file parts per POST /antrag (representation and attachments)",
    )
    callback_url: HttpUrl | None = Field(
        default=None, description="The portal's status endpoint; answers are POSTed there"
    )
    callback_secret: SecretStr | None = Field(default=None, description="HMAC key for callbacks")
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Portal name -> API key (X-API-Key) for intake and its cases' state",
    )
    backend_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="'tenant/backend' -> API key for replies to, and the state of, its cases",
    )
    reuse_port: bool = Field(
        default=False,
        description="Bind with SO_REUSEPORT, so the processes of one hub share the port",
    )
    tls_certfile: Path | None = Field(default=None, description="PEM certificate for HTTPS")
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS")


class PortalAdapter:
    """The HTTP intake as an inbound adapter: it owns its socket and its uvicorn server."""

    kind: ClassVar[Literal["inbound"]] = "inbound"
    settings_model: ClassVar[type[AdapterSettings]] = PortalSettings

    def __init__(self, *, name: str, settings: PortalSettings, context: AdapterContext) -> None:
        publish = context.publisher("portal")
        self.name = name
        self.settings = settings
        self.app = create_portal_app(
            publish,
            max_body_bytes=settings.max_body_bytes,
            health=context.extras.get("health", _no_hub_health),
            accept_reply=context.extras.get("accept_reply"),
            case_status=context.extras.get("case_status"),
            adapter_name=name,
            api_keys=settings.api_keys,
            backend_keys=settings.backend_keys,
            store_attachment=context.extras.get("store_attachment"),
            max_attachments=settings.max_attachments,
            admission=context.extras.get("admission"),
            metrics=context.extras.get("metrics"),
        )
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("portal not started")
        host, port = self._socket.getsockname()[:2]
        scheme = "https" if self.settings.tls_certfile else "http"
        return f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        if self._task is not None:
            return
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
        # (accepted ones inherit it); with proto 0 each answer waited for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.settings.reuse_port:
            # The kernel spreads the connections over every process listening on the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.settings.host, self.settings.port))
        self._socket = sock
        tls: dict[str, Any] = {}
        if self.settings.tls_certfile is not None:
            # uvicorn builds the TLS context from the files (and fails start-up if it cannot).
            tls = {
                "ssl_certfile": str(self.settings.tls_certfile),
                "ssl_keyfile": str(self.settings.tls_keyfile),
            }
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="off", **tls)
        )
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
