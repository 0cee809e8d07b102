"""`tcwebhook console` alone, `console hash-password`, the console in `dev`, and its start-up checks."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from tests.support.polling import eventually
from tests.support.servers import CLI, RunningServer, ServerFactory, logged_port

from tcwebhook.console.app import SESSION_COOKIE


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False, input=stdin)


def console_login(url: str, ca: Path, username: str, password: str) -> httpx.Client:
    client = httpx.Client(verify=str(ca), timeout=10, base_url=url)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert r.status_code == 303, r.text
    assert client.cookies.get(SESSION_COOKIE)
    return client


class TestHashPassword:
    """`console hash-password` prints an argon2 hash that the config accepts."""

    def test_hash_from_stdin(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        out = cli("console", "hash-password", stdin="s3cret-pass\n")
        assert out.returncode == 0, out.stderr
        hashed = out.stdout.strip()
        assert hashed.startswith("$argon2id$")
        assert PasswordHasher().verify(hashed, "s3cret-pass")
        assert "s3cret-pass" not in out.stdout + out.stderr

    def test_empty_password_refused(self) -> None:
        assert cli("console", "hash-password", stdin="\n").returncode == 1


class TestStartupChecks:
    """A console without users, or with a hash that is not argon2, stops start-up with exit 3."""

    def test_no_users(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "c", extra="[console]\nenabled = true\n")
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 3 and "[[console.users]]" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1

    def test_not_an_argon2_hash(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        extra = '[console]\nenabled = true\n[[console.users]]\nusername = "a"\npassword_hash = "plain"\n'
        config, _ = server_factory.write_config(tmp_path / "c", extra=extra)
        out = cli("check-config", "--config", str(config))
        assert out.returncode == 3 and "argon2" in out.stderr


class TestConsoleAlone:
    """`tcwebhook console --config` serves the console over HTTPS on the store, without receiving."""

    def test_serves_and_stops(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        hashed = cli("console", "hash-password", stdin="op-password-1\n").stdout.strip()
        extra = (
            '[console]\nport = 0\n'
            f'[[console.users]]\nusername = "op"\npassword_hash = "{hashed}"\nrole = "operator"\n'
        )
        directory = tmp_path / "alone"
        config, _ = server_factory.write_config(directory, extra=extra)
        log = directory / "console.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, "console", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"https://localhost:{logged_port(log, 'console_listening', proc)}"
            def answers() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text())
                try:
                    httpx.get(url + "/login", verify=str(directory / "ca.pem"), timeout=2)
                except httpx.HTTPError:
                    return False
                return True

            eventually(answers, 30, interval=0.1, what="the console's login page")
            client = console_login(url, directory / "ca.pem", "op", "op-password-1")
            page = client.get("/")
            client.close()
            assert page.status_code == 200 and "Overview" in page.text
            assert "console_clear_text_passwords" not in log.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
        assert code == 0, log.read_text()


class TestDevConsole:
    """`tcwebhook dev` turns the console on and prints its URL and login."""

    def test_banner_login_works(self, dev_server: RunningServer) -> None:
        text = dev_server.logs()
        url = re.search(r"operator console\s+(https://localhost:\d+)/", text)
        login = re.search(r"console login\s+(\S+) / (\S+)", text)
        assert url and login, text
        assert "console_clear_text_passwords" in text  # dev uses a clear-text password, and says so
        client = console_login(url.group(1), dev_server.ca_path, login.group(1), login.group(2))
        page = client.get("/events")
        client.close()
        assert page.status_code == 200 and "admin" in page.text and "(operator)" in page.text
