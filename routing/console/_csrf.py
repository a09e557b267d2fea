"""CSRF tokens: every POST carries one bound to the caller's session (or, before login, to
the login form's nonce cookie), checked before the request does anything.

The session cookie is ``SameSite=Strict`` already, which stops cross-site POSTs in current
browsers; the token is the second lock for browsers and proxies that do not honour it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import Request

__all__ = ["FIELD", "HEADER", "CsrfTokens", "submitted_token"]

FIELD = "csrf_token"
# htmx requests send it as a header (``hx-headers`` on the page's body).
HEADER = "X-CSRF-Token"


class CsrfTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"console-csrf", hashlib.sha256).digest()

    def token(self, binding: str) -> str:
        """The token for a session id (or a login nonce)."""
        digest = hmac.new(self._key, binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def matches(self, binding: str, token: str | None) -> bool:
        if not binding or not token:
            return False
        return hmac.compare_digest(self.token(binding), token)


async def submitted_token(request: Request) -> str | None:
    """The token of a POST: the header, else the form field."""
    header = request.headers.get(HEADER)
    if header:
        return header
    form = await request.form()
    value = form.get(FIELD)
    return value if isinstance(value, str) else None
