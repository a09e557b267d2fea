"""A small FIT-Connect Zustelldienst: the Submission API and an OAuth 2 token endpoint over real
HTTP (FastAPI under uvicorn, in a thread), with destinations, an event log and fault injection.

Served paths, as the Submission API has them:

- ``POST /token``                                      client credentials -> bearer token
- ``GET  /v1/info``, ``GET /.well-known/jwks.json``    version; the service's signing key
- ``GET  /v1/destinations/{id}``, ``.../keys/{kid}``   public destination info and its keys
- ``POST /v1/submissions``                             announce (sender)
- ``PUT  /v1/submissions/{id}/attachments/{aid}``      upload one JWE attachment (sender)
- ``PUT  /v1/submissions/{id}``                        submit metadata and data (sender)
- ``GET  /v1/submissions?destinationId=``              waiting submissions (subscriber)
- ``GET  /v1/submissions/{id}``, ``.../attachments/{aid}``  fetch (subscriber)
- ``GET|POST /v1/cases/{caseId}/events``               the case's event log (SETs)

The reply resources (Rückkanal FIT-Connect: the destination answers in the case):

- ``POST /v1/replies``                                 announce a reply in a case (subscriber)
- ``PUT  /v1/replies/{id}/attachments/{aid}``          upload one JWE attachment (subscriber)
- ``PUT  /v1/replies/{id}``                            submit metadata and data (subscriber)
- ``GET  /v1/replies[?caseId=]``                       replies waiting for the sender
- ``GET  /v1/replies/{id}``, ``.../attachments/{aid}``  fetch (sender)
- ``GET  /v1/replies/{id}/events``                     the SETs about one reply

On submit the simulator writes ``submit-submission`` (signed with its own key, naming the
authentication tags it took); a destination's ``accept-submission`` or ``reject-submission`` is
verified against the destination's published signature key and ends the submission's wait.
A reply is the same in the other direction: ``submit-reply`` on submit, and the sender's
``accept-reply`` or ``reject-reply`` (verified with the signature key registered for that
sender client) ends its wait; all of them go into the case's event log.

Admin API: ``GET /admin/submissions`` and ``GET /admin/replies`` (state and events),
``POST /admin/faults`` (a
:class:`FaultRule` as JSON), ``DELETE /admin/faults``. Use it from Python
(``with FitConnectSimulator() as sim: ...``) or as ``poststelle fitconnect-sim``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from poststelle.adapters._simulator import ThreadedServer
from poststelle.adapters.fitconnect._crypto import (
    CryptoError,
    KeyPair,
    generate_key,
    load_key,
)
from poststelle.adapters.fitconnect._set import (
    ACCEPT_REPLY,
    ACCEPT_SUBMISSION,
    REJECT_REPLY,
    REJECT_SUBMISSION,
    SUBMIT_REPLY,
    SUBMIT_SUBMISSION,
    AuthenticationTags,
    SecurityEvent,
    read_event,
    security_event,
)

__all__ = ["OPERATIONS", "FaultRule", "FitConnectSimulator", "SimulatedDestination"]

logger = logging.getLogger(__name__)

OPERATIONS = (
    "token",
    "info",
    "destination",
    "destination-key",
    "announce",
    "upload-attachment",
    "submit",
    "list",
    "submission",
    "attachment",
    "events",
    "post-event",
    "announce-reply",
    "upload-reply-attachment",
    "submit-reply",
    "list-replies",
    "reply",
    "reply-attachment",
    "reply-events",
)
# What a tamper fault can change: the JWEs a receiving side fetches.
_TAMPERABLE = ("submission", "attachment", "reply", "reply-attachment")
SERVICE_ISSUER = "https://fit-connect-simulator.poststelle.invalid"
_TOKEN_LIFETIME = 1800
_MAX_BODY = 60 * 1024 * 1024
_PROBLEMS = "https://schema.fitko.de/fit-connect/submission-api/problems/"


@dataclass
class FaultRule:
    """A fault for the next ``times`` calls of ``operation`` (``*`` = any operation).

    - ``status``: answer ``status`` (e.g. 503, 429, 500) without handling the call.
    - ``delay``: wait ``delay`` seconds, then handle the call.
    - ``expire-token``: answer ``401`` as for a token that expired early (the client must
      fetch a new one and try again).
    - ``tamper``: on ``submission``, ``attachment``, ``reply`` or ``reply-attachment``,
      serve the JWE with one byte of its ciphertext changed (in transit or at rest): the
      receiver's decryption must fail.
    """

    kind: Literal["status", "delay", "expire-token", "tamper"]
    operation: str = "*"
    times: int = 1
    status: int = 503
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("status", "delay", "expire-token", "tamper"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.operation != "*" and self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {self.operation!r}")
        if self.kind == "tamper" and self.operation not in _TAMPERABLE:
            raise ValueError(f"a tamper fault applies to one of {', '.join(_TAMPERABLE)}")
        if self.times < 1 or self.delay < 0 or not 400 <= self.status <= 599:
            raise ValueError("times must be positive, delay non-negative, status 4xx or 5xx")


@dataclass
class SimulatedDestination:
    destination_id: str
    encryption_key: dict[str, Any]
    signature_key: dict[str, Any]
    services: list[dict[str, Any]]
    status: str = "active"

    @property
    def encryption_kid(self) -> str:
        return str(self.encryption_key["kid"])

    def public(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "status": self.status,
            "services": self.services,
            "encryptionKid": self.encryption_kid,
            "metadataVersions": ["1.0.0"],
        }


@dataclass(kw_only=True)
class _Transfer:
    """What a submission and a reply have alike: announced attachments, uploaded JWEs, the
    encrypted metadata and data, and the state they go through. ``what`` names it in
    problems (``submission-state-invalid``, ``reply-not-found``)."""

    what: ClassVar[str]
    case_id: str
    destination_id: str
    announced: list[str]
    attachments: dict[str, str] = field(default_factory=dict)
    encrypted_metadata: str | None = None
    encrypted_data: str | None = None
    state: Literal["announced", "submitted", "accepted", "rejected"] = "announced"

    def listed(self) -> dict[str, Any]:
        raise NotImplementedError

    def upload(self, attachment_id: str, body: bytes) -> str:
        """The checks for an upload; the JWE as stored (``_upload`` stores it under the lock)."""
        if attachment_id not in self.announced:
            raise _Refusal(404, "attachment-not-found", "attachment was not announced")
        if self.state != "announced":
            raise _Refusal(409, f"{self.what}-state-invalid", "already submitted")
        if len(body) > _MAX_BODY:
            raise _Refusal(413, "payload-too-large", "attachment too large")
        return body.decode("ascii", "replace")

    def tags_for(self, body: Any) -> AuthenticationTags:
        """The checks for a submit; the tags the Zustelldienst signs for what it took."""
        if self.state != "announced":
            raise _Refusal(409, f"{self.what}-state-invalid", "already submitted")
        if not isinstance(body, dict) or not isinstance(body.get("encryptedMetadata"), str):
            raise _Refusal(400, "request-invalid", "encryptedMetadata is required")
        missing = [a for a in self.announced if a not in self.attachments]
        if missing:
            raise _Refusal(422, "missing-attachments", f"not uploaded: {', '.join(missing)}")
        try:
            return AuthenticationTags.of(
                body["encryptedMetadata"],
                body["encryptedData"] if body.get("encryptedData") else None,
                self.attachments,
            )
        except CryptoError as exc:
            raise _Refusal(400, "request-invalid", str(exc)) from exc

    def take(self, body: dict[str, Any]) -> None:
        self.encrypted_metadata = body["encryptedMetadata"]
        self.encrypted_data = body.get("encryptedData")
        self.state = "submitted"

    def conclude(self, *, accepted: bool) -> None:
        """The receiving side's accept or reject ends the wait (under the simulator's lock)."""
        if self.state != "submitted":
            raise _Refusal(409, f"{self.what}-state-invalid", f"already {self.state}")
        self.state = "accepted" if accepted else "rejected"

    def served(self, rule: FaultRule | None) -> dict[str, Any]:
        """The fetched resource; a tamper fault changes its data in transit."""
        if self.state == "announced":
            raise _Refusal(404, f"{self.what}-not-found", "not submitted yet")
        data = self.encrypted_data
        if rule is not None and rule.kind == "tamper" and data:
            data = _tampered(data)
        body = {
            **self.listed(),
            "encryptedMetadata": self.encrypted_metadata,
            "attachments": list(self.announced),
        }
        if data is not None:
            body["encryptedData"] = data
        return body

    def served_attachment(self, attachment_id: str, rule: FaultRule | None) -> Response:
        token = self.attachments.get(attachment_id)
        if token is None:
            raise _Refusal(404, "attachment-not-found", f"no attachment {attachment_id}")
        if rule is not None and rule.kind == "tamper":
            token = _tampered(token)
        return Response(token, media_type="application/jose")


def _page(key: str, waiting: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    page = waiting[offset : offset + max(0, min(limit, 500))]
    return {"count": len(page), "offset": offset, "totalCount": len(waiting), key: page}


@dataclass(kw_only=True)
class _Submission(_Transfer):
    what: ClassVar[str] = "submission"
    submission_id: str
    service_type: dict[str, Any]

    def listed(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "submissionId": self.submission_id,
            "caseId": self.case_id,
            "serviceType": self.service_type,
        }


@dataclass(kw_only=True)
class _Reply(_Transfer):
    """``destination_id`` is the destination that answers."""

    what: ClassVar[str] = "reply"
    reply_id: str

    def listed(self) -> dict[str, Any]:
        return {
            "replyId": self.reply_id,
            "caseId": self.case_id,
            "destinationId": self.destination_id,
        }


@dataclass
class _ApiClient:
    client_id: str
    secret: str
    role: Literal["sender", "subscriber"]
    destinations: frozenset[str] = frozenset()
    # A sender's public signature key: its accept-reply and reject-reply verify with it.
    signature_key: dict[str, Any] | None = None


class _Refusal(Exception):
    def __init__(self, status: int, problem: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.problem, self.detail = status, problem, detail

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"type": _PROBLEMS + self.problem, "title": self.problem, "detail": self.detail},
            status_code=self.status,
            media_type="application/problem+json",
        )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def _tampered(token: str) -> str:
    parts = token.split(".")
    ciphertext = parts[3]
    middle = len(ciphertext) // 2
    flipped = "B" if ciphertext[middle] == "A" else "A"
    parts[3] = ciphertext[:middle] + flipped + ciphertext[middle + 1 :]
    return ".".join(parts)


class FitConnectSimulator(ThreadedServer):
    """The Zustelldienst. ``start()`` binds (port 0 picks a free port) and returns its URL."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, signing_key: KeyPair | None = None
    ) -> None:
        self._host, self._port = host, port
        # Its own key signs submit-submission; generating a 4096-bit key takes a second.
        self.signing_key = signing_key or generate_key(f"zustelldienst-{uuid.uuid4()}", use="sig")
        self._lock = threading.Lock()
        self._destinations: dict[str, SimulatedDestination] = {}
        self._clients: dict[str, _ApiClient] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._submissions: dict[str, _Submission] = {}
        self._replies: dict[str, _Reply] = {}
        # The sender client that opened each case: the one its replies are for.
        self._case_senders: dict[str, str] = {}
        self._events: dict[str, list[str]] = {}
        self._reply_events: dict[str, list[str]] = {}
        self._faults: list[FaultRule] = []
        self._calls: list[str] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None
        self.app = self._build_app()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("simulator already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._bound = sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, http="h11"
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="fitconnect-simulator",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the FIT-Connect simulator did not start")
            time.sleep(0.01)
        logger.info("fit-connect simulator listening url=%s", self.url, extra={"url": self.url})
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        if self._bound is None:
            raise RuntimeError("simulator not running")
        return f"http://{self._bound[0]}:{self._bound[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    # -- Python API -----------------------------------------------------------------------------

    def add_destination(
        self,
        encryption_key: dict[str, Any],
        signature_key: dict[str, Any],
        *,
        services: list[dict[str, Any]] | None = None,
        destination_id: str | None = None,
    ) -> SimulatedDestination:
        """Register a destination with its *public* keys (the destination keeps the private
        ones); both must be RSA with 4096 bits, as the specification asks."""
        load_key(encryption_key, private=False, purpose="encryption")
        load_key(signature_key, private=False, purpose="signature")
        destination = SimulatedDestination(
            destination_id=destination_id or str(uuid.uuid4()),
            encryption_key={**encryption_key, "key_ops": ["wrapKey"]},
            signature_key={**signature_key, "key_ops": ["verify"]},
            services=services
            or [{"identifier": "urn:de:fim:leika:leistung:99010003001006", "regions": []}],
        )
        with self._lock:
            self._destinations[destination.destination_id] = destination
        return destination

    def add_client(
        self,
        role: Literal["sender", "subscriber"],
        destinations: tuple[str, ...] = (),
        *,
        signature_key: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """A new API client; returns (client_id, client_secret). A sender that accepts or
        rejects replies registers the public key its SETs verify with."""
        if signature_key is not None:
            load_key(signature_key, private=False, purpose="sender signature")
        client = _ApiClient(
            str(uuid.uuid4()),
            # Hex, not URL-safe base64: a secret that starts with "-" is read as an option
            # when it is passed on a command line (fitconnect-sim send --client-secret ...).
            secrets.token_hex(24),
            role,
            frozenset(destinations),
            signature_key,
        )
        with self._lock:
            self._clients[client.client_id] = client
        return client.client_id, client.secret

    def inject(self, rule: FaultRule) -> None:
        with self._lock:
            self._faults.append(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _states(self, transfers: Mapping[str, _Transfer]) -> list[dict[str, Any]]:
        with self._lock:
            return [{**t.listed(), "state": t.state} for t in transfers.values()]

    def submissions(self) -> list[dict[str, Any]]:
        """Every submission with its state (announced, submitted, accepted, rejected)."""
        return self._states(self._submissions)

    def state_of(self, submission_id: str) -> str:
        with self._lock:
            return self._submissions[submission_id].state

    def replies(self) -> list[dict[str, Any]]:
        """Every reply with its state (announced, submitted, accepted, rejected)."""
        return self._states(self._replies)

    def reply_state(self, reply_id: str) -> str:
        with self._lock:
            return self._replies[reply_id].state

    def event_log(self, case_id: str) -> list[str]:
        with self._lock:
            return list(self._events.get(case_id, []))

    def calls(self, operation: str) -> int:
        with self._lock:
            return self._calls.count(operation)

    def replace_attachment(self, submission_id: str, attachment_id: str, token: str) -> None:
        """Change a stored JWE as a broken or malicious store would (for tests)."""
        with self._lock:
            self._submissions[submission_id].attachments[attachment_id] = token

    def replace_data(self, submission_id: str, token: str) -> None:
        with self._lock:
            self._submissions[submission_id].encrypted_data = token

    # -- request handling ----------------------------------------------------------------------

    def _take_fault(self, operation: str) -> FaultRule | None:
        with self._lock:
            self._calls.append(operation)
            for rule in self._faults:
                if rule.operation in ("*", operation):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._faults.remove(rule)
                    return rule
        return None

    async def _gate(self, operation: str) -> FaultRule | None:
        rule = self._take_fault(operation)
        if rule is None:
            return None
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay)
        elif rule.kind == "status":
            raise _Refusal(rule.status, "injected-fault", f"injected HTTP {rule.status}")
        elif rule.kind == "expire-token":
            raise _Refusal(401, "unauthorized", "the access token expired")
        return rule

    def _client_of(self, request: Request, role: str) -> _ApiClient:
        token = _bearer(request)
        with self._lock:
            entry = self._tokens.get(token)
            client = self._clients.get(entry[0]) if entry else None
        if entry is None or client is None or entry[1] < time.monotonic():
            raise _Refusal(401, "unauthorized", "missing, unknown or expired access token")
        if client.role != role:
            raise _Refusal(403, "forbidden", f"a {client.role} client may not do this")
        return client

    def _submission_for(self, client: _ApiClient, submission_id: str) -> _Submission:
        with self._lock:
            submission = self._submissions.get(submission_id)
        if submission is None:
            raise _Refusal(404, "submission-not-found", f"no submission {submission_id}")
        if client.role == "subscriber" and submission.destination_id not in client.destinations:
            raise _Refusal(403, "forbidden", "not a submission of this client's destinations")
        return submission

    def _destination(self, destination_id: str) -> SimulatedDestination:
        with self._lock:
            destination = self._destinations.get(destination_id)
        if destination is None:
            raise _Refusal(404, "destination-not-found", f"no destination {destination_id}")
        return destination

    def _log_event(self, case_id: str, token: str, *, reply_id: str | None = None) -> None:
        with self._lock:
            self._events.setdefault(case_id, []).append(token)
            if reply_id is not None:
                self._reply_events.setdefault(reply_id, []).append(token)

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise _Refusal(400, "unsupported_grant_type", "only client_credentials")
        with self._lock:
            client = self._clients.get(form.get("client_id", ""))
            if client is None or not secrets.compare_digest(
                client.secret, form.get("client_secret", "")
            ):
                raise _Refusal(401, "invalid_client", "unknown client or wrong secret")
            token = secrets.token_urlsafe(32)
            self._tokens[token] = (client.client_id, time.monotonic() + _TOKEN_LIFETIME)
        scope = " ".join(f"receive:destination:{d}" for d in sorted(client.destinations))
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": _TOKEN_LIFETIME,
            "scope": scope or "send:region:DE",
        }

    def _upload(self, transfer: _Transfer, attachment_id: str, body: bytes) -> None:
        """Take one attachment's JWE for a submission or a reply, checked, then stored."""
        token = transfer.upload(attachment_id, body)
        with self._lock:
            transfer.attachments[attachment_id] = token

    def _submit(self, transfer: _Transfer, body: Any) -> None:
        """Take a submit and write the Zustelldienst's signed ``submit-submission`` (or
        ``submit-reply``, also kept with the reply's own events) naming what it took."""
        tags = transfer.tags_for(body)
        with self._lock:
            transfer.take(body)
        reply_id = transfer.reply_id if isinstance(transfer, _Reply) else None
        submission_id = transfer.submission_id if isinstance(transfer, _Submission) else None
        self._log_event(
            transfer.case_id,
            security_event(
                SUBMIT_REPLY if reply_id is not None else SUBMIT_SUBMISSION,
                issuer=SERVICE_ISSUER,
                submission_id=submission_id,
                reply_id=reply_id,
                case_id=transfer.case_id,
                key=self.signing_key.key,
                tags=tags,
            ),
            reply_id=reply_id,
        )

    def _destination_event(self, client: _ApiClient, case_id: str, token: str) -> SecurityEvent:
        keys: dict[str, Any] = {}
        with self._lock:
            for destination_id in client.destinations:
                destination = self._destinations.get(destination_id)
                if destination is not None:
                    keys[str(destination.signature_key["kid"])] = load_key(
                        destination.signature_key, private=False, purpose="signature"
                    )
        try:
            event = read_event(token, keys)
        except CryptoError as exc:
            raise _Refusal(422, "event-invalid", str(exc)) from exc
        if event.event not in (ACCEPT_SUBMISSION, REJECT_SUBMISSION):
            raise _Refusal(422, "event-invalid", f"a destination may not send {event.event}")
        submission = self._submission_for(client, event.submission_id)
        if event.case_id != case_id or submission.case_id != case_id:
            raise _Refusal(422, "event-invalid", "txn names another case")
        if event.issuer != submission.destination_id:
            raise _Refusal(422, "event-invalid", "iss must be the destination id")
        with self._lock:
            submission.conclude(accepted=event.event == ACCEPT_SUBMISSION)
        return event

    # -- replies -------------------------------------------------------------------------------

    def _case_destination(self, client: _ApiClient, case_id: str) -> str:
        """The destination of ``client`` the case was submitted to: the one that may answer."""
        with self._lock:
            destinations = {
                s.destination_id for s in self._submissions.values() if s.case_id == case_id
            }
        if not destinations:
            raise _Refusal(404, "case-not-found", f"no case {case_id}")
        mine = sorted(destinations & client.destinations)
        if not mine:
            raise _Refusal(403, "forbidden", "not a case of this client's destinations")
        return mine[0]

    def _reply_for(self, client: _ApiClient, reply_id: str) -> _Reply:
        with self._lock:
            reply = self._replies.get(reply_id)
            sender = self._case_senders.get(reply.case_id) if reply else None
        if reply is None:
            raise _Refusal(404, "reply-not-found", f"no reply {reply_id}")
        allowed = (
            reply.destination_id in client.destinations
            if client.role == "subscriber"
            else sender == client.client_id
        )
        if not allowed:
            raise _Refusal(403, "forbidden", "not a reply of this client's cases")
        return reply

    def _sender_event(self, client: _ApiClient, case_id: str, token: str) -> SecurityEvent:
        """A sender's accept-reply or reject-reply, verified with its registered key."""
        if client.signature_key is None:
            raise _Refusal(422, "event-invalid", "this sender registered no signature key")
        key = load_key(client.signature_key, private=False, purpose="sender signature")
        try:
            event = read_event(token, {str(client.signature_key["kid"]): key})
        except CryptoError as exc:
            raise _Refusal(422, "event-invalid", str(exc)) from exc
        if event.event not in (ACCEPT_REPLY, REJECT_REPLY):
            raise _Refusal(422, "event-invalid", f"a sender may not send {event.event}")
        reply = self._reply_for(client, event.reply_id)
        if event.case_id != case_id or reply.case_id != case_id:
            raise _Refusal(422, "event-invalid", "txn names another case")
        with self._lock:
            reply.conclude(accepted=event.event == ACCEPT_REPLY)
        return event

    def _any_client(self, request: Request) -> _ApiClient:
        token = _bearer(request)
        with self._lock:
            entry = self._tokens.get(token)
            role = self._clients[entry[0]].role if entry and entry[0] in self._clients else None
        if role is None:
            raise _Refusal(401, "unauthorized", "missing, unknown or expired access token")
        return self._client_of(request, role)

    # -- the app -------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="FIT-Connect Submission API simulator", openapi_url=None)
        sim = self

        @app.exception_handler(_Refusal)
        async def refused(request: Request, exc: _Refusal) -> Response:
            return exc.response()

        @app.post("/token")
        async def token(request: Request) -> dict[str, Any]:
            await sim._gate("token")
            form = await request.form()
            return sim._token({k: str(v) for k, v in form.items()})

        @app.get("/v1/info")
        async def info() -> dict[str, Any]:
            await sim._gate("info")
            return {"version": "1.0.0", "simulator": True}

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return {"keys": [sim.signing_key.public]}

        @app.get("/v1/destinations/{destination_id}")
        async def destination(request: Request, destination_id: str) -> dict[str, Any]:
            await sim._gate("destination")
            return sim._destination(destination_id).public()

        @app.get("/v1/destinations/{destination_id}/keys/{kid}")
        async def destination_key(destination_id: str, kid: str) -> dict[str, Any]:
            await sim._gate("destination-key")
            found = sim._destination(destination_id)
            for key in (found.encryption_key, found.signature_key):
                if key["kid"] == kid:
                    return key
            raise _Refusal(404, "key-not-found", f"no key {kid}")

        @app.post("/v1/submissions", status_code=201)
        async def announce(request: Request) -> dict[str, Any]:
            await sim._gate("announce")
            opener = sim._client_of(request, "sender").client_id
            body = await request.json()
            if not isinstance(body, dict):
                raise _Refusal(400, "request-invalid", "a JSON object is expected")
            target = sim._destination(str(body.get("destinationId")))
            if target.status != "active":
                raise _Refusal(422, "destination-state-invalid", "destination not active")
            announced = [str(a) for a in body.get("announcedAttachments") or []]
            submission = _Submission(
                submission_id=str(uuid.uuid4()),
                destination_id=target.destination_id,
                case_id=str(body.get("caseId") or uuid.uuid4()),
                service_type=dict(body.get("serviceType") or {}),
                announced=announced,
            )
            with sim._lock:
                sim._submissions[submission.submission_id] = submission
                sim._case_senders.setdefault(submission.case_id, opener)
            return {
                "destinationId": submission.destination_id,
                "submissionId": submission.submission_id,
                "caseId": submission.case_id,
            }

        @app.put("/v1/submissions/{submission_id}/attachments/{attachment_id}", status_code=204)
        async def upload(request: Request, submission_id: str, attachment_id: str) -> Response:
            await sim._gate("upload-attachment")
            client = sim._client_of(request, "sender")
            submission = sim._submission_for(client, submission_id)
            sim._upload(submission, attachment_id, await request.body())
            return Response(status_code=204)

        @app.put("/v1/submissions/{submission_id}", status_code=202)
        async def submit(request: Request, submission_id: str) -> dict[str, Any]:
            await sim._gate("submit")
            client = sim._client_of(request, "sender")
            submission = sim._submission_for(client, submission_id)
            sim._submit(submission, await request.json())
            return submission.listed()

        @app.get("/v1/submissions")
        async def listing(
            request: Request, destinationId: str, offset: int = 0, limit: int = 100
        ) -> dict[str, Any]:
            await sim._gate("list")
            client = sim._client_of(request, "subscriber")
            if destinationId not in client.destinations:
                raise _Refusal(403, "forbidden", "not this client's destination")
            with sim._lock:
                waiting = [
                    s.listed()
                    for s in sim._submissions.values()
                    if s.destination_id == destinationId and s.state == "submitted"
                ]
            return _page("submissions", waiting, offset, limit)

        @app.get("/v1/submissions/{submission_id}")
        async def fetch(request: Request, submission_id: str) -> dict[str, Any]:
            rule = await sim._gate("submission")
            client = sim._client_of(request, "subscriber")
            return sim._submission_for(client, submission_id).served(rule)

        @app.get("/v1/submissions/{submission_id}/attachments/{attachment_id}")
        async def attachment(request: Request, submission_id: str, attachment_id: str) -> Response:
            rule = await sim._gate("attachment")
            client = sim._client_of(request, "subscriber")
            submission = sim._submission_for(client, submission_id)
            return submission.served_attachment(attachment_id, rule)

        @app.get("/v1/cases/{case_id}/events")
        async def events(request: Request, case_id: str) -> dict[str, Any]:
            await sim._gate("events")
            header = request.headers.get("authorization", "")
            with sim._lock:
                known = header.removeprefix("Bearer ").strip() in sim._tokens
            if not known:
                raise _Refusal(401, "unauthorized", "missing or unknown access token")
            return {"eventLog": sim.event_log(case_id)}

        @app.post("/v1/cases/{case_id}/events", status_code=204)
        async def post_event(request: Request, case_id: str) -> Response:
            await sim._gate("post-event")
            client = sim._any_client(request)
            token = (await request.body()).decode("ascii", "replace").strip()
            if client.role == "subscriber":
                sim._destination_event(client, case_id, token)
                sim._log_event(case_id, token)
            else:
                event = sim._sender_event(client, case_id, token)
                sim._log_event(case_id, token, reply_id=event.reply_id)
            return Response(status_code=204)

        @app.post("/v1/replies", status_code=201)
        async def announce_reply(request: Request) -> dict[str, Any]:
            await sim._gate("announce-reply")
            client = sim._client_of(request, "subscriber")
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("caseId"), str):
                raise _Refusal(400, "request-invalid", "caseId is required")
            reply = _Reply(
                reply_id=str(uuid.uuid4()),
                case_id=body["caseId"],
                destination_id=sim._case_destination(client, body["caseId"]),
                announced=[str(a) for a in body.get("announcedAttachments") or []],
            )
            with sim._lock:
                sim._replies[reply.reply_id] = reply
            return {"replyId": reply.reply_id, "caseId": reply.case_id}

        @app.put("/v1/replies/{reply_id}/attachments/{attachment_id}", status_code=204)
        async def upload_reply(request: Request, reply_id: str, attachment_id: str) -> Response:
            await sim._gate("upload-reply-attachment")
            reply = sim._reply_for(sim._client_of(request, "subscriber"), reply_id)
            sim._upload(reply, attachment_id, await request.body())
            return Response(status_code=204)

        @app.put("/v1/replies/{reply_id}", status_code=202)
        async def submit_reply(request: Request, reply_id: str) -> dict[str, Any]:
            await sim._gate("submit-reply")
            reply = sim._reply_for(sim._client_of(request, "subscriber"), reply_id)
            sim._submit(reply, await request.json())
            return reply.listed()

        @app.get("/v1/replies")
        async def list_replies(
            request: Request, caseId: str | None = None, offset: int = 0, limit: int = 100
        ) -> dict[str, Any]:
            await sim._gate("list-replies")
            client = sim._client_of(request, "sender")
            with sim._lock:
                waiting = [
                    r.listed()
                    for r in sim._replies.values()
                    if r.state == "submitted"
                    and sim._case_senders.get(r.case_id) == client.client_id
                    and caseId in (None, r.case_id)
                ]
            return _page("replies", waiting, offset, limit)

        @app.get("/v1/replies/{reply_id}")
        async def fetch_reply(request: Request, reply_id: str) -> dict[str, Any]:
            rule = await sim._gate("reply")
            return sim._reply_for(sim._client_of(request, "sender"), reply_id).served(rule)

        @app.get("/v1/replies/{reply_id}/attachments/{attachment_id}")
        async def reply_attachment(request: Request, reply_id: str, attachment_id: str) -> Response:
            rule = await sim._gate("reply-attachment")
            reply = sim._reply_for(sim._client_of(request, "sender"), reply_id)
            return reply.served_attachment(attachment_id, rule)

        @app.get("/v1/replies/{reply_id}/events")
        async def reply_events(request: Request, reply_id: str) -> dict[str, Any]:
            await sim._gate("reply-events")
            sim._reply_for(sim._any_client(request), reply_id)
            with sim._lock:
                return {"eventLog": list(sim._reply_events.get(reply_id, []))}

        @app.get("/admin/submissions")
        async def admin_submissions() -> list[dict[str, Any]]:
            return [{**s, "events": len(sim.event_log(s["caseId"]))} for s in sim.submissions()]

        @app.get("/admin/replies")
        async def admin_replies() -> list[dict[str, Any]]:
            with sim._lock:
                counts = {k: len(v) for k, v in sim._reply_events.items()}
            return [{**r, "events": counts.get(r["replyId"], 0)} for r in sim.replies()]

        @app.post("/admin/faults", status_code=201)
        async def add_fault(request: Request) -> dict[str, Any]:
            try:
                rule = FaultRule(**(await request.json()))
            except (TypeError, ValueError) as exc:
                raise _Refusal(400, "request-invalid", str(exc)) from exc
            sim.inject(rule)
            return asdict(rule)

        @app.delete("/admin/faults")
        async def clear() -> dict[str, str]:
            sim.clear_faults()
            return {"faults": "cleared"}

        return app
