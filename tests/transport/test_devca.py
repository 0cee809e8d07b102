"""The development CA: made once, reused, renewed in time, and accepted by the checks and clients."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tcwebhook.errors import CertificateError
from tcwebhook.transport.certcheck import check_certificate_setup
from tcwebhook.transport.devca import CA_NAME, DevPki, ensure_dev_pki
from tcwebhook.transport.tls import build_server_context


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(pki: DevPki) -> dict[str, tuple[int, bytes]]:
    files = (pki.ca_cert, pki.ca_key, pki.cert, pki.key)
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in files}


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return ensure_dev_pki(tmp_path / "dev-pki")


class TestCreation:
    """A first call creates the CA and a localhost leaf with tight permissions."""

    def test_files_and_permissions(self, pki: DevPki) -> None:
        assert mode(pki.directory) == 0o700
        assert mode(pki.key) == 0o600
        assert mode(pki.ca_key) == 0o600
        assert pki.cert.read_bytes().count(b"BEGIN CERTIFICATE") == 1  # leaf only

    def test_ca_certificate(self, pki: DevPki) -> None:
        ca = load(pki.ca_cert)
        assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_NAME
        public_key = ca.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1"
        lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
        assert timedelta(days=3649) < lifetime < timedelta(days=3652)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    def test_leaf_certificate(self, pki: DevPki) -> None:
        leaf = load(pki.cert)
        assert leaf.issuer == load(pki.ca_cert).subject
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert timedelta(days=364) < lifetime < timedelta(days=367)

    @pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1", None])
    def test_passes_the_start_up_checks(self, pki: DevPki, hostname: str | None) -> None:
        report = check_certificate_setup(pki.cert, pki.key, pki.ca_cert, hostname)
        assert report.warnings == []
        assert report.chain == ("CN=localhost", f"CN={CA_NAME}")

    @pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
    def test_real_handshake(
        self, pki: DevPki, tls_server: Any, client: Any, connect: Any, hostname: str
    ) -> None:
        server = tls_server(build_server_context(pki.cert, pki.key))
        session = connect(server.port, client(pki.ca_cert), server_hostname=hostname)
        assert session.peer.serial_number == load(pki.cert).serial_number

    def test_ca_cannot_vouch_for_other_hosts(self, pki: DevPki, tmp_path: Path) -> None:
        """The CA is name-constrained to loopback, so a leaked key cannot mint real hosts."""
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        forged = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example")]))
            .issuer_name(load(pki.ca_cert).subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), False)
            .sign(ca_key, hashes.SHA256())
        )
        (tmp_path / "forged.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "forged-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        with pytest.raises(CertificateError, match="does not verify"):
            check_certificate_setup(
                tmp_path / "forged.pem", tmp_path / "forged-key.pem", pki.ca_cert, "bank.example"
            )


class TestReuse:
    """Later calls reuse sound files and renew only what needs it."""

    def test_second_call_changes_nothing(self, pki: DevPki) -> None:
        before = snapshot(pki)
        assert ensure_dev_pki(pki.directory) == pki
        assert snapshot(pki) == before

    def test_leaf_renewed_when_expiring_ca_kept(self, pki: DevPki) -> None:
        before = snapshot(pki)
        soon = datetime.now(UTC) + timedelta(days=340)
        ensure_dev_pki(pki.directory, now=soon)
        after = snapshot(pki)
        assert after["ca.pem"] == before["ca.pem"]
        assert after["ca-key.pem"] == before["ca-key.pem"]
        assert after["cert.pem"] != before["cert.pem"]
        assert after["key.pem"] != before["key.pem"]
        report = check_certificate_setup(pki.cert, pki.key, pki.ca_cert, "localhost", now=soon)
        assert report.days_left >= 364

    @pytest.mark.parametrize("damage", ["garbage leaf", "foreign key", "foreign issuer", "no leaf"])
    def test_leaf_reissued_when_it_does_not_verify(self, pki: DevPki, damage: str) -> None:
        ca_before = pki.ca_cert.read_bytes()
        if damage == "garbage leaf":
            pki.cert.write_text("not a certificate")
        elif damage == "foreign key":
            pki.key.write_bytes(trustme.CA().issue_cert("localhost").private_key_pem.bytes())
        elif damage == "foreign issuer":
            other = trustme.CA().issue_cert("localhost", "127.0.0.1", "::1")
            pki.cert.write_bytes(other.cert_chain_pems[0].bytes())
            pki.key.write_bytes(other.private_key_pem.bytes())
        else:
            pki.cert.unlink()
        ensure_dev_pki(pki.directory)
        assert pki.ca_cert.read_bytes() == ca_before
        check_certificate_setup(pki.cert, pki.key, pki.ca_cert, "localhost")

    def test_everything_new_when_ca_unusable(self, pki: DevPki) -> None:
        old_ca = pki.ca_cert.read_bytes()
        pki.ca_key.unlink()
        ensure_dev_pki(pki.directory)
        assert pki.ca_cert.read_bytes() != old_ca
        check_certificate_setup(pki.cert, pki.key, pki.ca_cert, "127.0.0.1")

    def test_permissions_tightened(self, pki: DevPki) -> None:
        pki.directory.chmod(0o755)
        pki.key.chmod(0o644)
        pki.ca_key.chmod(0o640)
        ensure_dev_pki(pki.directory)
        assert (mode(pki.directory), mode(pki.key), mode(pki.ca_key)) == (0o700, 0o600, 0o600)


class TestFailures:
    """Problems creating the PKI become a start-up error with a one-sentence fix."""

    def test_unwritable_location_is_a_startup_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        with pytest.raises(CertificateError, match="Cannot write the development CA"):
            ensure_dev_pki(blocker / "dev")
