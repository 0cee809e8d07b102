"""Token expiry parsing and token hygiene."""

from __future__ import annotations

import base64
import json

import pytest

from tcwebhook.tradecloud_api.auth.tokens import TokenPair, jwt_expiry


def _jwt(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


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
