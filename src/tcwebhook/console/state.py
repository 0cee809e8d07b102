"""The console's shared state and page plumbing: users, sessions, throttle, templates, forms.

The application (``console.app``) routes requests to the pages of ``console.views``; both take
the ``Console`` from here, so neither needs the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tcwebhook.audit import AuditEntry, AuditLog
from tcwebhook.config import Settings
from tcwebhook.console import render
from tcwebhook.console.notes import note_of
from tcwebhook.console.oidc import OidcSignIn
from tcwebhook.console.sessions import LoginThrottle, Session, SessionStore
from tcwebhook.console.users import User, UserBook
from tcwebhook.formats import Output
from tcwebhook.inbox.base import Inbox, StoredEvent
from tcwebhook.logs import secret_values
from tcwebhook.transport.addresses import Network, client_address, contains, parse_networks

SESSION_COOKIE = "tcwebhook_session"
MAX_FORM_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class ConsoleHooks:
    """What the console needs from the process it runs in, beyond the inbox."""

    # The webhook certificate's expiry (what Tradecloud sees), None when unknown.
    certificate_expiry: Callable[[], datetime | None]
    # Called after a replay or reprocess, so an in-process dispatcher looks at once.
    on_requeued: Callable[[], None] = lambda: None
    # The object a GET trigger names, fetched from the Tradecloud API now ([tradecloud] configured).
    fetch_object: Callable[[StoredEvent], Awaitable[dict[str, Any]]] | None = None



def _lower_priority() -> None:
    # Linux nice values are per thread, and argon2's own lane threads inherit this one's: a
    # flood of logins then gets the CPU the event loop leaves, never the other way round.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# One verification at a time (argon2 takes 64 MiB and several lanes each): a flood of logins
# queues here instead of taking every thread of the default executor.
_VERIFIER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-login", initializer=_lower_priority)


class Forbidden(Exception):
    pass


class Console:
    """The console's state (users, sessions, throttle) and its request handlers."""

    def __init__(self, settings: Settings, inbox: Inbox, hooks: ConsoleHooks) -> None:
        self.settings = settings
        self.inbox = inbox
        self.hooks = hooks
        cfg = settings.console
        self.users = UserBook(cfg.users)
        self.sessions = SessionStore(cfg.session_idle_timeout, inbox)
        self.throttle = LoginThrottle(cfg.login_attempts, cfg.login_window, cfg.login_attempts_per_address)
        self._proxies = parse_networks(cfg.trusted_proxies, "[console] trusted_proxies", presets=False)
        self.sink_names = tuple(s.name for s in settings.sinks)
        self.outputs = {s.name: Output.from_settings(s) for s in settings.sinks}
        self.oidc = OidcSignIn(cfg.oidc) if cfg.oidc is not None else None
        self.audit_log = AuditLog(inbox, secret_values(settings))
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("tcwebhook.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(when=render.when, age=render.age)
        self._css = resources.files("tcwebhook.console").joinpath("static/console.css").read_bytes()

    async def verify(self, username: str, password: str) -> User | None:
        """``UserBook.verify`` in a thread: an argon2 check is ~100 ms of CPU the loop must not spend."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_VERIFIER, self.users.verify, username, password)

    # -- plumbing ------------------------------------------------------------------------------

    async def audit(
        self, request: Request, action: str, target: str = "", outcome: str = "ok", *, actor: str | None = None,
        **detail: Any,
    ) -> None:
        """Record an operator's action in the audit log (actor: the signed-in user by default)."""
        session: Session | None = request.scope.get("console_session")
        who = actor if actor is not None else (session.user.username if session else "anonymous")
        await self.audit_log.record(
            AuditEntry(actor=who, source=self.peer_of(request), action=action, target=target, outcome=outcome,
                       detail=detail)
        )

    def peer_of(self, request: Request) -> str:
        """The operator's address: behind a trusted proxy, the last X-Forwarded-For hop it did not add."""
        peer = request.client.host if request.client else "unknown"
        if not self._proxies or not _trusted(self._proxies, peer):
            return peer
        hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
        for hop in reversed(hops):
            if not _trusted(self._proxies, hop):
                return hop[:64]
        return peer

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = request.scope.get("console_session")
        started = request.scope.get("console_started", time.perf_counter())
        html = self.templates.get_template(name).render(
            session=session,
            user=session.user if session else None,
            csrf=session.csrf_token if session else "",
            path=request.url.path,
            note=note_of(request.query_params),
            render_ms=lambda: f"{(time.perf_counter() - started) * 1000:.0f}",
            status_code=status,
            **{**render.refresh_context(request.url.path, request.query_params), **context},
        )
        return HTMLResponse(html, status_code=status)

    async def session_of(self, request: Request) -> Session | None:
        return await self.sessions.get(request.cookies.get(SESSION_COOKIE))

    async def form(self, request: Request) -> dict[str, list[str]]:
        length = request.headers.get("content-length")
        if length is not None and (not (length.isascii() and length.isdigit()) or int(length) > MAX_FORM_BYTES):
            raise Forbidden("form too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise Forbidden("form too large")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise Forbidden("not a form")
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2000)

    def check_origin(self, request: Request) -> None:
        """A browser's cross-site POST names another origin: refuse it before anything else."""
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return
        host = request.headers.get("host", "")
        if origin.rstrip("/") != f"https://{host}":
            raise Forbidden("cross-origin request")


def _trusted(proxies: tuple[Network, ...], host: str) -> bool:
    try:
        return contains(proxies, client_address(host))
    except ValueError:  # not an address at all (a forged header): never a proxy
        return False
