"""Console sign-in with OpenID Connect: authorization code flow with PKCE (RFC 7636).

The flow's state, nonce and PKCE verifier travel in an encrypted, short-lived cookie (Fernet, key
derived from the client secret), so the callback may reach another console process behind a
balancer than the one that started the sign-in. The ID token is checked as strictly as a webhook
OAuth token: an asymmetric algorithm of the allow-list and a key of the provider's key set,
``iss``, ``aud`` (and ``azp`` when there are several audiences), ``exp``, ``iat``, and the nonce of
this very sign-in. The role comes from one claim (``roles`` or ``groups``) mapped by configuration;
a user with no mapped role is refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.exceptions import InvalidTokenError, PyJWKError

from tcwebhook.auth.oauth import ALLOWED_ALGORITHMS
from tcwebhook.config import ConsoleOidcSettings
from tcwebhook.console.users import Role, User
from tcwebhook.errors import TcwebhookError
from tcwebhook.transport.certs import client_context

log = structlog.get_logger(__name__)

FLOW_COOKIE = "tcwebhook_oidc"
FLOW_SECONDS = 600  # a sign-in must come back from the provider within this time
_METADATA_SECONDS = 3600.0
_KEYS_REFRESH_GAP = 30.0  # an unknown kid refreshes the key set at most this often
_MAX_DOCUMENT = 1024 * 1024


class OidcRefused(TcwebhookError):
    """The sign-in cannot succeed (a page tells the user why; nothing secret in the message)."""


class OidcUnavailable(TcwebhookError):
    """The identity provider cannot be reached or answered nonsense (try again later)."""


@dataclass(frozen=True, slots=True)
class _Metadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class _Key:
    key_type: str  # RSA or EC
    alg: str | None  # pinned by the key set, if it says
    public_key: Any


class OidcSignIn:
    """One configured provider: starts sign-ins and turns their callbacks into console users."""

    def __init__(self, settings: ConsoleOidcSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.issuer = settings.issuer_url
        self._verify = client_context(settings.ca_bundle, setting="[console.oidc] ca_bundle")
        self._transport = transport
        secret = settings.client_secret.get_secret_value().encode() if settings.client_secret else None
        # Without a client secret the key is this process's own: sign-ins must then come back to it.
        self._fernet = Fernet(_flow_key(secret or secrets.token_bytes(32)))
        self._metadata: _Metadata | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, _Key] = {}
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> tuple[str, str]:
        """(the provider's authorization URL to redirect to, the flow cookie's value)."""
        metadata = await self._discover()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
        s = self.settings
        url = prepare_grant_uri(
            metadata.authorization_endpoint, s.client_id, "code", redirect_uri=s.redirect_url,
            scope=" ".join(s.scopes), state=state, nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        )
        flow = {"state": state, "nonce": nonce, "verifier": verifier}
        return url, self._fernet.encrypt(json.dumps(flow).encode()).decode()

    # -- callback ------------------------------------------------------------------------------

    async def finish(self, params: dict[str, str], flow_cookie: str | None) -> User:
        """The console user of a provider's callback; OidcRefused or OidcUnavailable otherwise."""
        if "error" in params:
            # The provider's own refusal (user cancelled, consent missing): its code, shortened.
            raise OidcRefused(f"the identity provider refused the sign-in ({params['error'][:60]})")
        flow = self._flow(flow_cookie)
        if not secrets.compare_digest(params.get("state", ""), flow["state"]):
            raise OidcRefused("the sign-in does not match this browser's (state); start it again")
        code = params.get("code", "")
        if not code:
            raise OidcRefused("the identity provider sent no authorization code")
        token = await self._redeem(code, flow["verifier"])
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("the identity provider returned no ID token (is the openid scope granted?)")
        claims = await self._verify_id_token(id_token, flow["nonce"])
        return self._user(claims)

    def _flow(self, cookie: str | None) -> dict[str, str]:
        if not cookie:
            raise OidcRefused("the sign-in expired or was started in another browser; start it again")
        try:
            flow = json.loads(self._fernet.decrypt(cookie.encode(), ttl=FLOW_SECONDS))
        except (InvalidToken, ValueError):
            raise OidcRefused("the sign-in expired or was started in another browser; start it again") from None
        if not isinstance(flow, dict) or not all(isinstance(flow.get(k), str) for k in ("state", "nonce", "verifier")):
            raise OidcRefused("the sign-in cookie is not understood; start it again")
        return {k: flow[k] for k in ("state", "nonce", "verifier")}

    async def _verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError:
            raise OidcRefused("the ID token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise OidcRefused("the ID token's signing algorithm is not accepted")
        if "crit" in header:
            raise OidcRefused("the ID token has critical header extensions")
        key = await self._key(kid if isinstance(kid, str) else None)
        if key.key_type != ("EC" if alg.startswith("ES") else "RSA") or key.alg not in (None, alg):
            raise OidcRefused("the ID token's signing algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[alg],
                audience=self.settings.client_id,
                issuer=self.issuer,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )
        except InvalidTokenError as exc:
            raise OidcRefused(f"the ID token is not accepted ({type(exc).__name__})") from None
        if not secrets.compare_digest(str(claims.get("nonce")), nonce):
            raise OidcRefused("the ID token belongs to another sign-in (nonce)")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise OidcRefused("the ID token was issued to another client (azp)")
        return claims

    def _user(self, claims: dict[str, Any]) -> User:
        s = self.settings
        name = claims.get(s.username_claim) or claims.get("email") or claims.get("sub")
        username = str(name)[:200]
        held = claims.get(s.role_claim)
        values = {v for v in held if isinstance(v, str)} if isinstance(held, list) else (
            {held} if isinstance(held, str) else set()
        )
        role: Role | None = "operator" if values & set(s.operator_values) else (
            "viewer" if values & set(s.viewer_values) else None
        )
        if role is None:
            log.warning("console_oidc_no_role", username=username, claim=s.role_claim)
            raise OidcRefused(
                f"your account ({username}) has no tcwebhook role: ask an administrator to give it one "
                f"of the roles configured for the console ({s.role_claim} claim)"
            )
        return User(f"{username}", role)

    # -- provider documents --------------------------------------------------------------------

    async def _redeem(self, code: str, verifier: str) -> dict[str, Any]:
        """The token endpoint's answer to the code (client_secret_basic, or a public client)."""
        s = self.settings
        metadata = await self._discover()
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=s.redirect_url, code_verifier=verifier,
            **({} if s.client_secret else {"client_id": s.client_id}),
        )
        auth = (s.client_id, s.client_secret.get_secret_value()) if s.client_secret else None
        response = await self._request(
            "POST", metadata.token_endpoint, content=body, auth=auth,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        if response.status_code in (400, 401):
            try:
                error = str(json.loads(response.content).get("error", "invalid_grant"))
            except (ValueError, AttributeError):
                error = f"HTTP {response.status_code}"
            raise OidcRefused(f"the identity provider refused the code ({error[:60]})")
        return self._document(response)

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(
                verify=self._verify, timeout=self.settings.timeout, transport=self._transport, follow_redirects=False
            ) as client:
                return await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise OidcUnavailable(f"the identity provider is not reachable ({type(exc).__name__})") from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        return self._document(await self._request("GET", url, headers={"Accept": "application/json"}))

    @staticmethod
    def _document(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT:
            raise OidcUnavailable(f"the identity provider answered HTTP {response.status_code}")
        try:
            data = json.loads(response.content)
        except ValueError:
            raise OidcUnavailable("the identity provider's document is not JSON") from None
        if not isinstance(data, dict):
            raise OidcUnavailable("the identity provider's document is not a JSON object")
        return data

    async def _discover(self) -> _Metadata:
        async with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < _METADATA_SECONDS:
                return self._metadata
            data = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            if data.get("issuer") != self.issuer:
                raise OidcUnavailable("the provider's discovery document names another issuer")
            urls = [data.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
            if not all(isinstance(u, str) and u.startswith("https://") for u in urls):
                raise OidcUnavailable("the provider's discovery document lacks https endpoints")
            self._metadata = _Metadata(*urls)  # type: ignore[arg-type]
            self._metadata_at = time.monotonic()
            return self._metadata

    async def _key(self, kid: str | None) -> _Key:
        found = self._find(kid)
        if found is None and time.monotonic() - self._keys_at > _KEYS_REFRESH_GAP:
            metadata = await self._discover()
            data = await self._get_json(metadata.jwks_uri)
            keys: dict[str, _Key] = {}
            for entry in data.get("keys", []) if isinstance(data.get("keys"), list) else []:
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "d" in entry:
                    continue
                if entry.get("kty") not in ("RSA", "EC"):
                    continue  # never an HMAC key: its "signature" could be made with public data
                try:
                    jwk = jwt.PyJWK(entry)
                except (PyJWKError, ValueError, TypeError):
                    continue
                pinned = entry.get("alg")
                kid_of = str(entry.get("kid", ""))
                keys[kid_of] = _Key(str(entry["kty"]), pinned if isinstance(pinned, str) else None, jwk.key)
            self._keys, self._keys_at = keys, time.monotonic()
            found = self._find(kid)
        if found is None:
            raise OidcRefused("the ID token is signed by a key the provider does not publish")
        return found

    def _find(self, kid: str | None) -> _Key | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)


def _flow_key(secret: bytes) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tcwebhook console oidc flow").derive(secret)
    return base64.urlsafe_b64encode(derived)
