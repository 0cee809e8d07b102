"""ACME against a real CA on loopback (Debian's pebble): both challenges, renewal, CA down, restart.

Each test starts its own pebble, whose validation ports point at the test's listeners (the
webhook port for tls-alpn-01, ``[server] http_port`` for http-01); ``localhost`` resolves to the
loopback address, so pebble validates against the server the test started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from tests.support.polling import eventually
from tests.support.servers import CLI, TOKEN, RunningServer, ServerFactory, free_port

PEBBLE = shutil.which("pebble")
pytestmark = pytest.mark.timeout(300)


@dataclass
class Pebble:
    proc: subprocess.Popen[bytes]
    directory_url: str
    api_ca: Path  # trust for pebble's own HTTPS API
    root: Path  # the root of the certificates it issues (for [tls] trust_store)
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_pebble(directory: Path, http_port: int, tls_port: int) -> Pebble:
    assert PEBBLE is not None, "pebble is not installed (.ci/run installs it)"
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(directory / "api-cert.pem"))
    leaf.private_key_pem.write_to_path(str(directory / "api-key.pem"))
    ca.cert_pem.write_to_path(str(directory / "api-ca.pem"))
    api, management = free_port(), free_port()
    (directory / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{api}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(directory / "api-cert.pem"), "privateKey": str(directory / "api-key.pem"),
        "httpPort": http_port, "tlsPort": tls_port, "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))
    log = directory / "pebble.log"
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    with log.open("wb") as out:
        proc = subprocess.Popen([PEBBLE, "-config", str(directory / "pebble.json")], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=directory)
    deadline = time.monotonic() + 20
    while True:
        try:
            root = httpx.get(f"https://127.0.0.1:{management}/roots/0", verify=str(directory / "api-ca.pem"),
                             timeout=2)
            if root.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    (directory / "root.pem").write_text(root.text)
    return Pebble(proc, f"https://127.0.0.1:{api}/dir", directory / "api-ca.pem", directory / "root.pem", log)


@dataclass
class AcmeSetup:
    factory: ServerFactory
    pebble: Pebble
    directory: Path
    config: Path
    port: int
    http_port: int

    def start(self, wait: bool = True) -> RunningServer:
        server = self.factory.start_with(self.config, self.port, self.directory, wait=False)
        server.ca_path = self.pebble.root
        if wait:
            wait_ready(server)
        return server

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args, "--config", str(self.config)], capture_output=True, text=True,
                              timeout=timeout, cwd=self.directory, check=False)


def wait_ready(server: RunningServer, timeout: float = 90) -> None:
    def healthy() -> bool:
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited:\n{server.logs()[-3000:]}")
        try:
            return httpx.get(server.base_url + "/healthz", verify=str(server.ca_path), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    eventually(healthy, timeout, interval=0.2, what=f"/healthz (log: {server.log_path})")


def make_setup(factory: ServerFactory, tmp_path: Path, challenge: str, extra: str = "") -> Iterator[AcmeSetup]:
    port, http_port = free_port(), free_port()
    pebble = start_pebble(tmp_path / "pebble", http_port, port)
    directory = tmp_path / "serve"
    directory.mkdir()
    config = directory / "tcwebhook.toml"
    config.write_text(
        f'data_dir = "{directory / "data"}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nhttp_port = {http_port}\npublic_hostname = "localhost"\n'
        f"shutdown_timeout = 5\n"
        f'[tls]\nacme = true\nacme_directory = "{pebble.directory_url}"\nacme_ca_bundle = "{pebble.api_ca}"\n'
        f'acme_challenge = "{challenge}"\nacme_email = "ops@example.com"\ntrust_store = "{pebble.root}"\n'
        f"reload_interval = 0.5\n{extra}"
        f'[auth]\nbearer_tokens = ["{TOKEN}"]\n'
    )
    try:
        yield AcmeSetup(factory, pebble, directory, config, port, http_port)
    finally:
        factory.stop_all()
        pebble.stop()


@pytest.fixture
def alpn(server_factory: ServerFactory, tmp_path: Path) -> Iterator[AcmeSetup]:
    yield from make_setup(server_factory, tmp_path, "tls-alpn-01")


@pytest.fixture
def http01(server_factory: ServerFactory, tmp_path: Path) -> Iterator[AcmeSetup]:
    # Due as soon as issued (pebble's certificates last 5 years): the background renewal runs
    # every check interval, as it would for short-lived certificates.
    extra = "acme_renew_before_days = 3650\nacme_check_interval = 1\n"
    yield from make_setup(server_factory, tmp_path, "http-01", extra)


def served(server: RunningServer) -> x509.Certificate:
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def post(server: RunningServer) -> int:
    r = httpx.post(server.url_orders, verify=str(server.ca_path), timeout=10, headers=server.bearer(),
                   json={"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": f"acme-{time.time_ns()}"}})
    return r.status_code


class TestTlsAlpn01:
    """No certificate at start: serve orders one on its own port, then takes webhooks; renews in place."""

    def test_first_certificate_renewal_and_restart(self, alpn: AcmeSetup) -> None:
        check = alpn.cli("check-config")
        assert check.returncode == 0 and "no certificate yet" in check.stdout, check.stdout + check.stderr
        server = alpn.start()
        assert post(server) == 202
        first = served(server)
        assert "Pebble" in first.issuer.rfc4514_string()
        acme_dir = alpn.directory / "data" / "acme"
        assert acme_dir.stat().st_mode & 0o777 == 0o700
        for name in ("account.key", "cert.pem", "key.pem"):
            assert (acme_dir / name).stat().st_mode & 0o777 == 0o600

        status = alpn.cli("certificate", "status", "--json")
        info = json.loads(status.stdout)
        assert info["names"] == ["localhost"] and info["next_renewal"] and info["last_attempt_ok"] is True

        # Forced renewal while serve holds the port: serve answers tls-alpn-01 on the live listener.
        renewed = alpn.cli("certificate", "renew")
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        eventually(lambda: served(server).serial_number != first.serial_number, 10, interval=0.2,
                   what="the renewed certificate served")
        second = served(server)
        assert post(server) == 202

        # A restart reuses the stored certificate instead of ordering a new one.
        assert server.stop(signal.SIGTERM) == 0
        again = alpn.start()
        assert served(again).serial_number == second.serial_number
        assert "acme.ordering" not in again.logs()
        assert again.proc.poll() is None

    def test_ca_down_at_renewal_keeps_the_certificate(self, alpn: AcmeSetup) -> None:
        server = alpn.start()
        before = served(server)
        alpn.pebble.stop()
        failed = alpn.cli("certificate", "renew", timeout=180)
        assert failed.returncode == 1
        assert "renewal failed" in failed.stderr
        assert served(server).serial_number == before.serial_number
        assert post(server) == 202
        check = alpn.cli("check-config")
        assert "the last ACME renewal failed" in check.stdout, check.stdout
        metrics = httpx.get(server.base_url + "/metrics", verify=str(server.ca_path), headers=server.bearer())
        assert "tcwebhook_acme_renewal_failures_total 1.0" in metrics.text
        assert "acme.renewal_failed" in server.logs()


class TestHttp01:
    """http-01 on its own plain-HTTP port, which answers challenges only; background renewal."""

    def test_http01_and_background_renewal(self, http01: AcmeSetup) -> None:
        server = http01.start()
        first = served(server)
        assert post(server) == 202
        plain = f"http://127.0.0.1:{http01.http_port}"
        assert httpx.get(plain + "/", timeout=5).status_code == 404
        assert httpx.post(plain + "/tradecloud/orders", json={}, timeout=5).status_code == 404
        assert httpx.get(plain + "/.well-known/acme-challenge/unknown", timeout=5).status_code == 404
        eventually(lambda: served(server).serial_number != first.serial_number, 60, interval=0.5,  # in the background
                   what="the renewed certificate served")
        assert post(server) == 202
        assert "acme.renewal_failed" not in server.logs()


class TestSettings:
    """ACME needs the name to order for; the refusal is one sentence with exit code 3."""

    def test_public_hostname_required(self, tmp_path: Path) -> None:
        config = tmp_path / "tcwebhook.toml"
        config.write_text(f'[tls]\nacme = true\n[auth]\nbearer_tokens = ["{TOKEN}"]\n')
        result = subprocess.run([*CLI, "check-config", "--config", str(config)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 3
        assert "public_hostname" in result.stderr and len(result.stderr.strip().splitlines()) == 1
