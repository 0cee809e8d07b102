"""The real `tcwebhook serve` process: TLS versions, refusals at start-up, signals, logs, reload."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.polling import eventually
from tests.support.servers import BASIC_PASSWORD, CLI, TOKEN, RunningServer, ServerFactory

ORDER = (
    b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"o-1","lines":[]},'
    b'"meta":{"messageId":"11111111-2222-4333-8444-555555555555"}}'
)


def handshake(server: RunningServer, version: ssl.TLSVersion) -> str:
    ctx = server.ssl_context()
    if version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


class TestTlsVersions:
    """TLS 1.2 and 1.3 are accepted with a verified chain; 1.0 and 1.1 are refused."""

    @pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
    def test_modern_versions(self, live_server: RunningServer, version: ssl.TLSVersion) -> None:
        assert handshake(live_server, version) == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]

    @pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
    def test_old_versions_refused(self, live_server: RunningServer, version: ssl.TLSVersion) -> None:
        with pytest.raises(ssl.SSLError):
            handshake(live_server, version)

    def test_openssl_client_tls11_refused(self, live_server: RunningServer) -> None:
        out = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{live_server.port}",
                "-tls1_1",
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-CAfile",
                str(live_server.ca_path),
            ],
            input=b"",
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert out.returncode != 0
        assert b"no peer certificate available" in out.stdout

    def test_plain_http_gets_no_http_answer(self, live_server: RunningServer) -> None:
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = b""
            try:
                while chunk := sock.recv(4096):
                    received += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert not received.startswith(b"HTTP/")
        assert b"200" not in received

    def test_untrusted_client_fails_verification(self, live_server: RunningServer) -> None:
        with pytest.raises(httpx.ConnectError):
            httpx.get(live_server.base_url + "/healthz", verify=ssl.create_default_context(), timeout=5)


def run_serve(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=timeout, check=False
    )


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "self.pem", directory / "self.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def with_tls(config: Path, **values: str) -> None:
    text = config.read_text()
    for key, value in values.items():
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
        idx = lines.index("[tls]")
        lines.insert(idx + 1, f'{key} = "{value}"')
        text = "\n".join(lines) + "\n"
    config.write_text(text)


class TestStartupRefusals:
    """A bad setup stops `serve` before listening: exit code 3 and one sentence on stderr."""

    def test_key_does_not_match(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        other = server_factory.ca.issue_cert("localhost")
        other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
        with_tls(config, keyfile=str(tmp_path / "other.key"))
        out = run_serve(config)
        assert out.returncode == 3, out.stderr
        assert "match" in out.stderr.lower()
        assert len(out.stderr.strip().splitlines()) == 1

    def test_self_signed(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        cert, key = self_signed(tmp_path)
        with_tls(config, certfile=str(cert), keyfile=str(key))
        out = run_serve(config)
        assert out.returncode == 3
        assert "self-signed" in out.stderr.lower()

    def test_missing_intermediate(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        intermediate = server_factory.ca.create_child_ca()
        leaf = intermediate.issue_cert("localhost", "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "leaf-only.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "leaf.key"))
        with_tls(config, certfile=str(tmp_path / "leaf-only.pem"), keyfile=str(tmp_path / "leaf.key"))
        out = run_serve(config)
        assert out.returncode == 3
        assert "intermediate" in out.stderr.lower()
        # The same leaf with its intermediate appended is accepted.
        chain = b"".join(p.bytes() for p in leaf.cert_chain_pems)
        (tmp_path / "full.pem").write_bytes(chain)
        with_tls(config, certfile=str(tmp_path / "full.pem"))
        ok = subprocess.run(
            [*CLI, "check-config", "--config", str(config)], capture_output=True, text=True, timeout=30, check=False
        )
        assert ok.returncode == 0, ok.stderr

    def test_expired(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
        leaf = server_factory.ca.issue_cert("localhost", not_before=past - dt.timedelta(days=30), not_after=past)
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "old.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "old.key"))
        with_tls(config, certfile=str(tmp_path / "old.pem"), keyfile=str(tmp_path / "old.key"))
        out = run_serve(config)
        assert out.returncode == 3
        assert "expired" in out.stderr.lower()

    def test_not_yet_valid(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
        leaf = server_factory.ca.issue_cert("localhost", not_before=future, not_after=future + dt.timedelta(days=30))
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "new.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "new.key"))
        with_tls(config, certfile=str(tmp_path / "new.pem"), keyfile=str(tmp_path / "new.key"))
        out = run_serve(config)
        assert out.returncode == 3
        assert "not valid before" in out.stderr.lower()

    def test_public_hostname_not_covered(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        config.write_text(
            config.read_text().replace("[server]\n", '[server]\npublic_hostname = "webhooks.example.com"\n')
        )
        out = run_serve(config)
        assert out.returncode == 3
        assert "webhooks.example.com" in out.stderr

    def test_no_credentials(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        text = config.read_text().split("[auth]")[0]
        config.write_text(text)
        out = run_serve(config)
        assert out.returncode == 3
        assert "credentials" in out.stderr

    def test_expiry_warning(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        config, _ = server_factory.write_config(tmp_path / "a")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
        leaf = server_factory.ca.issue_cert("localhost", "127.0.0.1", not_after=soon)
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "soon.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "soon.key"))
        with_tls(config, certfile=str(tmp_path / "soon.pem"), keyfile=str(tmp_path / "soon.key"))
        out = subprocess.run(
            [*CLI, "check-config", "--config", str(config)], capture_output=True, text=True, timeout=30, check=False
        )
        assert out.returncode == 0
        assert "expire" in (out.stdout + out.stderr).lower()


class TestProcess:
    """Signals, logs and certificate renewal on a running server."""

    def test_sigterm_exits_cleanly_and_logs_hold_no_secrets(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("s1")
        with server.client() as client:
            assert (
                client.post(
                    server.url_orders, content=ORDER, headers={**server.bearer(), "content-type": "application/json"}
                ).status_code
                == 202
            )
            for bad in ("Bearer wrong-token-xyz", "Basic dHJhZGVjbG91ZDp3cm9uZy1wYXNzd29yZA=="):
                r = client.post(server.url_orders, content=ORDER, headers={"Authorization": bad})
                assert r.status_code == 401
        assert server.stop(signal.SIGTERM) == 0
        logs = server.logs()
        assert '"status": 202' in logs or '"status":202' in logs
        for secret in (TOKEN, BASIC_PASSWORD, "wrong-token-xyz", "dHJhZGVjbG91ZDp3cm9uZy1wYXNzd29yZA=="):
            assert secret not in logs
        assert "auth_failed" in logs

    def test_certificate_reloaded_without_restart(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("s2")

        def serial() -> int:
            ctx = server.ssl_context()
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number

        before = serial()
        renewed = server_factory.ca.issue_cert("localhost", "127.0.0.1")
        directory = server.config_path.parent if server.config_path else Path()
        renewed.private_key_pem.write_to_path(str(directory / "key.pem"))
        renewed.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        after = eventually(lambda: (s := serial()) != before and s, 15, interval=0.2, what="a new serial")
        assert after == x509.load_pem_x509_certificate(renewed.cert_chain_pems[0].bytes()).serial_number

    def test_port_in_use_is_a_startup_error(self, server_factory: ServerFactory, tmp_path: Path) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            config, _ = server_factory.write_config(tmp_path / "p", port=port)
            out = run_serve(config)
        assert out.returncode == 3
        assert str(port) in out.stderr


class TestSlowClients:
    """Headers or a body that trickle in too slowly do not hold a connection or get a 2xx."""

    def test_slow_headers_closed_and_slow_body_gets_503(self, server_factory: ServerFactory) -> None:
        config, _ = server_factory.write_config(server_factory.base / "slow")
        config.write_text(config.read_text().replace("[server]\n", "[server]\nrequest_timeout = 1\n"))
        server = server_factory.start_with(config, 0, config.parent)
        ctx = server.ssl_context()

        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"POST /tradecloud/orders HTTP/1.1\r\nHost: localhost\r\n")
            started = time.monotonic()
            assert tls.recv(1024) == b""  # closed without an HTTP answer
            assert time.monotonic() - started < 5

        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(
                b"POST /tradecloud/orders HTTP/1.1\r\nHost: localhost\r\n"
                b"Authorization: Bearer " + server.token.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            answer = tls.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"retry-after" in answer.lower()
