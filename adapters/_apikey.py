"""API keys for the HTTP app: one key per portal, one per back end, sent as ``X-API-Key``.

Off unless keys are configured; once any key is, every route that changes state or reveals
a case wants one. The check is a FastAPI dependency, so OpenAPI documents the security
scheme on exactly the guarded operations, and for raw-body routes it runs before the body is
read (an unauthenticated sender cannot make the hub buffer 40 MB). A key identifies its
holder (a ``Caller``); what that holder may do is decided in ``_access``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from poststelle.adapters._problem import ProblemError

__all__ = [
    "API_KEY_HEADER",
    "ApiKeyRejected",
    "Caller",
    "Credentials",
    "caller_guard",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
# Module level: the dependency's annotation must resolve from globals (postponed annotations).
_HEADER = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A portal's key (http.api_keys) or a back end's key ([[backends]] api_key)",
)


class ApiKeyRejected(ProblemError):
    """The request carried no key, or one that belongs to no configured portal or back end."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, "Unauthorized", detail)


@dataclass(frozen=True)
class Caller:
    """Who presented the key: a portal (``name`` = portal) or a back end (``tenant/backend``)."""

    kind: Literal["portal", "backend"]
    name: str

    @property
    def backend(self) -> tuple[str, str] | None:
        if self.kind != "backend":
            return None
        tenant, _, backend = self.name.partition("/")
        return tenant, backend


@dataclass(frozen=True)
class Credentials:
    """Portal name -> key and ``tenant/backend`` -> key, as configured."""

    portals: Mapping[str, SecretStr]
    backends: Mapping[str, SecretStr]

    @property
    def configured(self) -> bool:
        return bool(self.portals or self.backends)

    def holders(self) -> list[tuple[Caller, bytes]]:
        return [
            *(
                (Caller("portal", name), key.get_secret_value().encode())
                for name, key in self.portals.items()
            ),
            *(
                (Caller("backend", name), key.get_secret_value().encode())
                for name, key in self.backends.items()
            ),
        ]


async def _open() -> None:
    return None


def caller_guard(credentials: Credentials) -> Callable[..., Awaitable[Caller | None]]:
    """A dependency naming the caller, or raising ``ApiKeyRejected``. Without any key
    configured it asks for nothing and returns ``None`` (and OpenAPI shows no scheme)."""
    if not credentials.configured:
        return _open
    holders = credentials.holders()

    async def check(presented: Annotated[str | None, Security(_HEADER)]) -> Caller | None:
        if not presented:
            raise ApiKeyRejected(f"send your API key in the {API_KEY_HEADER} header")
        given = presented.encode()
        # Compare against every key, so the time taken does not tell which one came close.
        matched = [caller for caller, key in holders if hmac.compare_digest(given, key)]
        if not matched:
            log.warning("api key rejected")
            raise ApiKeyRejected(f"the {API_KEY_HEADER} header holds no valid key")
        return matched[0]

    return check
