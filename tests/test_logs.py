from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr

from tcwebhook.config import Settings
from tcwebhook.logs import REDACTED, configure_logging

TOKEN = "log-token-0123456789abcdef"
ODD_PASSWORD = 'pa"ss\\wörd-42-0123456789'  # needs escaping in JSON, and is not ASCII


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    settings = Settings(
        auth={"bearer_tokens": [TOKEN], "basic": [{"username": "tc", "password": ODD_PASSWORD}]},
        logging={"level": "info", "format": "json"},
    )
    configure_logging(settings, stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:], level = saved
    root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.isascii()
    return [json.loads(line) for line in text.splitlines()]


class TestJsonLines:
    """One ASCII JSON object per line, with the usual structlog fields."""

    def test_fields(self, lines: io.StringIO) -> None:
        structlog.get_logger("t").info("request", status=202, latency_ms=1.5, peer="127.0.0.1", name="Müller")
        (record,) = records(lines)
        assert record["event"] == "request"
        assert record["status"] == 202
        assert record["level"] == "info"
        assert record["name"] == "Müller"
        assert str(record["timestamp"]).endswith("Z")

    def test_values_json_cannot_hold(self, lines: io.StringIO) -> None:
        structlog.get_logger("t").info("odd", big=2**80, keys={1: "a"}, obj=object())
        (record,) = records(lines)
        assert record["big"] == 2**80
        assert record["keys"] == {"1": "a"}
        assert str(record["obj"]).startswith("<object object")

    def test_exception(self, lines: io.StringIO) -> None:
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            structlog.get_logger("t").exception("failed")
        (record,) = records(lines)
        assert "ValueError" in str(record["exception"])
        assert TOKEN not in lines.getvalue()


class TestSecrets:
    """No configured secret reaches a line, however it is nested, escaped or rendered."""

    @pytest.mark.parametrize("secret", [TOKEN, ODD_PASSWORD])
    def test_everywhere(self, lines: io.StringIO, secret: str) -> None:
        log = structlog.get_logger("t")
        log.info("plain", value=secret)
        log.info("nested", value={"a": [f"x{secret}y"]})
        log.info("repr", value=ValueError(secret))
        log.info(f"in the event {secret}")
        text = lines.getvalue()
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            assert form not in text
        assert text.count(REDACTED) >= 4
        assert len(records(lines)) == 4

    def test_stdlib_loggers_too(self, lines: io.StringIO) -> None:
        logging.getLogger("uvicorn.error").warning("token %s", TOKEN)
        assert TOKEN not in lines.getvalue()
        assert REDACTED in lines.getvalue()


class TestConsoleSecrets:
    """Console passwords and password hashes are secrets for the scrubber too."""

    def test_listed(self) -> None:
        from tcwebhook.logs import secret_values

        settings = Settings(
            console={
                "users": [
                    {"username": "a", "password": "clear-console-password"},
                    {"username": "b", "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"},
                ]
            }
        )
        values = secret_values(settings)
        assert "clear-console-password" in values
        assert "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA" in values


class TestSecretsFoundByType:
    """Every SecretStr of the settings model is scrubbed, with its Basic and URL forms."""

    def test_every_configured_secret_listed(self) -> None:
        from tcwebhook.logs import secret_values

        settings = Settings(
            tls={"acme_eab_hmac_key": "eab-hmac-key-0123456789"},
            tradecloud={"username": "api-user", "password": "tc-api-password-0123"},
            store={"url": "postgresql://hook:store%40pass-0123@db.internal:5432/hook"},
            sinks=[
                {"type": "http", "name": "erp", "url": "https://erp:url-pass-0123@erp.internal/in",
                 "basic_username": "erp-user", "basic_password": "erp-basic-pass-0123"},
                {"type": "http", "name": "other", "url": "https://erp.internal/in", "bearer_token": "erp-bearer-0123"},
            ],
        )
        values = secret_values(settings)
        for expected in ("eab-hmac-key-0123456789", "tc-api-password-0123", "store@pass-0123", "store%40pass-0123",
                         "url-pass-0123", "erp-basic-pass-0123", "erp-bearer-0123"):
            assert expected in values
        assert base64.b64encode(b"api-user:tc-api-password-0123").decode() in values
        assert base64.b64encode(b"erp-user:erp-basic-pass-0123").decode() in values

    def test_sftp_amqp_and_sql_sink_secrets(self, tmp_path: Path) -> None:
        from tcwebhook.logs import secret_values

        settings = Settings(
            sinks=[
                {"type": "sftp", "name": "drop", "host": "sftp.erp", "username": "tc", "password": "sftp-pass-0123",
                 "known_hosts": str(tmp_path / "known_hosts")},
                {"type": "sftp", "name": "keyed", "host": "sftp.erp", "username": "tc",
                 "private_key": str(tmp_path / "key"), "passphrase": "key-phrase-0123",
                 "known_hosts": str(tmp_path / "known_hosts")},
                {"type": "amqp", "name": "mq", "url": "amqps://tc:mq%2Fpass-0123@mq.erp/erp"},
                {"type": "sql", "name": "db", "url": "mariadb://tc:db-pass-0123@db.erp/staging"},
            ],
        )
        values = secret_values(settings)
        for expected in ("sftp-pass-0123", "key-phrase-0123", "mq/pass-0123", "mq%2Fpass-0123", "db-pass-0123"):
            assert expected in values

    def test_a_new_secret_field_is_scrubbed(self) -> None:
        """A section added to the model with a SecretStr needs no change to the scrubber."""

        class VaultSettings(BaseModel):
            model_config = ConfigDict(frozen=True)
            username: str = "vault-user"
            token: SecretStr = SecretStr("vault-token-0123456789")

        class Extended(Settings):
            vault: VaultSettings = VaultSettings()

        stream = io.StringIO()
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        configure_logging(Extended(logging={"level": "info", "format": "json"}), stream=stream)
        try:
            basic = base64.b64encode(b"vault-user:vault-token-0123456789").decode()
            structlog.get_logger("t").info("vault", token="vault-token-0123456789", header=f"Basic {basic}")
        finally:
            structlog.reset_defaults()
            root.handlers[:], level = saved
            root.setLevel(level)
        text = stream.getvalue()
        assert "vault-token-0123456789" not in text
        assert basic not in text
        assert json.loads(text.splitlines()[-1])["token"] == REDACTED

    def test_acme_eab_key_scrubbed_from_lines(self) -> None:
        stream = io.StringIO()
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        settings = Settings(tls={"acme_eab_hmac_key": "eab-hmac-key-0123456789"}, logging={"format": "json"})
        configure_logging(settings, stream=stream)
        try:
            structlog.get_logger("t").warning("acme.order_failed", error="bad key eab-hmac-key-0123456789")
        finally:
            structlog.reset_defaults()
            root.handlers[:], level = saved
            root.setLevel(level)
        assert "eab-hmac-key-0123456789" not in stream.getvalue()
        assert REDACTED in stream.getvalue()
