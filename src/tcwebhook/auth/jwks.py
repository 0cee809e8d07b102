"""The identity provider's signing keys (JWKS), cached for OAuth token validation.

The key set is fetched on first use, refetched when it is older than ``jwks_max_age`` and when a
token names a key id (``kid``) we do not hold — the IdP rolled its keys over. That refetch happens
at most once per ``jwks_refresh_interval``: random ``kid`` values cost an attacker nothing, so they
must not cost the IdP a request each. When the IdP cannot be reached the last key set keeps
serving; only with no key set at all (cold cache) is that a transient failure (503), because a
401 would make Tradecloud drop the event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from jwt import PyJWK
from jwt.exceptions import InvalidKeyError, PyJWKError

from tcwebhook.config import OAuthSettings
from tcwebhook.errors import TcwebhookError
from tcwebhook.transport.certs import client_context

log = structlog.get_logger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
COLD_RETRY = 2.0  # seconds between attempts while no key set was ever fetched


class JwksUnavailable(TcwebhookError):
    """No usable key set, or not the key a token names yet (transient, 503).

    ``retry_after``: seconds until the key set may be fetched again, when known.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public key of the set: its type (``RSA``/``EC``), the ``alg`` it is pinned to if any."""

    kid: str
    key_type: str
    alg: str | None
    public_key: Any


@dataclass(frozen=True, slots=True)
class KeyLookup:
    key: SigningKey | None
    reason: str = ""  # why there is no key (safe to show the sender)


class JwksCache:
    """Signing keys by ``kid``; ``lookup`` refreshes as described in the module docstring."""

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = settings.keys_url
        self._refresh_interval = settings.jwks_refresh_interval
        self._max_age = settings.jwks_max_age
        self._timeout = settings.jwks_timeout
        self._verify = client_context(settings.ca_bundle, setting="[auth.oauth] ca_bundle")
        self._clock = clock
        self._transport = transport
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._last_failed = False
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts made, for tests and metrics

    @property
    def warm(self) -> bool:
        return self._fetched_at is not None

    async def lookup(self, kid: str | None) -> KeyLookup:
        """The key for ``kid``; raises ``JwksUnavailable`` when no key set could ever be had."""
        if self._fetched_at is None:
            await self._refresh(cold=True)
        elif self._clock() - self._fetched_at > self._max_age:
            await self._refresh(cold=False)
        found = self._find(kid)
        if found is not None:
            return KeyLookup(found)
        if await self._refresh(cold=False):
            found = self._find(kid)
            if found is not None:
                return KeyLookup(found)
        elif self._last_failed:
            # Possibly a rollover we cannot see while the IdP is down: let the sender retry.
            raise JwksUnavailable("the identity provider's key set cannot be refreshed", self.next_refresh_in())
        elif kid is not None:
            # Refreshed too recently to ask again: the key may have been published since, and a
            # 401 would make Tradecloud drop the event. Its retry comes after the next refresh.
            raise JwksUnavailable("signing key not in the key set yet (kid)", self.next_refresh_in())
        return KeyLookup(None, "unknown signing key (kid)" if kid else "token has no kid")

    def next_refresh_in(self) -> float:
        """Seconds until a refresh is allowed again (0 when it is now)."""
        if self._tried_at is None:
            return 0.0
        return max(0.0, self._tried_at + self._refresh_interval - self._clock())

    def _find(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            # A kid-less token is only unambiguous against a single-key set.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, *, cold: bool) -> bool:
        """Fetch the key set unless rate-limited; True when a fetch succeeded just now."""
        async with self._lock:
            now = self._clock()
            if cold and self._fetched_at is not None:
                return True  # another request fetched it while we waited for the lock
            gap = min(self._refresh_interval, COLD_RETRY) if cold else self._refresh_interval
            if self._tried_at is not None and now - self._tried_at < gap:
                if cold:
                    raise JwksUnavailable("the identity provider's key set is not reachable yet")
                return False
            self._tried_at = now
            self.fetches += 1
            try:
                keys = await self._fetch()
            except JwksUnavailable as exc:
                self._last_failed = True
                if self._fetched_at is None:
                    raise
                log.warning("oauth_jwks_refresh_failed", url=self._url, error=str(exc), cached_keys=len(self._keys))
                return False
            self._keys = keys
            self._fetched_at = now
            self._last_failed = False
            log.info("oauth_jwks_loaded", url=self._url, keys=len(keys))
            return True

    async def _fetch(self) -> dict[str, SigningKey]:
        try:
            async with httpx.AsyncClient(
                verify=self._verify, timeout=self._timeout, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.get(self._url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"key set not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise JwksUnavailable(f"key set answered HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise JwksUnavailable("key set too large")
        try:
            data = json.loads(response.content)
        except ValueError:
            raise JwksUnavailable("key set is not JSON") from None
        entries = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise JwksUnavailable("key set has no keys list")
        keys: dict[str, SigningKey] = {}
        for entry in entries:
            key = _signing_key(entry)
            if key is not None:
                keys[key.kid] = key
        if not keys:
            raise JwksUnavailable("key set holds no usable signing keys")
        return keys


def _signing_key(entry: object) -> SigningKey | None:
    """A public RSA or EC signing key from one JWK; anything else (HMAC "oct", enc keys) is ignored."""
    if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC") or entry.get("use", "sig") != "sig":
        return None
    if "d" in entry:
        return None  # a private key has no business in a published set
    try:
        jwk = PyJWK(entry)
    except (PyJWKError, InvalidKeyError, ValueError, TypeError):
        return None
    alg = entry.get("alg")
    kid = entry.get("kid")
    return SigningKey(
        kid=kid if isinstance(kid, str) else "",
        key_type=str(entry["kty"]),
        alg=alg if isinstance(alg, str) else None,
        public_key=jwk.key,
    )
