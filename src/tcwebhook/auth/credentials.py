"""Sender authentication: HTTP Basic (RFC 7617) and static Bearer tokens (RFC 6750).

Several credentials may be valid at once so a secret can be rotated without a window in which
Tradecloud gets a 401 (which it never retries). Every configured credential is compared, in
constant time, whatever matched first, so timing does not tell which one was close.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from tcwebhook.config import AuthSettings


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    scheme: str | None = None  # "basic" | "bearer" | "oauth"
    principal: str | None = None  # basic username, "bearer#<n>" or "oauth:<client id>" (never the token)
    error: str | None = None  # why it failed, safe to log (never the presented value)
    description: str | None = None  # RFC 6750 error_description of a refused OAuth token


class Authenticator:
    """Checks an ``Authorization`` header value against the configured credentials."""

    def __init__(self, settings: AuthSettings) -> None:
        self._tokens = [t.get_secret_value().encode() for t in settings.bearer_tokens]
        self._oauth = settings.oauth is not None
        self._basic = [
            (c.username.encode(), f"{c.username}:{c.password.get_secret_value()}".encode()) for c in settings.basic
        ]
        challenges: list[bytes] = []
        if self._basic:
            challenges.append(f'Basic realm="{settings.realm}", charset="UTF-8"'.encode())
        if self._tokens or self._oauth:
            challenges.append(f'Bearer realm="{settings.realm}"'.encode())
        self._challenges = tuple(challenges)
        self._realm = settings.realm

    def challenges(self, result: AuthResult | None = None) -> tuple[bytes, ...]:
        """``WWW-Authenticate`` values for a 401; RFC 6750 §3.1 error code for a bad token."""
        if result is not None and result.scheme == "bearer" and (self._tokens or self._oauth):
            text = f'Bearer realm="{self._realm}", error="invalid_token"'
            if result.description:
                text += f', error_description="{result.description}"'
            bearer = text.encode()
            return tuple(bearer if c.startswith(b"Bearer") else c for c in self._challenges)
        return self._challenges

    def check(self, header: bytes | None) -> AuthResult:
        if not header:
            return AuthResult(False, error="missing Authorization header")
        scheme, _, value = header.strip().partition(b" ")
        scheme_l = scheme.lower()
        value = value.strip()
        if scheme_l == b"bearer":
            return self._check_bearer(value)
        if scheme_l == b"basic":
            return self._check_basic(value)
        return AuthResult(False, error="unsupported authorization scheme")

    def _check_bearer(self, token: bytes) -> AuthResult:
        if not token or not (self._tokens or self._oauth):
            return AuthResult(False, scheme="bearer", error="bearer token missing or not enabled")
        match = -1
        for i, candidate in enumerate(self._tokens):
            if hmac.compare_digest(candidate, token):
                match = i
        if match < 0:
            return AuthResult(False, scheme="bearer", error="bearer token not accepted")
        return AuthResult(True, scheme="bearer", principal=f"bearer#{match}")

    def _check_basic(self, encoded: bytes) -> AuthResult:
        if not self._basic:
            return AuthResult(False, scheme="basic", error="basic authentication not enabled")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return AuthResult(False, scheme="basic", error="malformed basic credentials")
        if b":" not in decoded:
            return AuthResult(False, scheme="basic", error="malformed basic credentials")
        match: bytes | None = None
        for username, pair in self._basic:
            if hmac.compare_digest(pair, decoded):
                match = username
        if match is None:
            return AuthResult(False, scheme="basic", error="basic credentials not accepted")
        return AuthResult(True, scheme="basic", principal=match.decode(errors="replace"))


SENSITIVE_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"x-api-key"})


def redact_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers as stored with an event: credential values replaced, scheme kept."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1")
        if name in SENSITIVE_HEADERS:
            scheme = value.split(b" ", 1)[0].decode("latin-1") if b" " in value else ""
            text = f"{scheme} [redacted]".strip()
        else:
            text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out
