"""A local OpenID provider for the console sign-in tests: discovery, a login form, code + PKCE, JWKS.

Served over TLS (a trustme certificate) on loopback, on its own thread. Tests pick which users
exist and what roles they hold, and can make it issue ID tokens for another audience.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
import trustme
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "tcwebhook-console"
CLIENT_SECRET = "console-client-secret-0123456789"
USERS = {
    "alice": ("alice-password", ["Console.Operator"]),
    "vera": ("vera-password", ["Console.Viewer"]),
    "nora": ("nora-password", []),
}


@dataclass
class OpenIdProvider:
    origin: str = ""
    ca_pem: Path = Path()
    audience: str = CLIENT_ID  # a test sets another to see the token refused
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.origin + "/idp"

    def app(self) -> Starlette:
        async def discovery(_request: Request) -> Response:
            return JSONResponse({
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/keys",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })

        async def keys(_request: Request) -> Response:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
            jwk.update(kid=self.kid, use="sig", alg="RS256")
            return JSONResponse({"keys": [jwk]})

        async def authorize_form(request: Request) -> Response:
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in request.query_params.items()
            )
            return HTMLResponse(
                "<!doctype html><title>Local IdP sign-in</title><form method=post>"
                f'{hidden}<input name="username" id="idp-user"><input name="password" id="idp-password" '
                'type="password"><button id="idp-submit">Sign in</button></form>'
            )

        async def authorize(request: Request) -> Response:
            params = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            user = USERS.get(params.get("username", ""))
            if user is None or user[0] != params.get("password"):
                return HTMLResponse("wrong password", status_code=401)
            if params.get("client_id") != CLIENT_ID or params.get("code_challenge_method") != "S256":
                return HTMLResponse("bad request", status_code=400)
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = {**params, "roles": user[1]}
            query = urlencode({"code": code, "state": params.get("state", "")})
            return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=303)

        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            with self.lock:
                self.token_requests.append(form)
                grant = self.codes.pop(form.get("code", ""), None)
            basic = request.headers.get("authorization", "")
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if basic != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != grant["code_challenge"]:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.issuer, "aud": self.audience, "sub": f"sub-{grant['username']}",
                "preferred_username": f"{grant['username']}@example.com", "nonce": grant.get("nonce"),
                "iat": now, "exp": now + 300, "roles": grant["roles"],
            }
            id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
            return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                 "expires_in": 300, "id_token": id_token})

        return Starlette(routes=[
            Route("/idp/.well-known/openid-configuration", discovery),
            Route("/idp/keys", keys),
            Route("/idp/authorize", authorize_form, methods=["GET"]),
            Route("/idp/authorize", authorize, methods=["POST"]),
            Route("/idp/token", token, methods=["POST"]),
        ])


@pytest.fixture(scope="module")
def openid_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    directory = tmp_path_factory.mktemp("idp")
    cert, key, ca_pem = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    provider = OpenIdProvider(origin=f"https://localhost:{sock.getsockname()[1]}", ca_pem=ca_pem)
    config = uvicorn.Config(provider.app(), lifespan="off", log_config=None, access_log=False, http="h11",
                            ws="none", loop="asyncio", ssl_certfile=str(cert), ssl_keyfile=str(key),
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local OpenID provider did not start")
        time.sleep(0.01)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
