"""The console's ASGI application: templates, static files, login and logout, the checks.

``create_console_app`` returns a FastAPI app that the hub mounts on its HTTP intake at
``/console``. It needs only the hub's JetStream context and health report (``ConsoleHub``),
so it runs in every hub process that serves the port.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import nats.errors
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from nats.js import JetStreamContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.console._auth import ConsoleConfig, SessionCodec, load_session_secret
from poststelle.routing.console._csrf import CsrfTokens
from poststelle.routing.console._guard import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    Guard,
    LoginRequired,
    User,
)
from poststelle.routing.console._overview import RateSampler
from poststelle.routing.console._parked import Standards
from poststelle.routing.console._routes import RoutesCache
from poststelle.routing.console._sessions import LoginThrottle, SessionStore

__all__ = ["CONSOLE_PATH", "ConsoleHub", "Context", "create_console_app"]

log = logging.getLogger(__name__)

CONSOLE_PATH = "/console"
_HERE = Path(__file__).parent
# No inline script or style anywhere: htmx's own indicator style is switched off in the page.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ConsoleHub(Protocol):
    """What the console uses of the hub (``routing.hub.runtime.Hub`` is one)."""

    @property
    def js(self) -> JetStreamContext: ...

    async def health(self) -> dict[str, Any]: ...


@dataclass
class Context:
    """Everything a page handler needs, made once per app."""

    hub: ConsoleHub
    guard: Guard
    templates: Jinja2Templates
    data_dir: Path
    sampler: RateSampler = field(default_factory=RateSampler)
    routes: RoutesCache = field(default_factory=RoutesCache)
    _standards: Standards | None = None

    @property
    def standards(self) -> Standards:
        # Read on first use: the schema sets a hub knows are there once it runs.
        if self._standards is None:
            self._standards = Standards(ContractRegistry.for_data_dir(self.data_dir))
        return self._standards

    def page(
        self,
        request: Request,
        name: str,
        user: User | None,
        status_code: int = 200,
        **values: Any,
    ) -> Response:
        return self.templates.TemplateResponse(
            request,
            name,
            {"user": user, "base": request.scope.get("root_path", ""), **values},
            status_code=status_code,
        )


# The largest form the console takes: a replay of a page's worth of records, a rule.
MAX_FORM_BYTES = 64 * 1024


class _FormLimit:
    """POSTs say their size and stay small: refused before a byte of the body is read, so
    nobody, logged in or not, makes the hub parse a large form."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
                status = 411 if not declared.isdigit() else 413
                await Response(
                    f"a console form has a Content-Length of at most {MAX_FORM_BYTES} bytes",
                    status_code=status,
                    media_type="text/plain",
                )(scope, receive, send)
                return
        await self._app(scope, receive, send)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(
                        (key.lower().encode(), value.encode())
                        for key, value in _SECURITY_HEADERS.items()
                        if key.lower().encode() not in present
                    ),
                ]
            await send(message)

        await self._app(scope, receive, with_headers)


def create_console_app(
    hub: ConsoleHub,
    config: ConsoleConfig,
    *,
    data_dir: Path,
    secure_cookies: bool = False,
) -> FastAPI:
    secret = load_session_secret(config, data_dir)
    codec = SessionCodec(secret, lifetime=config.session_hours * 3600)
    sessions = SessionStore(lambda: hub.js, secret)
    guard = Guard(config, codec, CsrfTokens(secret), sessions)
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    context = Context(hub=hub, guard=guard, templates=templates, data_dir=data_dir)
    throttle = LoginThrottle(lambda: hub.js)
    verifying = asyncio.Semaphore(2)
    secure = secure_cookies or config.secure_cookies
    app = FastAPI(title="Poststelle console", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_FormLimit)
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    def cookie_path(request: Request) -> str:
        return request.scope.get("root_path", "") or "/"

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        login = f"{request.scope.get('root_path', '')}/login"
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    @app.exception_handler(nats.errors.Error)
    async def nats_down(request: Request, exc: nats.errors.Error) -> Response:
        # Sessions live in NATS: without it nobody is let in (never "in" by default).
        log.error("console without NATS path=%s error=%s", request.url.path, type(exc).__name__)
        return Response(
            "the console keeps its sessions in NATS, which does not answer: try again shortly",
            status_code=503,
            media_type="text/plain",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        try:
            user: User | None = await guard.user(request)
        except (LoginRequired, nats.errors.Error):
            user = None
        return context.page(request, "error.html", user, status_code=403, message=exc.why)

    def login_page(request: Request, status_code: int = 200, **extra: Any) -> Response:
        """The login form with a fresh nonce: its cookie and the form's token go together."""
        nonce = secrets.token_urlsafe(18)
        response = context.page(
            request,
            "login.html",
            None,
            status_code=status_code,
            login_token=guard.csrf.token(nonce),
            accounts=bool(config.accounts),
            **extra,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=900,
            path=cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @app.post("/login")
    async def login(
        request: Request,
        username: str = Form(default="", max_length=64),
        password: str = Form(default="", max_length=1024),
        csrf_token: str = Form(default="", max_length=200),
    ) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not guard.csrf.matches(nonce, csrf_token):
            raise Forbidden("the login form expired or came from elsewhere: reload it")
        refused = "wrong account name or password"
        if not await throttle.admit(username):
            log.warning("console login throttled user=%s", username)
            refused = "too many failed logins for this account: wait ten minutes"
            account = None
        else:
            # argon2 takes a while and 64 MiB: off the event loop, so the process keeps
            # serving, and two at a time, so a flood of logins cannot exhaust the memory.
            async with verifying:
                account = await asyncio.to_thread(config.authenticate, username, password)
        if account is None:
            log.warning("console login refused user=%s", username)
            return login_page(request, status_code=401, error=refused, username=username)
        await throttle.succeeded(username)
        session, cookie = codec.issue(username)
        await sessions.open(session, account)
        log.info("console login user=%s role=%s", username, account.role)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(config.session_hours * 3600),
            path=cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        response.delete_cookie(LOGIN_COOKIE, path=cookie_path(request))
        return response

    def logged_out(request: Request) -> Response:
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        user = await guard.poster(request)
        await sessions.close(user.name, user.session_id)
        log.info("console logout user=%s", user.name)
        return logged_out(request)

    @app.post("/logout-everywhere")
    async def logout_everywhere(request: Request) -> Response:
        """Ends every session of the caller's account: the way out after a lost laptop or
        a cookie that may have been copied."""
        user = await guard.poster(request)
        ended = await sessions.close_all(user.name)
        log.warning("console logout everywhere user=%s sessions=%s", user.name, ended)
        return logged_out(request)

    from poststelle.routing.console._pages import add_pages

    add_pages(app, context)
    return app
