"""Store passwords never reach the screen, a log line or an error, in whatever form the URL has them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.support.servers import CLI, refused_port

SECRET = "Zq9+x/w=Pk"  # a password with the characters that break naive URL handling


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def config_with(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "tcwebhook.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        "[auth]\nbearer_tokens = [\"token-0123456789abcdef\"]\n"
        f"[store]\nurl = '''{url}'''\nconnect_timeout = 2\n"
    )
    return path


def assert_no_secret(done: subprocess.CompletedProcess[str], *secrets: str) -> None:
    both = done.stdout + done.stderr
    for secret in secrets:
        for part in {secret, secret.replace("/", "%2F"), secret.split("/")[0], secret.split("/")[-1]}:
            assert part not in both, both
    assert "Traceback" not in both, both


REFUSED = [
    pytest.param(f"postgresql://tc:{SECRET}@127.0.0.1:5/tc", id="unencoded-slash"),
    pytest.param(f"host=127.0.0.1 port=5 user=tc password={SECRET} dbname=tc", id="key-value"),
    pytest.param(f"host=127.0.0.1 password='{SECRET} x' dbname=tc", id="key-value-quoted"),
    pytest.param("postgresql://tc:Pa%zzss-Zq9@127.0.0.1:5/tc", id="malformed-escape"),
    pytest.param("postgresql://tc:Zq9Pk-secret@127.0.0.1:notaport/tc", id="bad-port"),
    pytest.param("postgresql://127.0.0.1:5/tc?user=tc&password=Zq9Pk-secret=", id="query-equals"),
    pytest.param("postgresql://127.0.0.1:5/tc?user=tc&password=Zq9Pk-secret&bogus=1", id="unknown-parameter"),
]


class TestRefusedAtStartup:
    """A store URL that cannot be used as written stops start-up: exit 3, one sentence, no password."""

    @pytest.mark.parametrize("url", REFUSED)
    @pytest.mark.parametrize("command", ["check-config", "db status"])
    def test_refused(self, tmp_path: Path, url: str, command: str) -> None:
        config = config_with(tmp_path, url)
        done = cli(*command.split(), "--config", str(config), cwd=tmp_path)
        assert done.returncode == 3, done.stdout + done.stderr
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert len(lines) == 1 and "store.url" in lines[0], lines
        assert_no_secret(done, SECRET, "Pa%zzss", "Zq9Pk-secret")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tcwebhook.toml"]  # no SQLite file made

    @pytest.mark.parametrize("url", [REFUSED[1], REFUSED[3]])
    def test_refused_by_dev_from_the_environment(self, tmp_path: Path, url: str) -> None:
        done = cli("dev", "--data-dir", str(tmp_path / "data"), "--port", "0", cwd=tmp_path,
                   env={"TCWEBHOOK_STORE__URL": url})
        assert done.returncode == 3, done.stdout + done.stderr
        assert_no_secret(done, SECRET, "Pa%zzss", "Zq9Pk-secret")


class TestCopy:
    """`db copy` checks both URLs first, and names them without their passwords."""

    @pytest.mark.parametrize("url", [REFUSED[0], REFUSED[1], REFUSED[3]])
    def test_refused(self, tmp_path: Path, url: str) -> None:
        done = cli("db", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'copy.db'}", "-q", cwd=tmp_path)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "--from" in done.stderr
        assert_no_secret(done, SECRET, "Pa%zzss")


class TestRedactedWhenTheStoreIsDown:
    """A valid URL whose server refuses: the error names the store without its password."""

    @pytest.mark.parametrize("form", ["userinfo", "query"])
    def test_db_status(self, tmp_path: Path, form: str) -> None:
        encoded = SECRET.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
        in_query = SECRET.replace("/", "%2F").replace("=", "%3D")  # "+" as written: libpq keeps it
        with refused_port() as port:
            url = (f"postgresql://tc:{encoded}@127.0.0.1:{port}/tc" if form == "userinfo"
                   else f"postgresql://127.0.0.1:{port}/tc?user=tc&password={in_query}")
            done = cli("db", "status", "--config", str(config_with(tmp_path, url)), cwd=tmp_path)
        assert done.returncode != 0
        assert "127.0.0.1" in done.stdout + done.stderr
        assert_no_secret(done, SECRET, encoded)

    def test_pgpassword(self, tmp_path: Path) -> None:
        with refused_port() as port:
            done = cli("db", "status", "--config", str(config_with(tmp_path, f"postgresql://tc@127.0.0.1:{port}/tc")),
                       cwd=tmp_path, env={"PGPASSWORD": SECRET})
        assert done.returncode != 0
        assert_no_secret(done, SECRET)
