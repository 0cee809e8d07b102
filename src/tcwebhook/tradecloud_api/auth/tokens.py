"""The access/refresh token pair of the integration user, kept fresh.

Tradecloud hands out an access token (documented lifetime 1 h) and a single-use refresh token
(24 h). We refresh proactively every ``refresh_interval`` and shortly before the access token's
``exp`` (read from the JWT without verifying it: the API verifies, we only schedule). A token the
API rejects with 401 is replaced by a fresh login. Tokens never reach a log line or an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from pydantic import SecretStr

from tcwebhook.errors import TradecloudApiError

log = structlog.get_logger(__name__)

LOGIN_PATH = "/authentication/login"
REFRESH_PATH = "/authentication/refresh"
LOGOUT_PATH = "/authentication/logout"

# When a refresh fails for a passing reason and the access token is still good, try again later.
REFRESH_RETRY_DELAY = 30.0


class Sender(Protocol):
    """Sends one unauthenticated request to the API base (retrying passing trouble if asked)."""

    async def __call__(
        self, method: str, path: str, *, headers: Mapping[str, str], retry: bool = True
    ) -> httpx.Response: ...


@dataclass(frozen=True, slots=True, repr=False)
class TokenPair:
    access: str
    refresh: str | None
    obtained_at: float
    access_expires_at: float | None
    refresh_expires_at: float | None

    def __repr__(self) -> str:
        expires = self.access_expires_at
        return f"TokenPair(obtained_at={self.obtained_at}, access_expires_at={expires})"


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, or None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


def _header_token(response: httpx.Response, name: str) -> str | None:
    value = response.headers.get(name, "").strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value or None


class TokenManager:
    """Hands out a valid bearer token, logging in, refreshing or re-logging in as needed."""

    def __init__(
        self,
        send: Sender,
        username: str,
        password: SecretStr,
        *,
        refresh_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._send = send
        self._username = username
        self._password = password
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._pair: TokenPair | None = None
        self._next_refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.logins = 0
        self.refreshes = 0

    @property
    def logged_in(self) -> bool:
        return self._pair is not None

    async def bearer(self) -> str:
        """A token to send now; logs in on first use and refreshes when one is due."""
        pair = self._pair
        if pair is not None and not self._refresh_due(pair):
            return pair.access
        async with self._lock:
            pair = self._pair
            if pair is None:
                return (await self._login()).access
            if self._refresh_due(pair):
                return (await self._refresh(pair)).access
            return pair.access

    async def renew_after_rejection(self, rejected: str) -> str:
        """The API refused ``rejected`` with 401: log out and in again (once for all callers)."""
        async with self._lock:
            pair = self._pair
            if pair is not None and pair.access != rejected:
                return pair.access  # another caller already renewed it
            log.info("tradecloud_token_rejected", action="relogin")
            if pair is not None:
                await self._logout(pair)
            return (await self._login()).access

    async def logout(self) -> None:
        """Invalidate the refresh token on the API (best effort) and forget the pair."""
        async with self._lock:
            pair = self._pair
            if pair is not None:
                await self._logout(pair)

    def _refresh_due(self, pair: TokenPair) -> bool:
        now = self._clock()
        if now < self._next_refresh_at:
            return False
        if now >= pair.obtained_at + self._refresh_interval:
            return True
        if pair.access_expires_at is None:
            return False
        lifetime = max(0.0, pair.access_expires_at - pair.obtained_at)
        return now >= pair.access_expires_at - min(60.0, lifetime / 10)

    def _expired(self, pair: TokenPair) -> bool:
        return pair.access_expires_at is not None and self._clock() >= pair.access_expires_at

    def _store(self, response: httpx.Response, *, fallback_refresh: str | None) -> TokenPair | None:
        access = _header_token(response, "set-authorization")
        if access is None:
            return None
        refresh = _header_token(response, "set-refresh-token") or fallback_refresh
        now = self._clock()
        pair = TokenPair(
            access=access,
            refresh=refresh,
            obtained_at=now,
            access_expires_at=jwt_expiry(access),
            refresh_expires_at=jwt_expiry(refresh) if refresh else None,
        )
        self._pair = pair
        self._next_refresh_at = 0.0
        return pair

    async def _login(self) -> TokenPair:
        self._pair = None
        credentials = f"{self._username}:{self._password.get_secret_value()}".encode()
        basic = "Basic " + base64.b64encode(credentials).decode("ascii")
        response = await self._send("GET", LOGIN_PATH, headers={"Authorization": basic})
        if response.status_code == 401:
            raise TradecloudApiError("Tradecloud login rejected: check [tradecloud] username/password (HTTP 401)")
        if response.status_code == 403:
            raise TradecloudApiError("Tradecloud login forbidden (HTTP 403): the user needs the integration role")
        if response.status_code != 200:
            raise TradecloudApiError(f"Tradecloud login failed: HTTP {response.status_code}")
        pair = self._store(response, fallback_refresh=None)
        if pair is None:
            raise TradecloudApiError("Tradecloud login answered without a Set-Authorization header")
        self.logins += 1
        log.info("tradecloud_login", username=self._username)
        return pair

    async def _refresh(self, pair: TokenPair) -> TokenPair:
        expired = pair.refresh_expires_at is not None and self._clock() >= pair.refresh_expires_at
        if pair.refresh is None or expired:
            return await self._login()
        try:
            response = await self._send("GET", REFRESH_PATH, headers={"Refresh-Token": pair.refresh}, retry=False)
        except TradecloudApiError as exc:
            return await self._refresh_failed(pair, str(exc))
        if response.status_code == 200:
            fresh = self._store(response, fallback_refresh=None)
            if fresh is not None:
                self.refreshes += 1
                log.debug("tradecloud_token_refreshed")
                return fresh
            return await self._login()
        if response.status_code in (400, 401, 403):
            # Used, expired or revoked refresh token: only a new login helps.
            return await self._login()
        return await self._refresh_failed(pair, f"HTTP {response.status_code}")

    async def _refresh_failed(self, pair: TokenPair, reason: str) -> TokenPair:
        if self._expired(pair):
            return await self._login()
        log.warning("tradecloud_refresh_failed", reason=reason, retry_in=REFRESH_RETRY_DELAY)
        self._next_refresh_at = self._clock() + REFRESH_RETRY_DELAY
        return pair

    async def _logout(self, pair: TokenPair) -> None:
        self._pair = None
        if pair.refresh is None:
            return
        try:
            response = await self._send("POST", LOGOUT_PATH, headers={"Refresh-Token": pair.refresh}, retry=False)
        except TradecloudApiError as exc:
            log.info("tradecloud_logout_failed", reason=str(exc))
            return
        if response.status_code >= 300:
            log.info("tradecloud_logout_failed", reason=f"HTTP {response.status_code}")
