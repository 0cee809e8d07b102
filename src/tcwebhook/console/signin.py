"""The console's OpenID Connect routes: ``/login/oidc`` starts a sign-in, ``/oidc/callback`` ends it."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tcwebhook.console.oidc import FLOW_COOKIE, FLOW_SECONDS, OidcRefused, OidcUnavailable
from tcwebhook.console.state import SESSION_COOKIE, Console

log = structlog.get_logger(__name__)

_FLOW_PATH = "/oidc"


async def start(console: Console, request: Request) -> Response:
    assert console.oidc is not None
    try:
        url, flow = await console.oidc.start()
    except OidcUnavailable as exc:
        log.warning("console_oidc_unavailable", error=str(exc))
        return console.page(request, "error.html", 503, title="Sign-in unavailable",
                            message=f"The identity provider cannot be used now: {exc}. Try again later.")
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider sends the browser back with a cross-site top-level GET.
    response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_SECONDS, path=_FLOW_PATH, secure=True, httponly=True,
                        samesite="lax")
    return response


async def callback(console: Console, request: Request) -> Response:
    assert console.oidc is not None
    peer = request.client.host if request.client else "unknown"
    params = {k: v[:4096] for k, v in request.query_params.items()}
    response: Response
    try:
        user = await console.oidc.finish(params, request.cookies.get(FLOW_COOKIE))
    except OidcRefused as exc:
        log.warning("console_login_failed", method="oidc", reason=str(exc), peer=peer)
        await console.audit(request, "console.login", outcome="refused", actor="unknown", method="oidc",
                            reason=str(exc))
        response = console.page(request, "error.html", 403, title="Sign-in refused", message=f"Refused: {exc}.")
    except OidcUnavailable as exc:
        log.warning("console_oidc_unavailable", error=str(exc), peer=peer)
        response = console.page(request, "error.html", 503, title="Sign-in unavailable",
                                message=f"The identity provider cannot be used now: {exc}. Try again later.")
    else:
        token, _session = await console.sessions.create(user)
        log.info("console_login", method="oidc", username=user.username, role=user.role, peer=peer)
        await console.audit(request, "console.login", actor=user.username, method="oidc", role=user.role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")
    response.delete_cookie(FLOW_COOKIE, path=_FLOW_PATH, secure=True, httponly=True, samesite="lax")
    return response
