"""Start-up certificate checks: what passes, each refusal's one-sentence message, warnings."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tcwebhook.errors import CertificateError, StartupError
from tcwebhook.transport.certcheck import check_certificate_setup

NOW = datetime.now(UTC)

# Fixture factories from conftest.py that write a certfile and keyfile.
PairMaker = Callable[..., tuple[Path, Path]]


def refusal(*args: Any, **kwargs: Any) -> str:
    """The message of the CertificateError raised, checked to be one sentence without secrets."""
    with pytest.raises(CertificateError) as caught:
        check_certificate_setup(*args, **kwargs)
    message = str(caught.value)
    assert isinstance(caught.value, StartupError)
    assert message.endswith(".")
    assert not re.search(r"\.\s+[A-Z]", message), f"more than one sentence: {message}"
    assert not re.search(r"[A-Za-z0-9+/=]{40,}", message), "looks like PEM/base64 content"
    return message


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "self.pem").write_bytes(pem(cert))
    (tmp_path / "self-key.pem").write_bytes(key_pem(key))
    return tmp_path / "self.pem", tmp_path / "self-key.pem"


def short_lived_intermediate_chain(
    root: trustme.CA, tmp_path: Path, intermediate_days: int
) -> tuple[Path, Path]:
    """leaf (90 days) <- intermediate (``intermediate_days``) <- ``root``."""
    root_key = serialization.load_pem_private_key(root.private_key_pem.bytes(), password=None)
    root_cert = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Short Intermediate")])
    mid = (
        x509.CertificateBuilder()
        .subject_name(mid_name)
        .issuer_name(root_cert.subject)
        .public_key(mid_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=intermediate_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(mid_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(mid_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(mid_key.public_key()), critical=False
        )
        .sign(mid_key, hashes.SHA256())
    )
    (tmp_path / "chain.pem").write_bytes(pem(leaf) + pem(mid))
    (tmp_path / "chain-key.pem").write_bytes(key_pem(leaf_key))
    (tmp_path / "chain-key.pem").chmod(0o600)
    return tmp_path / "chain.pem", tmp_path / "chain-key.pem"


@pytest.fixture
def root() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def root_file(root: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "root.pem"
    root.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def intermediate(root: trustme.CA) -> trustme.CA:
    return root.create_child_ca()


class TestAcceptedSetups:
    """Sound setups pass and the report describes them."""

    def test_leaf_with_intermediate(
        self, intermediate: trustme.CA, root_file: Path, pair_writer: PairMaker
    ) -> None:
        certfile, keyfile = pair_writer(intermediate.issue_cert("webhooks.example.com", "10.0.0.7"))
        report = check_certificate_setup(certfile, keyfile, root_file, "webhooks.example.com")
        assert report.sans == ("webhooks.example.com", "10.0.0.7")
        assert report.key_type == "EC secp256r1"
        assert report.key_size == 256
        assert len(report.chain) == 3
        assert report.chain[0] == report.subject
        assert report.issuer == report.chain[1]
        assert report.days_left > 300
        assert report.trust_store == f"trust_store {root_file}"
        assert report.warnings == []
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", report.fingerprint_sha256)

    def test_trust_store_folder(
        self, intermediate: trustme.CA, root: trustme.CA, tmp_path: Path, pair_writer: PairMaker
    ) -> None:
        folder = tmp_path / "roots"
        folder.mkdir()
        trustme.CA().cert_pem.write_to_path(str(folder / "other.pem"))
        root.cert_pem.write_to_path(str(folder / "ours.crt"))
        certfile, keyfile = pair_writer(intermediate.issue_cert("localhost"))
        assert check_certificate_setup(certfile, keyfile, folder, None).sans == ("localhost",)

    def test_system_trust_store(
        self, intermediate: trustme.CA, root_file: Path, pair_writer: PairMaker,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # SSL_CERT_FILE is how OpenSSL (and so the check) finds the system bundle.
        monkeypatch.setenv("SSL_CERT_FILE", str(root_file))
        certfile, keyfile = pair_writer(intermediate.issue_cert("localhost"))
        report = check_certificate_setup(certfile, keyfile, None, "localhost")
        assert report.trust_store == "the system trust store"

    def test_rsa_key(self, root: trustme.CA, root_file: Path, pair_writer: PairMaker) -> None:
        issued = root.issue_cert("localhost", key_type=trustme.KeyType.RSA)
        report = check_certificate_setup(*pair_writer(issued), root_file, None)
        assert (report.key_type, report.key_size) == ("RSA", 2048)

    @pytest.mark.parametrize(
        "hostname", ["api.example.com", "API.Example.COM.", "localhost", "127.0.0.1", "::1"]
    )
    def test_hostname_coverage(
        self, root: trustme.CA, root_file: Path, pair_writer: PairMaker, hostname: str
    ) -> None:
        issued = root.issue_cert("*.example.com", "localhost", "127.0.0.1", "::1")
        assert check_certificate_setup(*pair_writer(issued), root_file, hostname).sans

    def test_only_wildcard_names_without_public_hostname(
        self, root: trustme.CA, root_file: Path, pair_writer: PairMaker
    ) -> None:
        issued = root.issue_cert("*.example.com")
        assert check_certificate_setup(*pair_writer(issued), root_file, None).sans == (
            "*.example.com",
        )

    def test_expired_cross_sign_does_not_block_a_valid_path(
        self, root: trustme.CA, root_file: Path, tmp_path: Path
    ) -> None:
        """An extra, expired certificate in the file is ignored when another path verifies."""
        certfile, keyfile = short_lived_intermediate_chain(root, tmp_path, intermediate_days=30)
        stale = trustme.CA()
        stale_cert = x509.load_pem_x509_certificate(stale.cert_pem.bytes())
        certfile.write_bytes(certfile.read_bytes() + pem(stale_cert))
        report = check_certificate_setup(certfile, keyfile, root_file, "localhost")
        assert len(report.chain) == 3


class TestFileRefusals:
    """Missing, unreadable, non-PEM, swapped, encrypted or mismatched files are refused."""

    def test_missing_certfile(self, leaf_files: tuple[Path, Path], tmp_path: Path) -> None:
        message = refusal(tmp_path / "nope.pem", leaf_files[1], None, None)
        assert message.startswith(f"[tls] certfile {tmp_path / 'nope.pem'} does not exist:")

    def test_missing_keyfile(self, leaf_files: tuple[Path, Path], tmp_path: Path) -> None:
        message = refusal(leaf_files[0], tmp_path / "nokey.pem", None, None)
        assert "keyfile" in message
        assert "does not exist" in message

    def test_folder_instead_of_file(self, leaf_files: tuple[Path, Path], tmp_path: Path) -> None:
        assert "is a folder" in refusal(tmp_path, leaf_files[1], None, None)

    @pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
    def test_unreadable(self, leaf_files: tuple[Path, Path]) -> None:
        leaf_files[1].chmod(0)
        assert "not readable" in refusal(*leaf_files, None, None)

    def test_not_pem(self, leaf_files: tuple[Path, Path]) -> None:
        leaf_files[0].write_text("hello\n")
        assert "is not a PEM certificate file" in refusal(*leaf_files, None, None)

    def test_der_certificate(self, leaf_files: tuple[Path, Path]) -> None:
        cert = x509.load_pem_x509_certificate(leaf_files[0].read_bytes())
        leaf_files[0].write_bytes(cert.public_bytes(serialization.Encoding.DER))
        message = refusal(*leaf_files, None, None)
        assert "DER (binary)" in message
        assert "openssl x509 -inform der" in message

    def test_damaged_pem(self, leaf_files: tuple[Path, Path]) -> None:
        leaf_files[0].write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        assert "damaged" in refusal(*leaf_files, None, None)

    def test_swapped_files(self, leaf_files: tuple[Path, Path]) -> None:
        message = refusal(leaf_files[1], leaf_files[0], None, None)
        assert "holds a private key, not a certificate" in message

    def test_certificate_as_key(self, leaf_files: tuple[Path, Path]) -> None:
        message = refusal(leaf_files[0], leaf_files[0], None, None)
        assert "holds a certificate, not a private key" in message

    def test_key_not_pem(self, leaf_files: tuple[Path, Path]) -> None:
        leaf_files[1].write_bytes(b"\x30\x82\x01\x00")
        assert "is not a PEM private key" in refusal(*leaf_files, None, None)

    def test_encrypted_key(self, leaf_files: tuple[Path, Path]) -> None:
        key = serialization.load_pem_private_key(leaf_files[1].read_bytes(), password=None)
        leaf_files[1].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"s3cret-passphrase"),
            )
        )
        message = refusal(*leaf_files, None, None)
        assert "encrypted with a passphrase" in message
        assert "s3cret" not in message

    def test_key_does_not_match(self, ca: trustme.CA, leaf_files: tuple[Path, Path]) -> None:
        leaf_files[1].write_bytes(ca.issue_cert("localhost").private_key_pem.bytes())
        message = refusal(*leaf_files, None, None)
        assert message.startswith(f"The private key in {leaf_files[1]} does not belong to")

    def test_chain_out_of_order(
        self, intermediate: trustme.CA, root_file: Path, pair_writer: PairMaker
    ) -> None:
        certfile, keyfile = pair_writer(intermediate.issue_cert("localhost"))
        blocks = certfile.read_text().split("-----END CERTIFICATE-----\n")
        certfile.write_text(blocks[1] + "-----END CERTIFICATE-----\n" + blocks[0] + "-----END CERTIFICATE-----\n")
        message = refusal(certfile, keyfile, root_file, None)
        assert "out of order" in message
        assert "put the leaf first" in message


class TestChainRefusals:
    """Chains a client would reject are refused with the reason and the fix."""

    def test_self_signed(self, tmp_path: Path) -> None:
        certfile, keyfile = self_signed(tmp_path)
        message = refusal(certfile, keyfile, certfile, "localhost")
        assert "is self-signed" in message

    def test_missing_intermediate(
        self, intermediate: trustme.CA, root_file: Path, tmp_path: Path
    ) -> None:
        issued = intermediate.issue_cert("localhost")
        certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
        issued.cert_chain_pems[0].write_to_path(str(certfile))  # the leaf alone, like cert.pem
        issued.private_key_pem.write_to_path(str(keyfile))
        message = refusal(certfile, keyfile, root_file, "localhost")
        assert message.startswith("The intermediate certificate that issued")
        assert "is missing from" in message
        assert "certfile must hold the leaf followed by its intermediate certificates" in message

    def test_root_not_trusted(
        self, intermediate: trustme.CA, ca_file: Path, pair_writer: PairMaker
    ) -> None:
        message = refusal(*pair_writer(intermediate.issue_cert("localhost")), ca_file, None)
        assert "ends at" in message
        assert f"neither in certfile nor in trust_store {ca_file}" in message

    def test_included_root_not_trusted(
        self, root: trustme.CA, intermediate: trustme.CA, ca_file: Path, pair_writer: PairMaker
    ) -> None:
        certfile, keyfile = pair_writer(intermediate.issue_cert("localhost"))
        certfile.write_bytes(certfile.read_bytes() + root.cert_pem.bytes())
        message = refusal(certfile, keyfile, ca_file, None)
        assert "leads to the root" in message
        assert "does not trust" in message

    def test_system_roots_do_not_trust_private_ca(
        self, intermediate: trustme.CA, pair_writer: PairMaker
    ) -> None:
        message = refusal(*pair_writer(intermediate.issue_cert("localhost")), None, "localhost")
        assert "the system trust store" in message

    def test_expired(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca)
        later = NOW + timedelta(days=200)
        message = refusal(certfile, keyfile, ca_file, None, now=later)
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
        assert f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC" in message
        assert f"it is now {later:%Y-%m-%d %H:%M} UTC" in message

    def test_not_yet_valid(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca, not_before=NOW + timedelta(days=2))
        message = refusal(certfile, keyfile, ca_file, None)
        assert "is not valid before" in message
        assert "check the system clock" in message

    def test_expired_intermediate(self, root: trustme.CA, root_file: Path, tmp_path: Path) -> None:
        certfile, keyfile = short_lived_intermediate_chain(root, tmp_path, intermediate_days=5)
        message = refusal(certfile, keyfile, root_file, None, now=NOW + timedelta(days=10))
        assert message.startswith("The intermediate 'CN=Short Intermediate'")
        assert "expired on" in message

    @pytest.mark.parametrize(
        "hostname", ["a.b.example.com", "example.com", "other.test", "10.0.0.1", "::2"]
    )
    def test_hostname_not_covered(
        self, ca: trustme.CA, ca_file: Path, pair_writer: PairMaker, hostname: str
    ) -> None:
        issued = ca.issue_cert("*.example.com", "127.0.0.1", "::1")
        message = refusal(*pair_writer(issued), ca_file, hostname)
        assert f"does not cover server.public_hostname {hostname!r}" in message
        assert "(it names *.example.com, 127.0.0.1, ::1)" in message

    def test_no_subject_alt_name(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca, names=())
        assert "has no DNS or IP subjectAltName" in refusal(certfile, keyfile, ca_file, None)

    def test_client_only_certificate(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        message = refusal(certfile, keyfile, ca_file, None)
        assert "extendedKeyUsage does not include serverAuth" in message

    def test_bad_trust_store(self, leaf_files: tuple[Path, Path], tmp_path: Path) -> None:
        missing = refusal(*leaf_files, tmp_path / "none.pem", None)
        assert missing.endswith("does not exist: point trust_store at the PEM file of your trusted root certificates.")
        (tmp_path / "junk.pem").write_text("junk")
        assert "not a PEM file of CA certificates" in refusal(*leaf_files, tmp_path / "junk.pem", None)
        (tmp_path / "empty").mkdir()
        assert "holds no certificates" in refusal(*leaf_files, tmp_path / "empty", None)


class TestWarnings:
    """Problems that do not stop the service are reported as warnings."""

    def test_expiry_within_window(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca, not_after=NOW + timedelta(days=12, hours=1))
        report = check_certificate_setup(certfile, keyfile, ca_file, None, now=NOW)
        assert report.days_left == 12
        assert len(report.warnings) == 1
        assert "expires on" in report.warnings[0]
        assert "(in 12 days)" in report.warnings[0]
        quiet = check_certificate_setup(
            certfile, keyfile, ca_file, None, expiry_warning_days=7, now=NOW
        )
        assert quiet.warnings == []

    def test_intermediate_expiring(self, root: trustme.CA, root_file: Path, tmp_path: Path) -> None:
        certfile, keyfile = short_lived_intermediate_chain(root, tmp_path, intermediate_days=20)
        report = check_certificate_setup(certfile, keyfile, root_file, None, now=NOW)
        assert [w.split(" expires")[0] for w in report.warnings] == [
            "The intermediate 'CN=Short Intermediate'"
        ]

    def test_key_readable_by_others(self, leaf_files: tuple[Path, Path], ca_file: Path) -> None:
        leaf_files[1].chmod(0o644)
        report = check_certificate_setup(*leaf_files, ca_file, None)
        assert report.warnings == [
            f"{leaf_files[1]} is readable by other users: restrict it with "
            f"`chmod 600 {leaf_files[1]}`."
        ]

    def test_small_rsa_key(self, ca: trustme.CA, ca_file: Path, issue_cert: PairMaker) -> None:
        certfile, keyfile = issue_cert(ca, rsa_bits=1024)
        report = check_certificate_setup(certfile, keyfile, ca_file, None)
        assert report.warnings == ["The RSA key has only 1024 bits: use at least 2048 bits."]
