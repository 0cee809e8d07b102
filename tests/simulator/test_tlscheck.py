"""check_tls against loopback servers set up right and wrong in each way it must catch."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tcwebhook.errors import StartupError
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.tlscheck import Status, TlsReport, _key_description, check_tls
from tcwebhook.simulator.trust import SELF_SIGNED_MESSAGE

from .conftest import StartServer
from .servers import Pki

TOKEN = "check-token-123456"


def run(pki: Pki, serve: StartServer, context: ssl.SSLContext, **kwargs: object) -> TlsReport:
    server = serve(context)
    return check_tls(server.url, ca_bundle=pki.ca_path, timeout=3, **kwargs)  # type: ignore[arg-type]


def detail(report: TlsReport, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def failed(report: TlsReport) -> set[str]:
    return {c.name for c in report.checks if c.status is Status.FAIL}


class TestGoodSetup:
    """A correct setup passes every check (SKIP only where the local OpenSSL cannot probe)."""

    def test_passes(self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext) -> None:
        server = serve(good_context, default=202)
        server.authorization = f"Bearer {TOKEN}"
        report = check_tls(server.url, ca_bundle=pki.ca_path, credentials=Credentials.parse(token=TOKEN))
        assert report.ok, report.as_dict()
        assert {c.status for c in report.checks} <= {Status.PASS, Status.SKIP}
        names = [c.name for c in report.checks]
        for expected in (
            "TLS 1.0 refused",
            "TLS 1.1 refused",
            "TLS 1.2 accepted",
            "TLS 1.3 accepted",
            "Weak ciphers: static RSA key exchange (no forward secrecy)",
            "Weak ciphers: CBC with SHA-1",
            "Certificate chain trusted",
            "Not self-signed",
            "Hostname matches",
            "Expiry",
            "Key",
            "Test event (Bearer auth)",
            "Request without credentials refused",
        ):
            assert expected in names
        assert "2 certificate(s) sent" in detail(report, "Certificate chain trusted")
        assert detail(report, "Key") == "EC secp256r1 (256 bits)"
        (arrival, unauthenticated) = server.wait_for(2)
        assert arrival.headers["authorization"] == f"Bearer {TOKEN}"
        assert "authorization" not in unauthenticated.headers

    def test_expiring_soon_warns(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.expiring(days=10))
        assert report.ok
        assert report.status_of("Expiry") is Status.WARN and "in 9 days" in detail(report, "Expiry")

    def test_tls13_only_warns(self, pki: Pki, serve: StartServer) -> None:
        context = pki.good()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        report = run(pki, serve, context)
        assert report.ok
        assert report.status_of("TLS 1.2 accepted") is Status.WARN
        assert report.status_of("TLS 1.3 accepted") is Status.PASS


class TestBrokenSetups:
    """Each deliberate mistake is reported as a FAIL line that names it."""

    def test_self_signed(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.self_signed())
        assert not report.ok
        assert failed(report) == {"Certificate chain trusted", "Not self-signed"}
        assert detail(report, "Not self-signed") == SELF_SIGNED_MESSAGE
        assert detail(report, "Certificate chain trusted") == SELF_SIGNED_MESSAGE

    def test_expired(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.expired())
        assert failed(report) == {"Certificate chain trusted", "Expiry"}
        assert "expired on" in detail(report, "Expiry") and "2 days ago" in detail(report, "Expiry")
        assert "expired" in detail(report, "Certificate chain trusted")

    def test_missing_intermediate(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.missing_intermediate())
        assert failed(report) == {"Certificate chain trusted"}
        assert "chain incomplete: the server sends only its own certificate" in detail(
            report, "Certificate chain trusted"
        )

    def test_wrong_host(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.wrong_host())
        assert failed(report) == {"Hostname matches"}
        assert detail(report, "Hostname matches") == "the certificate is for wrong.example, not localhost"

    def test_tls11_allowed(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.tls11())
        assert "TLS 1.1 refused" in failed(report)
        assert "the server accepts TLS 1.1" in detail(report, "TLS 1.1 refused")
        assert report.status_of("TLS 1.0 refused") is Status.PASS  # the server's minimum is 1.1

    def test_weak_ciphers(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, pki.weak_ciphers())
        assert {
            "Weak ciphers: static RSA key exchange (no forward secrecy)",
            "Weak ciphers: CBC with SHA-1",
            "Weak ciphers: CBC with SHA-256/384 (not AEAD)",
        } <= failed(report)
        assert detail(report, "Key") == "RSA 2048 bits"

    def test_wrong_credentials(self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext) -> None:
        server = serve(good_context, default=202)
        server.authorization = "Bearer the-right-one"
        report = check_tls(server.url, ca_bundle=pki.ca_path, credentials=Credentials.parse(token="wrong-token"))
        assert failed(report) == {"Test event (Bearer auth)"}
        assert detail(report, "Test event (Bearer auth)").startswith("answered 401")

    def test_open_endpoint(self, pki: Pki, serve: StartServer, good_context: ssl.SSLContext) -> None:
        server = serve(good_context, default=200)
        report = check_tls(server.url, ca_bundle=pki.ca_path, credentials=Credentials.parse(basic="u:p"))
        assert failed(report) == {"Request without credentials refused"}
        assert report.status_of("Test event (Basic auth)") is Status.PASS

    def test_unreachable(self, pki: Pki) -> None:
        report = check_tls("https://localhost:9/hook", ca_bundle=pki.ca_path, timeout=2)
        assert [c.name for c in report.checks] == ["Reachable"] and not report.ok

    def test_plain_http(self, pki: Pki, serve: StartServer) -> None:
        report = run(pki, serve, None)  # type: ignore[arg-type]
        assert not report.ok
        assert "plain HTTP" in detail(report, "Certificate chain trusted")

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError, match="https://"):
            check_tls("http://localhost/hook")
        with pytest.raises(StartupError, match="does not exist"):
            check_tls("https://localhost:9/hook", ca_bundle=Path("/nonexistent.pem"))


class TestKeys:
    """Key type and size verdicts."""

    def test_rsa_1024_fails(self) -> None:
        status, text = _key_description(rsa.generate_private_key(65537, 1024).public_key())  # noqa: S505
        assert status is Status.FAIL and "at least 2048" in text

    def test_p384_passes(self) -> None:
        status, text = _key_description(ec.generate_private_key(ec.SECP384R1()).public_key())
        assert status is Status.PASS and text == "EC secp384r1 (384 bits)"
