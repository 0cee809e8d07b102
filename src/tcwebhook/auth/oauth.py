"""OAuth 2.0 client-credentials access tokens (Entra ID, ADFS, Azure AD B2C) as sender credentials.

Tradecloud fetches a token from the customer's token endpoint and sends it as ``Authorization:
Bearer <JWT>`` on order and order-documents webhooks. A token is accepted only when it is signed
with an asymmetric algorithm by a key of the configured key set (``none`` and every HMAC algorithm
are refused before any key is looked at: an HMAC "signed" with the public key would otherwise
verify), and ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``, the client id (``azp``/``appid``) and the
app roles all hold. A refusal names the failed check, never the token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)
from jwt.types import Options

from tcwebhook.auth.credentials import AuthResult
from tcwebhook.auth.jwks import JwksCache, JwksUnavailable
from tcwebhook.config import OAuthSettings

__all__ = ["ALLOWED_ALGORITHMS", "JwksUnavailable", "OAuthValidator", "looks_like_jwt"]

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_JWT = re.compile(rb"^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$")
MAX_TOKEN_BYTES = 16 * 1024


def looks_like_jwt(token: bytes) -> bool:
    """Three base64url segments: worth handing to OAuth (a static token never is one)."""
    return len(token) <= MAX_TOKEN_BYTES and _JWT.match(token) is not None


@dataclass(frozen=True, slots=True)
class _Refusal(Exception):
    claim: str
    description: str


class OAuthValidator:
    """Validates access tokens against ``[auth.oauth]``; ``check`` answers like ``Authenticator``."""

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        clock: Callable[[], float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._issuers = settings.issuers
        self._audiences = list(settings.audiences)
        self._clients = frozenset(settings.allowed_client_ids)
        self._roles = frozenset(settings.required_roles)
        self.jwks = JwksCache(settings, clock=clock or time.monotonic, transport=transport)

    async def check(self, token: bytes) -> AuthResult:
        """Accept or refuse ``token``; raises ``JwksUnavailable`` when no key set can be had."""
        try:
            claims = await self._validate(token.decode("ascii"))
        except _Refusal as refusal:
            return AuthResult(
                False, scheme="bearer", error=f"oauth: {refusal.description}", description=refusal.description
            )
        client = _client_id(claims) or "unknown-client"
        return AuthResult(True, scheme="oauth", principal=f"oauth:{client}")

    async def _validate(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError:  # bad base64, not a JSON object, a kid that is not a string
            raise _Refusal("token", "malformed token") from None
        if "crit" in header:
            # RFC 7515 §4.1.11: extensions we do not implement make the token unacceptable.
            raise _Refusal("crit", "critical header extensions are not supported (crit)")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise _Refusal("alg", f"signing algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _Refusal("kid", "key id (kid) is not a string")
        # Issuer, audience and lifetime first, unverified: a token that could never pass costs
        # no key lookup, so it can neither make the key set refresh nor be answered 503.
        self._decode(token, None, alg, verify_signature=False)
        found = await self.jwks.lookup(kid)
        if found.key is None:
            raise _Refusal("kid", found.reason)
        if found.key.key_type != _key_type(alg) or found.key.alg not in (None, alg):
            raise _Refusal("alg", "signing algorithm does not match the key")
        claims = self._decode(token, found.key.public_key, alg, verify_signature=True)
        if self._clients and _client_id(claims) not in self._clients:
            raise _Refusal("azp", "client not allowed (azp/appid)")
        if self._roles:
            roles = claims.get("roles")
            held = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
            if not self._roles <= held:
                raise _Refusal("roles", "required role missing (roles)")
        return claims

    def _decode(self, token: str, key: Any, alg: str, *, verify_signature: bool) -> dict[str, Any]:
        options: Options = {
            "verify_signature": verify_signature,
            "require": ["exp", "iat", "iss", "aud"],
            # Without a signature check PyJWT would skip the claims too unless asked for each.
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": True,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audiences,
                issuer=self._issuers,
                leeway=self._settings.leeway,
                options=options,
            )
        except InvalidSignatureError:
            raise _Refusal("signature", "signature does not verify") from None
        except ExpiredSignatureError:
            raise _Refusal("exp", "token expired (exp)") from None
        except ImmatureSignatureError as exc:
            if "iat" in str(exc):
                raise _Refusal("iat", "token issued in the future (iat)") from None
            raise _Refusal("nbf", "token not yet valid (nbf)") from None
        except InvalidIssuedAtError:
            raise _Refusal("iat", "token issued in the future (iat)") from None
        except InvalidIssuerError:
            raise _Refusal("iss", "issuer not accepted (iss)") from None
        except InvalidAudienceError:
            raise _Refusal("aud", "audience not accepted (aud)") from None
        except MissingRequiredClaimError as exc:
            raise _Refusal(exc.claim, f"required claim missing ({exc.claim})") from None
        except (InvalidKeyError, DecodeError):
            raise _Refusal("token", "token cannot be verified with the key") from None
        except (InvalidTokenError, ValueError, TypeError, OverflowError):
            # Anything else the library refuses, or trips over (claims of odd types): never a 503.
            raise _Refusal("token", "token not accepted") from None
        return claims


def _client_id(claims: dict[str, Any]) -> str | None:
    # v2 tokens name the client in azp, v1 tokens in appid.
    for name in ("azp", "appid"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _key_type(alg: str) -> str:
    return "EC" if alg.startswith("ES") else "RSA"
