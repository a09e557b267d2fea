"""Who is asking: the session behind a request, its role, and the checks every route makes.

Pages need a session (else a redirect to the login page; an htmx request gets
``HX-Redirect``): a signed cookie whose session is still open in ``console_sessions`` and
whose account is still in the configuration, with the password hash it logged in with. A
POST also needs its CSRF token; a replay or a table change needs the operator role, as the
configuration has it now. Each refusal is an exception the app turns into the right answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from poststelle.routing.console._auth import OPERATOR, ConsoleConfig, Role, SessionCodec
from poststelle.routing.console._csrf import CsrfTokens, submitted_token
from poststelle.routing.console._sessions import SessionStore

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Forbidden",
    "Guard",
    "LoginRequired",
    "User",
]

SESSION_COOKIE = "poststelle_console"
LOGIN_COOKIE = "poststelle_console_login"


class LoginRequired(Exception):
    """No valid session: the answer is the login page."""


class Forbidden(Exception):
    """A session, but this is not allowed (wrong role, missing or wrong CSRF token)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    session_id: str
    csrf_token: str

    @property
    def operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def actor(self) -> str:
        """The name replays and table changes are audited under."""
        return f"console:{self.name}"


class Guard:
    def __init__(
        self,
        config: ConsoleConfig,
        codec: SessionCodec,
        csrf: CsrfTokens,
        sessions: SessionStore,
    ) -> None:
        self.config = config
        self.codec = codec
        self.csrf = csrf
        self.sessions = sessions

    async def user(self, request: Request) -> User:
        session = self.codec.read(request.cookies.get(SESSION_COOKIE))
        account = self.config.accounts.get(session.user) if session else None
        if session is None or account is None or not await self.sessions.holds(session, account):
            raise LoginRequired
        return User(
            name=session.user,
            role=account.role,
            session_id=session.session_id,
            csrf_token=self.csrf.token(session.session_id),
        )

    async def poster(self, request: Request) -> User:
        user = await self.user(request)
        if not self.csrf.matches(user.session_id, await submitted_token(request)):
            raise Forbidden("the form's CSRF token is missing or wrong: reload the page")
        return user

    async def operator(self, request: Request) -> User:
        user = await self.poster(request)
        if not user.operator:
            raise Forbidden(f"{user.name} has the role {user.role}: only operators may do this")
        return user
