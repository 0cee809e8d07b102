"""The operator console: a small server-rendered Starlette application.

Every page needs a session; every state change is a POST carrying the session's CSRF token (a
form field, compared in constant time); actions need the ``operator`` role, and the server
refuses them (403) for a viewer whatever the page showed. Pages are Jinja2 templates with one
stylesheet served from the package: no script, no third-party asset, and a Content-Security-
Policy that allows nothing else.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tcwebhook.config import Settings
from tcwebhook.console import signin, views
from tcwebhook.console.sessions import Session
from tcwebhook.console.state import SESSION_COOKIE, Console, ConsoleHooks, Forbidden
from tcwebhook.errors import EventNotFound, StoreUnavailable
from tcwebhook.inbox.base import Inbox

__all__ = ["SESSION_COOKIE", "Console", "ConsoleHooks", "SecurityHeaders", "build_app"]

log = structlog.get_logger(__name__)

LOGIN_COOKIE = "tcwebhook_login"  # the login form's own CSRF token (double submit)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every response, and ``no-store`` to all but the stylesheet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith("/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


def _first(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0]


def _cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


Handler = Callable[[Console, Request], Awaitable[Response]]


def _page(handler: Handler, console: Console) -> Callable[[Request], Awaitable[Response]]:
    """A GET page: a session is needed (else the login form)."""

    async def endpoint(request: Request) -> Response:
        request.scope["console_started"] = time.perf_counter()
        session = await console.session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        request.scope["console_session"] = session
        bound = structlog.contextvars.bound_contextvars(console_user=session.user.username)
        with bound:
            return await _guard(console, request, handler)

    return endpoint


def _action(handler: Handler, console: Console, *, operator: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """A POST: same-origin, a session, its CSRF token, and (for actions) the operator role."""

    async def endpoint(request: Request) -> Response:
        request.scope["console_started"] = time.perf_counter()
        try:
            console.check_origin(request)
            session = await console.session_of(request)
            if session is None:
                raise Forbidden("no session")
            request.scope["console_session"] = session
            form = await console.form(request)
            token = _first(form, "csrf_token")
            if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
                raise Forbidden("missing or wrong CSRF token")
            if operator and not session.user.operator:
                raise Forbidden(f"{session.user.username} is a viewer")
        except Forbidden as exc:
            log.warning("console_refused", path=request.url.path, reason=str(exc), peer=console.peer_of(request))
            return console.page(request, "error.html", 403, title="Forbidden", message=f"Refused: {exc}.")
        request.scope["console_form"] = form
        bound = structlog.contextvars.bound_contextvars(console_user=session.user.username)
        with bound:
            return await _guard(console, request, handler)

    return endpoint


async def _guard(console: Console, request: Request, handler: Handler) -> Response:
    try:
        return await handler(console, request)
    except EventNotFound as exc:
        return console.page(request, "error.html", 404, title="Not found", message=str(exc))
    except StoreUnavailable as exc:
        log.warning("console_store_unavailable", error=str(exc))
        return console.page(request, "error.html", 503, title="Store unavailable", message=str(exc))


# -- login and logout --------------------------------------------------------------------------


async def login_form(console: Console, request: Request, *, error: str = "", status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    oidc_name = console.settings.console.oidc.display_name if console.settings.console.oidc else ""
    response = console.page(request, "login.html", status, login_token=token, error=error, oidc_name=oidc_name)
    _cookie(response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login(console: Console, request: Request) -> Response:
    peer = console.peer_of(request)
    try:
        console.check_origin(request)
        form = await console.form(request)
    except Forbidden as exc:
        return console.page(request, "error.html", 403, title="Forbidden", message=f"Refused: {exc}.")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = _first(form, "csrf_token")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("console_refused", path="/login", reason="missing or wrong CSRF token", peer=peer)
        return await login_form(console, request, error="The form expired: log in again.", status=403)
    username = _first(form, "username").strip()[:200]
    password = _first(form, "password")
    wait = console.throttle.retry_after(peer, username)
    if wait > 0:
        log.warning("console_login_throttled", username=username, peer=peer, retry_after=round(wait))
        response = await login_form(
            console, request, error=f"Too many failed logins: try again in {int(wait) + 1} s.", status=429
        )
        response.headers["retry-after"] = str(int(wait) + 1)
        return response
    user = await console.verify(username, password) if username and password else None
    if user is None:
        console.throttle.failed(peer, username)
        log.warning("console_login_failed", username=username, peer=peer)
        await console.audit(request, "console.login", outcome="failed", actor=username, method="password")
        return await login_form(console, request, error="Wrong username or password.", status=401)
    token, _session = await console.sessions.create(user)
    log.info("console_login", username=user.username, role=user.role, peer=peer)
    await console.audit(request, "console.login", actor=user.username, method="password", role=user.role)
    response = RedirectResponse("/", status_code=303)
    _cookie(response, SESSION_COOKIE, token)
    response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def logout(console: Console, request: Request) -> Response:
    await console.sessions.end(request.cookies.get(SESSION_COOKIE))
    session: Session = request.scope["console_session"]
    log.info("console_logout", username=session.user.username)
    await console.audit(request, "console.logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def build_app(settings: Settings, inbox: Inbox, hooks: ConsoleHooks) -> ASGIApp:
    """The console as an ASGI application (wrap it in a TLS listener: see ``console.server``)."""
    console = Console(settings, inbox, hooks)
    console.users.warn_clear_passwords()

    async def get_login(request: Request) -> Response:
        if await console.session_of(request) is not None:
            return RedirectResponse("/", status_code=303)
        return await login_form(console, request)

    async def post_login(request: Request) -> Response:
        return await login(console, request)

    async def oidc_start(request: Request) -> Response:
        return await signin.start(console, request)

    async def oidc_callback(request: Request) -> Response:
        return await signin.callback(console, request)

    async def stylesheet(_request: Request) -> Response:
        return Response(console._css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    routes = [
        Route("/login", get_login, methods=["GET"]),
        Route("/login", post_login, methods=["POST"]),
        Route("/logout", _action(logout, console, operator=False), methods=["POST"]),
        Route("/static/console.css", stylesheet, methods=["GET"]),
        Route("/", _page(views.overview, console), methods=["GET"]),
        Route("/events", _page(views.events, console), methods=["GET"]),
        Route("/events/replay", _action(views.replay, console), methods=["POST"]),
        Route("/events/{event_id}", _page(views.event, console), methods=["GET"]),
        Route("/events/{event_id}/body", _page(views.event_body, console), methods=["GET"]),
        Route("/events/{event_id}/fetched", _page(views.fetched, console), methods=["GET"]),
        Route("/events/{event_id}/preview/{sink}", _page(views.preview, console), methods=["GET"]),
        Route("/orders/{order_id}", _page(views.order, console), methods=["GET"]),
        Route("/shipments/{shipment_id}", _page(views.shipment, console), methods=["GET"]),
        Route("/dead", _page(views.dead, console), methods=["GET"]),
        Route("/audit", _page(views.audit, console), methods=["GET"]),
        Route("/dead/replay", _action(views.replay_dead, console), methods=["POST"]),
        Route("/quarantine", _page(views.quarantine, console), methods=["GET"]),
        Route("/drift", _page(views.drift, console), methods=["GET"]),
        Route("/quarantine/{entry_id}", _page(views.quarantine_entry, console), methods=["GET"]),
        Route("/quarantine/{entry_id}/body", _page(views.quarantine_body, console), methods=["GET"]),
        Route("/quarantine/{entry_id}/reprocess", _action(views.reprocess, console), methods=["POST"]),
    ]
    async def not_found(request: Request, _exc: Exception) -> Response:
        # A mistyped or stale link gets the console's page (with its navigation when logged in).
        request.scope["console_started"] = time.perf_counter()
        session = await console.session_of(request)
        if session is not None:
            request.scope["console_session"] = session
        message = "There is no such page in the console." if session else "There is no such page: log in first."
        return console.page(request, "error.html", 404, title="Not found", message=message)

    if console.oidc is not None:
        routes += [
            Route("/login/oidc", oidc_start, methods=["GET"]),
            Route("/oidc/callback", oidc_callback, methods=["GET"]),
        ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.console = console
    return SecurityHeaders(app)
