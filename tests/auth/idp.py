"""A local identity provider for the OAuth tests: JWKS and a client-credentials token endpoint.

Shaped like Microsoft Entra ID v2 (``/{tenant}/discovery/v2.0/keys``,
``/{tenant}/oauth2/v2.0/token``), served over TLS with a trustme certificate on loopback, on its
own thread. Tests roll keys over, take it down, count key-set fetches and mint tokens with any
claims, header or algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import trustme
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.support.polling import eventually

TENANT = "0b1c2d3e-aaaa-bbbb-cccc-123456789abc"
AUDIENCE = "api://tcwebhook-test"
CLIENT_ID = "6f1e2d3c-tradecloud-client"
CLIENT_SECRET = "client-secret-for-tests"
ROLE = "Webhook.Send"


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str = "RS256"

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, use="sig")
        return data


def rsa_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid or uuid.uuid4().hex[:16], rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid or uuid.uuid4().hex[:16], ec.generate_private_key(ec.SECP256R1()), "ES256")


@dataclass
class LocalIdP:
    """State of the identity provider; guarded by ``lock`` (the server runs on another thread)."""

    origin: str = ""
    keys: list[SigningKey] = field(default_factory=lambda: [rsa_key()])
    down: bool = False
    jwks_fetches: int = 0
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return f"{self.origin}/{TENANT}/v2.0"

    @property
    def jwks_url(self) -> str:
        return f"{self.origin}/{TENANT}/discovery/v2.0/keys"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/{TENANT}/oauth2/v2.0/token"

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rollover(self, key: SigningKey | None = None) -> SigningKey:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        new = key or rsa_key()
        with self.lock:
            self.keys.append(new)
        return new

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "azp": CLIENT_ID,
            "roles": [ROLE],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": CLIENT_ID,
            "tid": TENANT,
            "ver": "2.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self, key: SigningKey | None = None, *, alg: str | None = None, kid: str | None = None, **claims: Any
    ) -> str:
        signer = key or self.current
        return jwt.encode(
            self.claims(**claims),
            signer.private,
            algorithm=alg or signer.alg,
            headers={"kid": kid if kid is not None else signer.kid},
        )


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none``: a header, a payload and an empty signature."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."


def hs256_with_public_key(idp: LocalIdP) -> str:
    """The classic key-confusion forgery: HMAC keyed with the RSA public key's PEM."""
    pem = idp.current.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": idp.current.kid}
    signing = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(idp.claims()).encode()).rstrip(b"=").decode()
    )
    signature = hmac.new(pem, signing.encode(), hashlib.sha256).digest()
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def tampered(token: str, **changes: Any) -> str:
    """The same signature over a payload with ``changes`` applied."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    new_payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{new_payload}.{signature}"


def build_app(idp: LocalIdP) -> Starlette:
    async def keys(request: Request) -> Response:
        with idp.lock:
            idp.jwks_fetches += 1
            if idp.down:
                return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
            body = {"keys": [k.jwk() for k in idp.keys]}
        return JSONResponse(body)

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        with idp.lock:
            if idp.down:
                return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        scope = str(form.get("scope", ""))
        if not scope.endswith("/.default"):
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        access = idp.mint(aud=scope.removesuffix("/.default"))
        with idp.lock:
            idp.tokens_issued += 1
        return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "access_token": access})

    return Starlette(
        routes=[
            Route(f"/{TENANT}/discovery/v2.0/keys", keys, methods=["GET"]),
            Route(f"/{TENANT}/oauth2/v2.0/token", token, methods=["POST"]),
        ]
    )


class IdPServer:
    """``LocalIdP`` under uvicorn with TLS on a loopback port, on a daemon thread."""

    def __init__(self, ca: trustme.CA, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.idp = LocalIdP()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = workdir / "idp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        pem = workdir / "idp-cert.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.idp.origin = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            build_app(self.idp),
            ssl_certfile=str(pem),
            ssl_keyfile=str(pem),
            log_level="warning",
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> IdPServer:
        self._thread.start()
        def up() -> bool:
            if not self._thread.is_alive():
                raise RuntimeError("the local identity provider did not start")
            return bool(self._server.started)

        eventually(up, 10, interval=0.01, what="the local identity provider started")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def config(self, **extra: Any) -> str:
        """The ``[auth.oauth]`` table for this IdP (TOML)."""
        lines = [
            "[auth.oauth]",
            f'issuer = "{self.idp.issuer}"',
            f'jwks_url = "{self.idp.jwks_url}"',
            f'audience = ["{AUDIENCE}", "api://other-audience"]',
            f'allowed_client_ids = ["{CLIENT_ID}"]',
            f'required_roles = ["{ROLE}"]',
            f'ca_bundle = "{self.ca_path}"',
            "leeway = 5",
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"
