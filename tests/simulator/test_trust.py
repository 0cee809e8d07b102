"""Certificate helpers: host-name matching, self-signed detection, explanations."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tcwebhook.errors import StartupError
from tcwebhook.simulator.trust import (
    client_context,
    explain_untrusted,
    fetch_peer_chain,
    hostname_matches,
    is_self_signed,
    sni_name,
)

from .conftest import StartServer
from .servers import Pki


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


class TestHostname:
    """RFC 6125 matching on subjectAltName only."""

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
            (("localhost",), "127.0.0.1", False),
            ((), "x", False),  # CN only: ignored like modern clients do
        ],
    )
    def test_matching(self, names: tuple[str, ...], host: str, ok: bool) -> None:
        assert hostname_matches(certificate(*names), host) is ok


class TestSelfSigned:
    """Issuer equal to subject and a signature by its own key."""

    def test_self_signed(self) -> None:
        assert is_self_signed(certificate("a", self_signed=True))

    def test_issued(self) -> None:
        assert not is_self_signed(certificate("a"))

    def test_same_name_other_key(self) -> None:
        assert not is_self_signed(certificate("Some CA", issuer="Some CA"))


class TestProbe:
    """The unverified probe shows what the server sends."""

    def test_chain_as_sent(self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext) -> None:
        server = serve(good_context)
        peer = fetch_peer_chain("localhost", server.port, timeout=3)
        assert len(peer.certificates) == 2 and peer.version in ("TLSv1.2", "TLSv1.3")
        assert peer.certificates[0].issuer == peer.certificates[1].subject

    def test_explanation_without_details(self) -> None:
        assert "not trusted" in explain_untrusted(None, None, "h")


def test_sni_and_bad_bundle(tmp_path: object) -> None:
    """IP literals get no SNI; a CA bundle that is not PEM fails fast as a StartupError."""
    assert sni_name("127.0.0.1") is None and sni_name("[::1]") is None
    assert sni_name("hooks.example.com") == "hooks.example.com"
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(StartupError, match="no usable PEM"):
        client_context(bad)
