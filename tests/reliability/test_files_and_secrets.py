"""Files, config and secrets: private file modes, https to the API, long webhook secrets, scrubbing.

The test process runs as root, so modes are checked with ``os.stat``, never by trying to read.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from tests.reliability.conftest import FAST_DELIVERY, order_event, wait_until
from tests.support.files import mode_of
from tests.support.servers import CLI, ServerFactory

from tcwebhook.config import Settings
from tcwebhook.logs import REDACTED, configure_logging

pytestmark = pytest.mark.reliability


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """The usual default umask (022): files would be world-readable unless we set modes."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


class TestFileModes:
    """Data directory 0700; inbox.db, -wal, -shm, outbox files 0600 (0640 when group_readable)."""

    @pytest.mark.usefixtures("wide_umask")
    def test_created_private(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        outbox, shared = tmp_path / "outbox", tmp_path / "shared" / "erp"
        extra = (
            FAST_DELIVERY
            + f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{outbox}"\n'
            + f'[[sinks]]\nname = "erp-group"\ntype = "files"\ndirectory = "{shared}"\ngroup_readable = true\n'
        )
        server = server_factory.start("modes", extra=extra)
        with server.client() as client:
            r = client.post(server.url_orders, json=order_event(str(uuid.uuid4()), 1), headers=server.bearer())
            assert r.status_code == 202, r.text
        assert wait_until(lambda: any(outbox.glob("*.json")) and any(shared.glob("*.json")), 15)

        assert mode_of(server.data_dir) == 0o700
        for name in ("inbox.db", "inbox.db-wal", "inbox.db-shm"):
            assert mode_of(server.data_dir / name) == 0o600, name
        assert mode_of(outbox) == 0o700
        assert [mode_of(p) for p in outbox.iterdir()] == [0o600]
        assert mode_of(shared) == 0o750
        assert [mode_of(p) for p in shared.iterdir()] == [0o640]

    @pytest.mark.usefixtures("wide_umask")
    def test_existing_data_dir_tightened(self, server_factory: ServerFactory) -> None:
        config, port = server_factory.write_config(server_factory.base / "old")
        data = server_factory.base / "old" / "data"
        data.mkdir(mode=0o755)
        os.chmod(data, 0o755)  # noqa: S103 - the wide mode of an older install, to be narrowed
        server = server_factory.start_with(config, port, server_factory.base / "old")
        assert mode_of(server.data_dir) == 0o700
        assert mode_of(server.data_dir / "inbox.db") == 0o600

    @pytest.mark.usefixtures("wide_umask")
    def test_init_force_sets_0600(self, tmp_path: Path) -> None:
        target = tmp_path / "tcwebhook.toml"
        target.write_text("old = 1\n")
        os.chmod(target, 0o644)
        done = _run("init", str(target), "--force")
        assert done.returncode == 0, done.stderr
        assert "mode 0600" in done.stdout
        assert mode_of(target) == 0o600
        fresh = tmp_path / "new.toml"
        assert _run("init", str(fresh)).returncode == 0
        assert mode_of(fresh) == 0o600


def _check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / f"{uuid.uuid4().hex}.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n' + text)
    return _run("check-config", "--config", str(config), cwd=tmp_path)


LONG = "0123456789abcdef-long-enough"


class TestConfigRefusals:
    """Start-up refuses plain-http API bases and short webhook credentials: one sentence, exit 3."""

    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            (f'[auth]\nbearer_tokens = ["{LONG}", "short-token"]\n', "at least 16 characters"),
            (f'[[auth.basic]]\nusername = "tc"\npassword = "{"x" * 15}"\n', "at least 16 characters"),
            (
                f'[auth]\nbearer_tokens = ["{LONG}"]\n[tradecloud]\napi_base = "http://api.tradecloud1.com/v2"\n'
                'username = "u"\npassword = "p"\n',
                "https",
            ),
            (
                f'[auth]\nbearer_tokens = ["{LONG}"]\n[tradecloud]\napi_base = "ftp://api.tradecloud1.com/v2"\n',
                "https",
            ),
        ],
    )
    def test_refused(self, tmp_path: Path, text: str, needle: str) -> None:
        done = _check_config(tmp_path, text)
        assert done.returncode == 3, (done.stdout, done.stderr)
        message = done.stderr.strip()
        assert needle in message
        assert "\n" not in message
        assert "short-token" not in message

    def test_loopback_http_and_short_api_password_allowed(self) -> None:
        settings = Settings(
            auth={"bearer_tokens": [LONG]},
            tradecloud={"api_base": "http://127.0.0.1:9/v2", "username": "u", "password": "p"},
        )
        assert settings.tradecloud.configured


class TestScrubber:
    """Every configured secret is scrubbed from log lines, whatever its length."""

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_short_api_password_scrubbed(self, fmt: str) -> None:
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        stream = io.StringIO()
        settings = Settings(
            auth={"bearer_tokens": [LONG]},
            tradecloud={"username": "integration@example.com", "password": "Zq9"},
            sinks=[{"name": "erp", "type": "http", "url": "https://erp.example", "bearer_token": "k3y"}],
            console={"users": [{"username": "ops", "password": "c0n"}]},
            logging={"level": "info", "format": fmt},
        )
        try:
            configure_logging(settings, stream=stream)
            structlog.get_logger("t").warning("login_failed", detail="password Zq9 refused", token="k3y", pw="c0n")
            logging.getLogger("uvicorn.error").warning("api said Zq9")
        finally:
            structlog.reset_defaults()
            root.handlers[:], level = saved
            root.setLevel(level)
        text = stream.getvalue()
        assert "Zq9" not in text and "k3y" not in text and "c0n" not in text
        assert REDACTED in text
