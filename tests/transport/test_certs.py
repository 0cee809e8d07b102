"""The certificate/TLS toolkit: names, self-signed detection, host matching, client contexts."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tcwebhook.errors import StartupError
from tcwebhook.transport.certs import (
    client_context,
    hostname_matches,
    ip_literal,
    is_self_signed,
    normalise_host,
    sni_name,
    subject_alt_names,
)


def certificate(*names: str, issuer: str = "Some CA", self_signed: bool = False) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = key if self_signed else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if self_signed else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if names:
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


class TestNames:
    """subjectAltName entries come out DNS names first, then IP addresses; no SAN gives none."""

    def test_dns_then_ip(self) -> None:
        assert subject_alt_names(certificate("10.0.0.1", "a.example", "::1")) == ("a.example", "10.0.0.1", "::1")

    def test_no_san(self) -> None:
        assert subject_alt_names(certificate()) == ()

    def test_host_forms(self) -> None:
        assert ip_literal("[::1]") == ipaddress.ip_address("::1") and ip_literal("a.example") is None
        assert normalise_host(" Bücher.Example. ") == "xn--bcher-kva.example"
        assert sni_name("127.0.0.1") is None and sni_name("[::1]") is None
        assert sni_name("hooks.example.com") == "hooks.example.com"


class TestHostname:
    """RFC 6125 matching on subjectAltName only, with IDNA normalisation."""

    @pytest.mark.parametrize(
        ("names", "host", "ok"),
        [
            (("hooks.example.com",), "hooks.example.com", True),
            (("hooks.example.com",), "HOOKS.example.com.", True),
            (("*.example.com",), "hooks.example.com", True),
            (("*.example.com",), "example.com", False),
            (("*.example.com",), "a.b.example.com", False),
            (("other.example.com",), "hooks.example.com", False),
            (("127.0.0.1",), "127.0.0.1", True),
            (("::1",), "[0:0:0:0:0:0:0:1]", True),
            (("localhost",), "127.0.0.1", False),
            (("127.0.0.1",), "localhost", False),
            (("xn--bcher-kva.example",), "bücher.example", True),
            (("xn--bcher-kva.example",), "BÜCHER.example", True),
            (("*.xn--bcher-kva.example",), "hooks.bücher.example", True),
            (("bucher.example",), "bücher.example", False),
            ((), "x", False),  # CN only: ignored like modern clients do
        ],
    )
    def test_matching(self, names: tuple[str, ...], host: str, ok: bool) -> None:
        assert hostname_matches(subject_alt_names(certificate(*names)), host) is ok


class TestSelfSigned:
    """Issuer equal to subject and a signature by its own key."""

    def test_self_signed(self) -> None:
        assert is_self_signed(certificate("a", self_signed=True))

    def test_issued(self) -> None:
        assert not is_self_signed(certificate("a"))

    def test_same_name_other_key(self) -> None:
        assert not is_self_signed(certificate("Some CA", issuer="Some CA"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A loopback TLS server for 'localhost' that completes handshakes (TLS 1.0 to 1.3 allowed)."""
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("certs")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(5)
            try:
                with ctx.wrap_socket(sock, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], ca_file
    stop.set()
    thread.join(5)
    listener.close()


def handshake(port: int, ctx: ssl.SSLContext, host: str = "localhost") -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, ctx.wrap_socket(
        sock, server_hostname=host
    ) as tls:
        return tls.version()


class TestClientContext:
    """Verifying client contexts: TLS 1.2+, only the bundle when given, hostname checked."""

    def test_bundle_is_trusted(self, tls_server: tuple[int, Path]) -> None:
        port, ca_file = tls_server
        ctx = client_context(ca_file)
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        assert handshake(port, ctx) in ("TLSv1.2", "TLSv1.3")

    def test_default_roots_do_not_trust_a_private_ca(self, tls_server: tuple[int, Path]) -> None:
        port, _ = tls_server
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(port, client_context())

    def test_wrong_host_is_refused_unless_not_checked(self, tls_server: tuple[int, Path]) -> None:
        port, ca_file = tls_server
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            handshake(port, client_context(ca_file), host="other.example")
        assert handshake(port, client_context(ca_file, check_hostname=False), host="other.example")

    def test_no_verification_when_switched_off(self, tls_server: tuple[int, Path]) -> None:
        port, _ = tls_server
        assert handshake(port, client_context(verify=False), host="other.example")

    def test_tls_1_2_minimum_everywhere(self, tls_server: tuple[int, Path]) -> None:
        _, ca_file = tls_server
        for ctx in (client_context(), client_context(ca_file), client_context(verify=False)):
            assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2

    @pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), ("not PEM", "no usable PEM")])
    def test_unusable_bundle_is_one_sentence(self, tmp_path: Path, content: str | None, message: str) -> None:
        bundle = tmp_path / "ca.pem"
        if content is not None:
            bundle.write_text(content)
        with pytest.raises(StartupError, match=rf"^\[tradecloud\] ca_bundle {bundle} .*{message}.*\.$"):
            client_context(bundle, setting="[tradecloud] ca_bundle")
