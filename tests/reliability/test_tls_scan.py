"""sslyze scans the running server against Mozilla's "intermediate" TLS configuration."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
from sslyze.scanner.models import ScanCommandsExtraArguments, ServerScanRequest, ServerScanStatusEnum
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
from sslyze.scanner.scanner import Scanner
from sslyze.server_setting import ServerNetworkLocation
from tests.support.servers import RunningServer, ServerFactory

pytestmark = [
    pytest.mark.reliability,
    # sslyze's bundled trust stores hold an old root with a non-positive serial number.
    pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning"),
]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tcwebhook reliability suite"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_rfc5280_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a 90-day ECDSA leaf as a public CA would issue them (RFC 5280-clean extensions).

    trustme's leaves mark subjectAltName critical next to a non-empty subject, which strict
    verifiers (sslyze's) reject, so this scan gets certificates of its own.
    """
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("tcwebhook test root"))
        .issuer_name(_name("tcwebhook test root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def scanned_server(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("tls-scan"))
    directory = factory.base / "scan"
    config, port = factory.write_config(directory)
    write_rfc5280_pki(directory)  # replaces the files the config points at
    server = factory.start_with(config, port, directory)
    try:
        yield server
    finally:
        factory.stop_all()


def _scan(server: RunningServer) -> Any:
    location = ServerNetworkLocation(hostname="localhost", port=server.port, ip_address="127.0.0.1")
    request = ServerScanRequest(
        server_location=location,
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(server.ca_path))
        ),
    )
    scanner = Scanner(per_server_concurrent_connections_limit=4, concurrent_server_scans_limit=1)
    scanner.queue_scans([request])
    results = list(scanner.get_results())
    assert len(results) == 1
    return results[0]


class TestMozillaIntermediate:
    """The TLS configuration a client sees is compliant with Mozilla's intermediate profile."""

    def test_compliant(self, scanned_server: RunningServer) -> None:
        result = _scan(scanned_server)
        assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
        failed = {
            cmd.value: "".join(getattr(result.scan_result, cmd.value).error_trace.format())
            for cmd in SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER
            if getattr(result.scan_result, cmd.value).status != ScanCommandAttemptStatusEnum.COMPLETED
        }
        assert not failed, f"scan commands that did not complete: {failed}"
        profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
        try:
            check_server_against_tls_configuration(result, profile)
        except ServerNotCompliantWithTlsConfiguration as exc:
            pytest.fail(f"not compliant with Mozilla intermediate: {exc.issues}")
        # What the profile implies, stated plainly.
        versions = {
            name for name in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3")
            if getattr(result.scan_result, f"{name}_cipher_suites").result.is_tls_version_supported
        }
        assert versions == {"tls_1_2", "tls_1_3"}
        # The key-exchange groups come from the OpenSSL configuration serve runs under.
        curves = result.scan_result.elliptic_curves.result
        assert {c.name for c in curves.supported_curves} == {"X25519", "secp256r1", "secp384r1"}
        assert scanned_server.proc.poll() is None
