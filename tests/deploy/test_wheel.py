"""The built wheel works on its own: a clean venv, `tcwebhook init`, then `tcwebhook serve`.

Nothing may depend on the repository checkout (package data such as the console's templates
must be inside the wheel), so the package is built, installed into a fresh virtual environment
with the pinned versions, and run from an unrelated directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import trustme
from tests.support.polling import eventually
from tests.support.servers import logged_port

REPO = Path(__file__).resolve().parents[2]
TOKEN = "wheel-token-0123456789abcdef"

pytestmark = pytest.mark.timeout(900)


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env, check=False)
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def test_wheel_in_a_clean_venv(tmp_path: Path, test_ca: trustme.CA) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("tcwebhook-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tcwebhook/py.typed" in names
    assert "tcwebhook/console/templates/login.html" in names
    assert "tcwebhook/transport/openssl.cnf" in names
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", REPO / "constraints.txt", wheel,
        cwd=tmp_path)
    cli = venv / "bin" / "tcwebhook"

    site = tmp_path / "site"  # an unrelated directory: no checkout, no source tree
    site.mkdir()
    config = site / "tcwebhook.toml"
    run(cli, "init", config, cwd=site)
    text = config.read_text()
    assert "bearer_tokens" in text

    leaf = test_ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(site / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(site / "key.pem"))
    (site / "key.pem").chmod(0o600)
    test_ca.cert_pem.write_to_path(str(site / "ca.pem"))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "TCWEBHOOK_SERVER__HOST": "127.0.0.1",
        "TCWEBHOOK_SERVER__PORT": "0",  # the ports it binds are read from its log
        "TCWEBHOOK_TLS__CERTFILE": str(site / "cert.pem"),
        "TCWEBHOOK_TLS__KEYFILE": str(site / "key.pem"),
        "TCWEBHOOK_TLS__TRUST_STORE": str(site / "ca.pem"),
        "TCWEBHOOK_AUTH__BEARER_TOKENS": f'["{TOKEN}"]',
        "TCWEBHOOK_CONSOLE__ENABLED": "true",
        "TCWEBHOOK_CONSOLE__PORT": "0",
        "TCWEBHOOK_CONSOLE__USERS": '[{"username": "admin", "password": "console-password-0123", "role": "viewer"}]',
    }
    assert "OK" in subprocess.run([cli, "check-config", "--config", config], cwd=site, env=env, capture_output=True,
                                  text=True, timeout=120, check=False).stdout
    log = (site / "serve.log").open("wb")
    proc = subprocess.Popen([cli, "serve", "--config", config], cwd=site, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        port = logged_port(site / "serve.log", "listening", proc, timeout=60)
        console_port = logged_port(site / "serve.log", "console_listening", proc, timeout=60)
        verify = str(site / "ca.pem")
        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((site / "serve.log").read_text()[-3000:])
            try:
                return httpx.get(f"https://localhost:{port}/healthz", verify=verify, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(healthy, 60, interval=0.2, what="/healthz of the installed wheel")
        r = httpx.post(f"https://localhost:{port}/tradecloud/orders", verify=verify, timeout=10,
                       headers={"Authorization": f"Bearer {TOKEN}"},
                       json={"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": "wheel-1"}})
        assert r.status_code == 202, r.text
        login = httpx.get(f"https://localhost:{console_port}/login", verify=verify, timeout=10)
        assert login.status_code == 200 and re.search(r'name="username"', login.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
    assert (site / "data" / "inbox.db").exists()
    assert "tls.groups_fallback" not in (site / "serve.log").read_text()
