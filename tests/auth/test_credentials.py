from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from tcwebhook.auth import Authenticator, FailureLimit, FailureLog, redact_headers
from tcwebhook.config import AuthSettings, BasicCredential


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        AuthSettings(
            bearer_tokens=(SecretStr("old-token-123456"), SecretStr("new-token-654321")),
            basic=(
                BasicCredential(username="tc", password=SecretStr("pw-one-xyz-0123456789")),
                BasicCredential(username="tc2", password=SecretStr("pw:with:colons:0123456789")),
            ),
        )
    )


class TestAuthenticator:
    """Basic and Bearer credentials are checked against every configured value."""

    def test_both_bearer_tokens_valid_during_rotation(self, auth: Authenticator) -> None:
        assert auth.check(b"Bearer old-token-123456").ok
        assert auth.check(b"Bearer new-token-654321").ok
        assert auth.check(b"bearer new-token-654321").ok  # scheme is case-insensitive

    def test_basic_credentials_any_entry(self, auth: Authenticator) -> None:
        assert auth.check(basic("tc", "pw-one-xyz-0123456789")).principal == "tc"
        assert auth.check(basic("tc2", "pw:with:colons:0123456789")).principal == "tc2"

    @pytest.mark.parametrize(
        "header",
        [
            None,
            b"",
            b"Bearer",
            b"Bearer wrong",
            b"Bearer old-token-12345",
            b"Basic !!!notbase64",
            b"Basic " + base64.b64encode(b"no-colon"),
            basic("tc", "wrong"),
            basic("tc2", "pw-one-xyz-0123456789"),
            b"Digest username=tc",
            b"Token old-token-123456",
        ],
    )
    def test_refused(self, auth: Authenticator, header: bytes | None) -> None:
        result = auth.check(header)
        assert not result.ok
        assert result.error
        assert "old-token" not in result.error and "pw-one" not in result.error

    def test_challenges_name_configured_schemes(self, auth: Authenticator) -> None:
        assert auth.challenges() == (b'Basic realm="tcwebhook", charset="UTF-8"', b'Bearer realm="tcwebhook"')
        bad = auth.check(b"Bearer nope")
        assert b'Bearer realm="tcwebhook", error="invalid_token"' in auth.challenges(bad)

    def test_only_bearer_configured(self) -> None:
        only = Authenticator(AuthSettings(bearer_tokens=(SecretStr("tok-abcdef-0123456789"),)))
        assert only.challenges() == (b'Bearer realm="tcwebhook"',)
        assert not only.check(basic("a", "b")).ok


class TestRedaction:
    """Stored headers keep the scheme but never the credential."""

    def test_authorization_redacted(self) -> None:
        headers = redact_headers(
            [(b"authorization", b"Bearer sekrit"), (b"content-type", b"application/json"), (b"cookie", b"a=b")]
        )
        assert headers == {
            "authorization": "Bearer [redacted]",
            "content-type": "application/json",
            "cookie": "[redacted]",
        }


class TestFailureLog:
    """Repeated failures from one peer are logged once per window."""

    def test_once_per_window(self) -> None:
        now = [0.0]
        failures = FailureLog(60, clock=lambda: now[0])
        assert failures.record("10.0.0.1", "bad")
        assert not failures.record("10.0.0.1", "bad")
        assert failures.record("10.0.0.2", "bad")
        now[0] = 61
        assert failures.record("10.0.0.1", "bad")


class TestFailureLimit:
    """Failures per address in a fixed window; past the limit the seconds left in the window."""

    def test_limit_and_window(self) -> None:
        now = [0.0]
        limit = FailureLimit(3, 10, clock=lambda: now[0])
        assert [limit.failed("10.0.0.1") for _ in range(3)] == [None, None, None]
        now[0] = 4
        assert limit.failed("10.0.0.1") == 6
        assert limit.failed("10.0.0.2") is None
        now[0] = 10
        assert limit.failed("10.0.0.1") is None  # a new window

    def test_off(self) -> None:
        limit = FailureLimit(0, 10)
        assert all(limit.failed("10.0.0.1") is None for _ in range(100))

    def test_bounded_memory_keeps_recent_windows(self) -> None:
        now = [0.0]
        limit = FailureLimit(1, 1000, clock=lambda: now[0])
        limit.failed("attacker")
        addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(20_000 // 256 * 256)]
        for i, address in enumerate(addresses):
            now[0] = 1 + i / 100
            limit.failed(address)
        assert len(limit._peers) <= 10_000
        assert limit.failed(addresses[-1]) is not None  # a recent address is still counted
