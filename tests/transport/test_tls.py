"""The server TLS context and certificate hot reload, through real handshakes on loopback."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from structlog.testing import capture_logs
from tests.support.servers import RunningServer, ServerFactory

from tcwebhook.errors import CertificateError
from tcwebhook.transport import tls
from tcwebhook.transport.tls import (
    KEY_EXCHANGE_GROUPS,
    TLS12_CIPHERS,
    ReloadingServerContext,
    accepted_groups,
    build_server_context,
)

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

# Fixture factories from conftest.py that write a certfile and keyfile.
PairMaker = Callable[..., tuple[Path, Path]]


def s_client(port: int, ca_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One handshake by the openssl command-line client, which can offer any group or version."""
    assert OPENSSL is not None
    return subprocess.run(
        [
            OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", str(ca_file), "-verify_return_error", *args,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


class TestProtocolVersions:
    """TLS 1.2 and 1.3 are spoken, with ALPN http/1.1; TLS 1.0 and 1.1 are refused."""

    @pytest.mark.parametrize(
        ("version", "expected"),
        [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    )
    def test_modern_versions_succeed(
        self, ca: trustme.CA, leaf_files: tuple[Path, Path], tls_server: Any, client: Any,
        connect: Any, version: ssl.TLSVersion, expected: str,
    ) -> None:
        server = tls_server(build_server_context(*leaf_files))
        ctx = client(ca, minimum=version, maximum=version)
        session = connect(server.port, ctx)
        assert session.version == expected
        assert session.alpn == "http/1.1"
        if version is ssl.TLSVersion.TLSv1_2:
            assert session.cipher in TLS12_CIPHERS.split(":")
        # An IP address is checked against the IP SAN (no SNI is sent for it).
        assert connect(server.port, ctx, server_hostname="127.0.0.1").version == expected

    @pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
    def test_old_versions_refused(
        self, ca: trustme.CA, leaf_files: tuple[Path, Path], tls_server: Any, client: Any,
        connect: Any, version: ssl.TLSVersion,
    ) -> None:
        # OpenSSL 3 needs security level 0 to even offer TLS 1.0/1.1.
        old = client(ca, minimum=version, maximum=version, ciphers="DEFAULT:@SECLEVEL=0")
        permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
        permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
        permissive.load_cert_chain(*leaf_files)
        # Control: this client really can speak the old version to a server that allows it.
        assert connect(tls_server(permissive).port, old).version in {"TLSv1", "TLSv1.1"}

        server = tls_server(build_server_context(*leaf_files))
        with pytest.raises(ssl.SSLError):
            connect(server.port, old)
        refusal = server.next_error()
        assert isinstance(refusal, ssl.SSLError)
        assert refusal.reason == "UNSUPPORTED_PROTOCOL"

    @needs_openssl
    def test_openssl_client_refused_tls11(
        self, ca_file: Path, leaf_files: tuple[Path, Path], tls_server: Any
    ) -> None:
        server = tls_server(build_server_context(*leaf_files))
        result = s_client(server.port, ca_file, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        assert result.returncode != 0
        assert "alert protocol version" in result.stderr

    @needs_openssl
    def test_renegotiation_refused(
        self, ca_file: Path, leaf_files: tuple[Path, Path], tls_server: Any
    ) -> None:
        assert OPENSSL is not None
        server = tls_server(build_server_context(*leaf_files))
        result = subprocess.run(
            [
                OPENSSL, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2",
                "-servername", "localhost", "-CAfile", str(ca_file),
            ],
            input="R\n", capture_output=True, text=True, timeout=15, check=False,
        )
        assert "RENEGOTIATING" in result.stderr
        assert "no renegotiation" in result.stderr


class TestCipherSuites:
    """TLS 1.2 offers only ECDHE key exchange with AEAD ciphers."""

    @pytest.mark.parametrize(
        "offered",
        [
            "AES128-GCM-SHA256",  # RSA key exchange: no forward secrecy
            "ECDHE-ECDSA-AES128-SHA256",  # CBC mode
            "ECDHE-ECDSA-AES256-SHA",
            "DHE-RSA-AES128-GCM-SHA256",
        ],
    )
    def test_weak_tls12_suites_refused(
        self, ca: trustme.CA, leaf_files: tuple[Path, Path], tls_server: Any, client: Any,
        connect: Any, offered: str,
    ) -> None:
        server = tls_server(build_server_context(*leaf_files))
        ctx = client(ca, maximum=ssl.TLSVersion.TLSv1_2, ciphers=offered)
        with pytest.raises(ssl.SSLError):
            connect(server.port, ctx)
        assert server.next_error().reason == "NO_SHARED_CIPHER"

    def test_rsa_certificate_uses_ecdhe_rsa(
        self, ca: trustme.CA, pair_writer: PairMaker, tls_server: Any, client: Any, connect: Any
    ) -> None:
        files = pair_writer(ca.issue_cert("localhost", key_type=trustme.KeyType.RSA), stem="rsa")
        server = tls_server(build_server_context(*files))
        session = connect(server.port, client(ca, maximum=ssl.TLSVersion.TLSv1_2))
        assert session.cipher.startswith("ECDHE-RSA-")
        assert isinstance(session.peer.public_key(), rsa.RSAPublicKey)

    def test_context_options(self, leaf_files: tuple[Path, Path]) -> None:
        ctx = build_server_context(*leaf_files)
        for option in (ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION, ssl.OP_NO_TICKET):
            assert ctx.options & option
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        assert ctx.maximum_version is ssl.TLSVersion.TLSv1_3
        tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
        assert tls12 == set(TLS12_CIPHERS.split(":"))

    def test_unloadable_files_raise_certificate_error(self, tmp_path: Path) -> None:
        bogus = tmp_path / "bogus.pem"
        bogus.write_text("not a certificate")
        with pytest.raises(CertificateError, match="OpenSSL cannot load"):
            build_server_context(bogus, bogus)


@needs_openssl
class TestKeyExchangeGroups:
    """`tcwebhook serve` accepts only X25519, P-256 and P-384 for key exchange."""

    @pytest.mark.parametrize(
        ("offered", "version", "chosen"),
        [
            ("X25519", "-tls1_3", "X25519"),
            ("P-256", "-tls1_3", "ECDH, prime256v1"),
            ("P-384", "-tls1_3", "ECDH, secp384r1"),
            # TLS 1.2 also needs the certificate's own curve (P-256) in the client's list.
            ("X25519:P-256", "-tls1_2", "X25519"),
            ("P-384:P-256", "-tls1_2", "ECDH, secp384r1"),
            ("X448:P-256", "-tls1_2", "ECDH, prime256v1"),
        ],
    )
    def test_allowed_groups(self, live_server: RunningServer, offered: str, version: str, chosen: str) -> None:
        result = s_client(live_server.port, live_server.ca_path, "-groups", offered, version)
        assert result.returncode == 0, result.stderr
        assert f"Server Temp Key: {chosen}," in result.stdout

    @pytest.mark.parametrize(
        ("group", "version"),
        [
            ("X448", "-tls1_3"), ("X448", "-tls1_2"), ("P-521", "-tls1_3"),
            ("ffdhe2048", "-tls1_3"), ("ffdhe3072", "-tls1_3"),
        ],
    )
    def test_other_groups_refused(self, live_server: RunningServer, group: str, version: str) -> None:
        result = s_client(live_server.port, live_server.ca_path, "-groups", group, version)
        assert result.returncode != 0 and "Server Temp Key" not in result.stdout
        # The asyncio server drops a refused handshake without sending an alert.
        assert "handshake failure" in result.stderr or "unexpected eof" in result.stderr, result.stderr

    def test_serve_runs_under_the_openssl_config(self, live_server: RunningServer) -> None:
        """The groups come from transport/openssl.cnf, which serve restarted itself to load."""
        environ = Path(f"/proc/{live_server.proc.pid}/environ").read_bytes().split(b"\0")
        assert f"OPENSSL_CONF={tls.OPENSSL_CONFIG}".encode() in environ
        assert "tls.groups_fallback" not in live_server.logs()

    def test_own_config_without_groups_falls_back_to_p256(
        self, server_factory: ServerFactory, tmp_path: Path
    ) -> None:
        """An operator's OPENSSL_CONF is respected; lacking our Groups line, P-256 alone is served."""
        own = tmp_path / "own-openssl.cnf"
        own.write_text("# an OpenSSL configuration of the operator's own, without a Groups line\n")
        server = server_factory.start("own-openssl-config", env={"OPENSSL_CONF": str(own)})
        assert "tls.groups_fallback" in server.logs()
        assert s_client(server.port, server.ca_path, "-groups", "P-256", "-tls1_3").returncode == 0
        assert s_client(server.port, server.ca_path, "-groups", "X25519", "-tls1_3").returncode != 0
        assert s_client(server.port, server.ca_path, "-groups", "X448", "-tls1_3").returncode != 0

    def test_accepted_groups(self, leaf_files: tuple[Path, Path]) -> None:
        """The in-memory handshakes that tell which groups a server context accepts."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*leaf_files)
        ctx.set_ecdh_curve("secp384r1")
        assert accepted_groups(ctx) == ("secp384r1",)
        # Configured (serve) or fallen back (this test process), never a group outside the profile.
        assert accepted_groups(build_server_context(*leaf_files)) in (KEY_EXCHANGE_GROUPS, ("prime256v1",))


class TestHotReload:
    """ReloadingServerContext swaps in a renewed certificate and refuses a broken one."""

    def test_renewed_certificate_reaches_new_connections(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, tls_server: Any, client: Any, connect: Any
    ) -> None:
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        first = serial_of(certfile)
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file, public_hostname="localhost")
        server = tls_server(reloading.context)
        ctx = client(ca)
        assert reloading.maybe_reload() is False
        assert connect(server.port, ctx).peer.serial_number == first

        pair_writer(ca.issue_cert("localhost"))
        second = serial_of(certfile)
        with capture_logs() as logs:
            assert reloading.maybe_reload() is True
        assert [e["event"] for e in logs] == ["tls.certificate_reloaded"]
        assert reloading.context is server.context
        for _ in range(2):
            assert connect(server.port, ctx).peer.serial_number == second
        renewed = x509.load_pem_x509_certificate(certfile.read_bytes())
        assert reloading.report.fingerprint_sha256 == renewed.fingerprint(SHA256()).hex(":").upper()
        assert reloading.maybe_reload() is False

    def test_open_connection_keeps_its_certificate(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, tls_server: Any, client: Any
    ) -> None:
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        first = serial_of(certfile)
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file)
        server = tls_server(reloading.context)

        async def scenario() -> tuple[int, int, bytes]:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=client(ca), server_hostname="localhost"
            )
            before = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            pair_writer(ca.issue_cert("localhost"))
            assert reloading.maybe_reload()
            writer.write(b"still here\n")
            echoed = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
            return x509.load_der_x509_certificate(before).serial_number, serial_of(certfile), echoed

        old_serial, new_serial, echoed = asyncio.run(scenario())
        assert old_serial == first != new_serial
        assert echoed == b"still here\n"

    def test_asyncio_server_sees_reload(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, client: Any
    ) -> None:
        """The swap also works for asyncio's SSLObject-based servers (what uvicorn runs on)."""
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        async def peer_serial(port: int) -> int:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client(ca), server_hostname="localhost"
            )
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.write(b"x\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"x\n"
            writer.close()
            await writer.wait_closed()
            return x509.load_der_x509_certificate(der).serial_number

        async def scenario() -> list[int]:
            server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=reloading.context)
            port = server.sockets[0].getsockname()[1]
            async with server:
                seen = [await peer_serial(port)]
                pair_writer(ca.issue_cert("localhost"))
                assert reloading.maybe_reload()
                seen.append(await peer_serial(port))
            return seen

        before, after = asyncio.run(scenario())
        assert before != after == serial_of(certfile)

    def test_key_type_change(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, tls_server: Any, client: Any, connect: Any
    ) -> None:
        """EC to RSA: the old EC certificate must not linger in a slot of its own."""
        certfile, keyfile = pair_writer(ca.issue_cert("localhost", key_type=trustme.KeyType.ECDSA))
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file)
        server = tls_server(reloading.context)
        ctx = client(ca)
        assert isinstance(connect(server.port, ctx).peer.public_key(), ec.EllipticCurvePublicKey)
        pair_writer(ca.issue_cert("localhost", key_type=trustme.KeyType.RSA))
        assert reloading.maybe_reload()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            peer = connect(server.port, client(ca, maximum=version)).peer
            assert isinstance(peer.public_key(), rsa.RSAPublicKey)

    @pytest.mark.parametrize("breakage", ["wrong key", "wrong host", "expired", "garbage", "missing"])
    def test_broken_replacement_refused(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, issue_cert: PairMaker,
        tls_server: Any, client: Any, connect: Any, breakage: str,
    ) -> None:
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        good_cert, good_key = certfile.read_bytes(), keyfile.read_bytes()
        first = serial_of(certfile)
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file, public_hostname="localhost")
        server = tls_server(reloading.context)
        if breakage == "wrong key":
            other = ca.issue_cert("localhost")
            certfile.write_bytes(other.cert_chain_pems[0].bytes())
        elif breakage == "wrong host":
            pair_writer(ca.issue_cert("elsewhere.example"))
        elif breakage == "expired":
            past = datetime.now(UTC) - timedelta(days=10)
            cert, key = issue_cert(ca, not_before=past - timedelta(days=90), not_after=past)
            certfile.write_bytes(cert.read_bytes())
            keyfile.write_bytes(key.read_bytes())
        elif breakage == "garbage":
            certfile.write_text("-----BEGIN CERTIFICATE-----\nbroken\n")
        else:
            certfile.unlink()

        with capture_logs() as logs:
            assert reloading.maybe_reload() is False
            assert reloading.maybe_reload() is False
        failures = [e for e in logs if e["event"] == "tls.reload_failed"]
        assert len(failures) == 1, "one log line per distinct problem, not one per poll"
        assert failures[0]["log_level"] == "error"
        assert "BEGIN" not in failures[0]["error"]
        assert connect(server.port, client(ca)).peer.serial_number == first

        # Once the files are put right, the next poll loads them.
        certfile.write_bytes(good_cert)
        keyfile.write_bytes(good_key)
        assert reloading.maybe_reload() is False  # same bytes as the loaded chain
        pair_writer(ca.issue_cert("localhost"))
        assert reloading.maybe_reload() is True
        assert connect(server.port, client(ca)).peer.serial_number == serial_of(certfile)

    def test_not_yet_valid_replacement_loaded_when_valid(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, issue_cert: PairMaker
    ) -> None:
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        now = datetime.now(UTC)
        clock: list[datetime] = [now]
        reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file, clock=lambda: clock[0])
        cert, key = issue_cert(ca, not_before=now + timedelta(hours=2))
        certfile.write_bytes(cert.read_bytes())
        keyfile.write_bytes(key.read_bytes())
        assert reloading.maybe_reload() is False
        clock[0] = now + timedelta(hours=3)
        assert reloading.maybe_reload() is True

    def test_bad_files_at_start_raise(self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker) -> None:
        certfile, keyfile = pair_writer(ca.issue_cert("localhost"))
        with pytest.raises(CertificateError, match="does not cover"):
            ReloadingServerContext(certfile, keyfile, trust_store=ca_file, public_hostname="webhooks.example.com")

    def test_expiry_reminder_once_a_day(
        self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker
    ) -> None:
        now = datetime.now(UTC)
        certfile, keyfile = issue_cert(ca, not_after=now + timedelta(days=10))
        clock: list[datetime] = [now]
        ticks: Callable[[], datetime] = lambda: clock[0]  # noqa: E731
        with capture_logs() as logs:
            reloading = ReloadingServerContext(certfile, keyfile, trust_store=ca_file, clock=ticks)
            for hours in (1, 5, 23, 25, 30):
                clock[0] = now + timedelta(hours=hours)
                reloading.maybe_reload()
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["event"] for e in warnings] == [
            "tls.certificate_warning",  # at start: the report's expiry warning
            "tls.certificate_expiring",  # a day later
        ]
        assert warnings[1]["days_left"] == 8
