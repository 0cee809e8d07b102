"""Back-off arithmetic and token expiry parsing."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tcwebhook.tradecloud_api.auth.tokens import TokenPair, jwt_expiry
from tcwebhook.tradecloud_api.retry import Backoff, retry_after_seconds


def _jwt(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


class TestBackoff:
    """Exponential, capped, jittered, and Retry-After aware."""

    def test_grows_and_caps(self) -> None:
        b = Backoff(initial=1, multiplier=2, maximum=5, jitter=0)
        assert [b.delay(n) for n in range(5)] == [1, 2, 4, 5, 5]

    def test_jitter_stays_within_bounds(self) -> None:
        b = Backoff(initial=10, maximum=100, jitter=0.2)
        assert all(8 <= b.delay(0) <= 12 for _ in range(200))

    def test_retry_after(self) -> None:
        b = Backoff(initial=1, maximum=20, jitter=0)
        assert b.delay(0, retry_after=7) == 7
        assert b.delay(0, retry_after=3600) == 20

    @pytest.mark.parametrize(
        ("header", "seconds"), [("5", 5.0), ("0", 0.0), ("-1", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)]
    )
    def test_retry_after_header(self, header: str, seconds: float | None) -> None:
        assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": header})) == seconds
        assert retry_after_seconds(httpx.Response(503)) is None


class TestJwtExpiry:
    """``exp`` is read when present; anything else means 'unknown'."""

    @pytest.mark.parametrize(
        ("token", "exp"),
        [
            (_jwt({"exp": 1700000000}), 1700000000.0),
            (_jwt({"exp": True}), None),
            (_jwt({"sub": "x"}), None),
            (_jwt([1]), None),
            ("opaque-token", None),
            ("a.!!!.c", None),
        ],
    )
    def test_expiry(self, token: str, exp: float | None) -> None:
        assert jwt_expiry(token) == exp

    def test_repr_hides_tokens(self) -> None:
        pair = TokenPair("secret-access", "secret-refresh", 1.0, 2.0, None)
        assert "secret" not in repr(pair) and "secret" not in str(pair)
