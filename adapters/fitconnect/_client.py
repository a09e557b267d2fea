"""An async client of the FIT-Connect Submission API (httpx), for both sides of a submission.

Authentication is OAuth 2 client credentials: the token is fetched once and kept until a
minute before it expires, or until the API answers ``401`` (then it is fetched again, once).
Transport failures, ``429`` and ``5xx`` are retried with exponential backoff (tenacity);
anything else is permanent and raised as :class:`FitConnectPermanentError` with the API's
problem detail.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
)

from poststelle.adapters._retry import retry_policy
from poststelle.adapters.fitconnect._config import FitConnectConnectionSettings

__all__ = [
    "FitConnectClient",
    "FitConnectError",
    "FitConnectPermanentError",
    "FitConnectTransientError",
]

logger = logging.getLogger(__name__)

JOSE = "application/jose"
# Renew a token this long before the server says it expires: a request in flight keeps it.
_TOKEN_MARGIN = 60.0
_PAGE = 100


class FitConnectError(Exception):
    """A Submission API call failed; ``operation`` names it, ``status`` is the HTTP status."""

    def __init__(self, message: str, *, operation: str, status: int | None = None) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.status = status


class FitConnectTransientError(FitConnectError):
    """Worth another attempt: the connection failed, or the server was busy or broken."""


class FitConnectPermanentError(FitConnectError):
    """The API refused the call (4xx): another attempt gets the same answer."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status)
        self.problem = problem or {}


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}


class FitConnectClient:
    """One API client (``client_id``) of a Zustelldienst. Use as ``async with``."""

    def __init__(
        self,
        settings: FitConnectConnectionSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            verify=settings.verify_tls,
            transport=transport,
        )
        self._token: str | None = None
        self._token_expires = 0.0

    async def __aenter__(self) -> FitConnectClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------------

    async def _fetch_token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        if self.settings.scope:
            form["scope"] = self.settings.scope
        response = await self._http.post(str(self.settings.token_url), data=form)
        self._raise_for(response, "token")
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FitConnectPermanentError("no access_token in the answer", operation="token")
        expires_in = float(body.get("expires_in") or 300)
        self._token, self._token_expires = token, time.monotonic() + expires_in - _TOKEN_MARGIN
        return token

    async def _bearer(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            return await self._fetch_token()
        return self._token

    @staticmethod
    def _raise_for(response: httpx.Response, operation: str) -> None:
        status = response.status_code
        if status < 400:
            return
        problem = _problem_of(response)
        text = str(problem.get("detail") or problem.get("title") or problem.get("error") or "")
        message = f"HTTP {status} {text}".strip()
        if status == 429 or status >= 500:
            raise FitConnectTransientError(message, operation=operation, status=status)
        raise FitConnectPermanentError(message, operation=operation, status=status, problem=problem)

    async def _once(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        url = f"{self.settings.base_url}{path}"
        for attempt in (1, 2):
            sent = {**(headers or {}), "Authorization": f"Bearer {await self._bearer()}"}
            try:
                response = await self._http.request(method, url, headers=sent, **kwargs)
            except httpx.TransportError as exc:
                raise FitConnectTransientError(
                    f"{type(exc).__name__}: {exc}", operation=operation
                ) from exc
            if response.status_code == 401 and attempt == 1:
                # Revoked or expired before its time: one fresh token, then the answer stands.
                self._token = None
                continue
            self._raise_for(response, operation)
            return response
        raise AssertionError("unreachable")

    async def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        policy = retry_policy(
            self.settings,
            FitConnectTransientError,
            logger=logger,
            service="fit-connect",
            operation=operation,
        )
        retrying = AsyncRetrying(**policy)
        async for attempt in retrying:
            with attempt:
                return await self._once(operation, method, path, **dict(kwargs))
        raise AssertionError("unreachable")

    # -- both sides ------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return dict((await self._call("info", "GET", "/v1/info")).json())

    async def destination(self, destination_id: str) -> dict[str, Any]:
        response = await self._call("destination", "GET", f"/v1/destinations/{destination_id}")
        return dict(response.json())

    async def destination_key(self, destination_id: str, kid: str) -> dict[str, Any]:
        path = f"/v1/destinations/{destination_id}/keys/{kid}"
        return dict((await self._call("destination-key", "GET", path)).json())

    async def events(self, case_id: str) -> list[str]:
        """The case's event log: SETs, oldest first."""
        response = await self._call("events", "GET", f"/v1/cases/{case_id}/events")
        log = response.json().get("eventLog", [])
        return [str(token) for token in log]

    async def service_keys(self) -> dict[str, dict[str, Any]]:
        """The Zustelldienst's signing keys (kid -> JWK), from its JWKS."""
        try:
            response = await self._http.get(self.settings.jwks_url)
        except httpx.TransportError as exc:
            raise FitConnectTransientError(str(exc), operation="jwks") from exc
        self._raise_for(response, "jwks")
        keys = response.json().get("keys", [])
        return {str(k.get("kid")): k for k in keys if isinstance(k, dict)}

    # -- the sender's side -------------------------------------------------------------------

    async def announce(
        self,
        destination_id: str,
        service_type: dict[str, str],
        attachment_ids: list[str],
        *,
        case_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "destinationId": destination_id,
            "announcedAttachments": attachment_ids,
            "serviceType": service_type,
        }
        if case_id:
            body["caseId"] = case_id
        return dict((await self._call("announce", "POST", "/v1/submissions", json=body)).json())

    async def upload_attachment(self, submission_id: str, attachment_id: str, jwe: str) -> None:
        path = f"/v1/submissions/{submission_id}/attachments/{attachment_id}"
        headers = {"Content-Type": JOSE}
        await self._call("upload-attachment", "PUT", path, content=jwe.encode(), headers=headers)

    async def submit(
        self, submission_id: str, encrypted_metadata: str, encrypted_data: str | None
    ) -> dict[str, Any]:
        body = {"encryptedMetadata": encrypted_metadata}
        if encrypted_data is not None:
            body["encryptedData"] = encrypted_data
        path = f"/v1/submissions/{submission_id}"
        return dict((await self._call("submit", "PUT", path, json=body)).json())

    # -- the destination's side ----------------------------------------------------------------

    async def list_submissions(
        self, destination_id: str, *, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Submissions waiting for the destination (not yet accepted or rejected)."""
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            params = {"destinationId": destination_id, "offset": len(found), "limit": _PAGE}
            page = (await self._call("list", "GET", "/v1/submissions", params=params)).json()
            items = page.get("submissions", [])
            found.extend(item for item in items if isinstance(item, dict))
            if not items or len(found) >= int(page.get("totalCount", 0)):
                break
        return found[:limit]

    async def submission(self, submission_id: str) -> dict[str, Any]:
        response = await self._call("submission", "GET", f"/v1/submissions/{submission_id}")
        return dict(response.json())

    async def attachment(self, submission_id: str, attachment_id: str) -> str:
        path = f"/v1/submissions/{submission_id}/attachments/{attachment_id}"
        response = await self._call("attachment", "GET", path, headers={"Accept": JOSE})
        return response.text

    async def post_event(self, case_id: str, token: str) -> None:
        """A SET into the case's event log: the destination's accept- or reject-submission,
        the sender's accept- or reject-reply."""
        path = f"/v1/cases/{case_id}/events"
        headers = {"Content-Type": JOSE}
        await self._call("post-event", "POST", path, content=token.encode(), headers=headers)

    # -- replies: the destination answers in the case ------------------------------------------
    # The paths follow the reply resources as docs/fitconnect.md records them (which of them
    # a published source confirms is said there).

    async def announce_reply(self, case_id: str, attachment_ids: list[str]) -> dict[str, Any]:
        body = {"caseId": case_id, "announcedAttachments": attachment_ids}
        return dict((await self._call("announce-reply", "POST", "/v1/replies", json=body)).json())

    async def upload_reply_attachment(self, reply_id: str, attachment_id: str, jwe: str) -> None:
        path = f"/v1/replies/{reply_id}/attachments/{attachment_id}"
        headers = {"Content-Type": JOSE}
        await self._call(
            "upload-reply-attachment", "PUT", path, content=jwe.encode(), headers=headers
        )

    async def submit_reply(
        self, reply_id: str, encrypted_metadata: str, encrypted_data: str | None
    ) -> dict[str, Any]:
        body = {"encryptedMetadata": encrypted_metadata}
        if encrypted_data is not None:
            body["encryptedData"] = encrypted_data
        path = f"/v1/replies/{reply_id}"
        return dict((await self._call("submit-reply", "PUT", path, json=body)).json())

    # -- replies: the sender takes them --------------------------------------------------------

    async def list_replies(self, *, case_id: str | None = None) -> list[dict[str, Any]]:
        """Replies waiting for this sender (submitted, not yet accepted or rejected)."""
        found: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"offset": len(found), "limit": _PAGE}
            if case_id:
                params["caseId"] = case_id
            page = (await self._call("list-replies", "GET", "/v1/replies", params=params)).json()
            items = page.get("replies", [])
            found.extend(item for item in items if isinstance(item, dict))
            if not items or len(found) >= int(page.get("totalCount", 0)):
                return found

    async def reply(self, reply_id: str) -> dict[str, Any]:
        return dict((await self._call("reply", "GET", f"/v1/replies/{reply_id}")).json())

    async def reply_attachment(self, reply_id: str, attachment_id: str) -> str:
        path = f"/v1/replies/{reply_id}/attachments/{attachment_id}"
        response = await self._call("reply-attachment", "GET", path, headers={"Accept": JOSE})
        return response.text

    async def reply_events(self, reply_id: str) -> list[str]:
        """The SETs about one reply, oldest first."""
        response = await self._call("reply-events", "GET", f"/v1/replies/{reply_id}/events")
        return [str(token) for token in response.json().get("eventLog", [])]
