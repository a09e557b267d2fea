"""API keys for the HTTP app: one key per portal, one per back end, sent as ``X-API-Key``.

Off unless keys are configured; once any key is, every route that changes state or reveals
a case wants one. The check is a FastAPI dependency, so OpenAPI documents the security
scheme on exactly the guarded operations, and for raw-body routes it runs before the body is
read (an unauthenticated sender cannot make the hub buffer 40 MB). A key identifies its
holder (a ``Caller``); what that holder may do is decided in ``_access``.

A key is configured either as its digest, ``sha256:<64 hex>`` (``poststelle hash-key``
prints one), or, for compatibility, in clear text (warned about at start-up). The digest is
unsalted on purpose: the hub's keys are 256-bit random strings, for which a salt or a slow
hash buys nothing (there is no dictionary to precompute and no guess to slow down), and an
unsalted digest lets the hub find the holder with one hash and one lookup per request, the
same work for one key or ten thousand. A key a person made up is the case this does not
cover: ``audit-config`` warns about short ones.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from poststelle.adapters._problem import ProblemError

__all__ = [
    "API_KEY_HEADER",
    "KEY_DIGEST_PREFIX",
    "MIN_KEY_LENGTH",
    "ApiKeyRejected",
    "Caller",
    "Credentials",
    "caller_guard",
    "hash_api_key",
    "is_key_digest",
    "key_digest",
    "new_api_key",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
# Module level: the dependency's annotation must resolve from globals (postponed annotations).
_HEADER = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A portal's key (http.api_keys) or a back end's key ([[backends]] api_key)",
)
KEY_DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Shorter clear-text keys are likely made up by a person; audit-config says so.
MIN_KEY_LENGTH = 32
_NO_DIGEST = bytes(32)


def new_api_key() -> str:
    """A fresh key: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """What to put in the config instead of ``key``: ``sha256:<hex>``."""
    return KEY_DIGEST_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_key_digest(configured: str) -> bool:
    """Whether a configured value is a key's digest rather than the key itself."""
    return _DIGEST.fullmatch(configured) is not None


def key_digest(configured: str) -> bytes:
    """The raw digest of a configured key, whichever form it is configured in."""
    if is_key_digest(configured):
        return bytes.fromhex(configured.removeprefix(KEY_DIGEST_PREFIX))
    return hashlib.sha256(configured.encode()).digest()


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

    def holders(self) -> list[tuple[Caller, SecretStr]]:
        return [
            *((Caller("portal", name), key) for name, key in self.portals.items()),
            *((Caller("backend", name), key) for name, key in self.backends.items()),
        ]

    def by_digest(self) -> dict[bytes, Caller]:
        """Each key's digest -> its holder; warns about every key configured in clear text."""
        found: dict[bytes, Caller] = {}
        for caller, key in self.holders():
            configured = key.get_secret_value()
            if not is_key_digest(configured):
                log.warning(
                    "api key in clear text holder=%s:%s remedy='put its digest in the config:"
                    " poststelle hash-key --stdin'",
                    caller.kind,
                    caller.name,
                )
            found[key_digest(configured)] = caller
        return found


async def _open() -> None:
    return None


def caller_guard(credentials: Credentials) -> Callable[..., Awaitable[Caller | None]]:
    """A dependency naming the caller, or raising ``ApiKeyRejected``. Without any key
    configured it asks for nothing and returns ``None`` (and OpenAPI shows no scheme)."""
    if not credentials.configured:
        return _open
    # Indexed by the digest's first half; the whole digest is then compared in constant
    # time. How far a guess's digest matches a stored one says nothing about the key (a
    # sender cannot steer a SHA-256 output), so neither step's timing tells anything, and
    # the work per request does not grow with the number of keys.
    holders = {digest[:16]: (digest, caller) for digest, caller in credentials.by_digest().items()}

    async def check(presented: Annotated[str | None, Security(_HEADER)]) -> Caller | None:
        if not presented:
            raise ApiKeyRejected(f"send your API key in the {API_KEY_HEADER} header")
        given = hashlib.sha256(presented.encode()).digest()
        digest, caller = holders.get(given[:16], (_NO_DIGEST, None))
        if caller is None or not hmac.compare_digest(given, digest):
            log.warning("api key rejected")
            raise ApiKeyRejected(f"the {API_KEY_HEADER} header holds no valid key")
        return caller

    return check
