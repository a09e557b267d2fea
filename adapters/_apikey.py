"""Optional API keys for the intake: one key per portal, sent as ``X-API-Key``.

Off unless keys are configured. The check is a FastAPI dependency, so it runs before the
body is read (an unauthenticated sender cannot make the hub buffer 40 MB) and OpenAPI
documents the security scheme on exactly the guarded operations.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from poststelle.adapters._problem import problem

__all__ = ["API_KEY_HEADER", "ApiKeyRejected", "api_key_guard", "install_api_key_errors"]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
# Module level: the dependency's annotation must resolve from globals (postponed annotations).
_HEADER = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="The portal's API key, as configured under http.api_keys",
)


class ApiKeyRejected(Exception):
    """The request carried no key, or one that belongs to no configured portal."""


def api_key_guard(keys: Mapping[str, SecretStr]) -> Callable[..., Awaitable[str]]:
    """A dependency that returns the calling portal's name or raises ``ApiKeyRejected``."""
    if not keys:
        raise ValueError("api_key_guard needs at least one key")
    expected = [(name, key.get_secret_value().encode()) for name, key in keys.items()]

    async def check(presented: Annotated[str | None, Security(_HEADER)]) -> str:
        if not presented:
            raise ApiKeyRejected(f"send the portal's API key in the {API_KEY_HEADER} header")
        given = presented.encode()
        # Compare against every key, so the time taken does not tell which one came close.
        matched = [name for name, key in expected if hmac.compare_digest(given, key)]
        if not matched:
            log.warning("api key rejected")
            raise ApiKeyRejected(f"the {API_KEY_HEADER} header holds no valid key")
        return matched[0]

    return check


def install_api_key_errors(app: FastAPI) -> None:
    async def rejected(request: Request, exc: Exception) -> JSONResponse:
        return problem(401, "Unauthorized", str(exc))

    app.add_exception_handler(ApiKeyRejected, rejected)
