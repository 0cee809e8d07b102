"""A local development CA and a ``localhost`` certificate it signs, made once and reused.

For trying the service on one machine only: clients trust ``ca_cert``; Tradecloud never will.
The CA is name-constrained to the loopback names, so even if someone installs it as a trusted
root, its key cannot vouch for any real host.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tcwebhook.errors import CertificateError
from tcwebhook.filemodes import write_atomic
from tcwebhook.transport.certcheck import check_certificate_setup

log = structlog.get_logger(__name__)

CA_NAME = "tcwebhook development CA"
LEAF_DNS_NAMES = ("localhost",)
LEAF_IP_ADDRESSES = ("127.0.0.1", "::1")
CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Issue certificates as valid from a little earlier, so a client clock slightly behind accepts them.
_BACKDATE = timedelta(hours=1)


@dataclass(frozen=True)
class DevPki:
    """Paths of the development PKI: trust ``ca_cert``; serve ``cert`` with ``key``."""

    directory: Path
    ca_cert: Path
    cert: Path
    key: Path

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"


def ensure_dev_pki(directory: Path, *, now: datetime | None = None) -> DevPki:
    """Create the CA and leaf in ``directory`` (0700) unless usable ones are already there.

    The leaf is issued again when missing, broken, not matching its key, not verifying against
    the CA, or expiring within 30 days; the CA is only replaced when it is itself unusable.
    """
    try:
        return _ensure(directory, (now or datetime.now(UTC)).astimezone(UTC))
    except OSError as exc:
        raise CertificateError(
            f"Cannot write the development CA to {directory} ({exc.strerror or exc}): choose a "
            "folder this user can write."
        ) from None


def _ensure(directory: Path, now: datetime) -> DevPki:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    pki = DevPki(directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca = _load_ca(pki, now)
    if ca is None:
        ca = _create_ca(pki, now)
        log.info("devca.ca_created", ca_cert=str(pki.ca_cert), subject=CA_NAME)
    elif _leaf_usable(pki, now):
        _tighten(pki.key)
        log.debug("devca.reused", directory=str(directory))
        return pki
    _issue_leaf(pki, ca, now)
    log.info("devca.leaf_issued", cert=str(pki.cert), names=[*LEAF_DNS_NAMES, *LEAF_IP_ADDRESSES])
    return pki


def _load_ca(
    pki: DevPki, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc - RENEW_BEFORE:
        return None
    _tighten(pki.ca_key)
    return cert, key


def _leaf_usable(pki: DevPki, now: datetime) -> bool:
    try:
        report = check_certificate_setup(
            pki.cert, pki.key, pki.ca_cert, None, expiry_warning_days=0, now=now
        )
    except CertificateError:
        return False
    wanted = {*LEAF_DNS_NAMES, *(str(ipaddress.ip_address(ip)) for ip in LEAF_IP_ADDRESSES)}
    return set(report.sans) == wanted and report.not_after - now > RENEW_BEFORE


def _create_ca(
    pki: DevPki, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    loopback = x509.NameConstraints(
        permitted_subtrees=[
            *(x509.DNSName(n) for n in LEAF_DNS_NAMES),
            x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
            x509.IPAddress(ipaddress.ip_network("::1/128")),
        ],
        excluded_subtrees=None,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(loopback, critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(pki.ca_key, _key_pem(key), 0o600)
    write_atomic(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _issue_leaf(
    pki: DevPki, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], now: datetime
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [
        *(x509.DNSName(n) for n in LEAF_DNS_NAMES),
        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in LEAF_IP_ADDRESSES),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LEAF_DNS_NAMES[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # Each file is replaced atomically; a reloader polling between the two writes sees a
    # mismatched pair, refuses it and takes the new pair on its next poll.
    write_atomic(pki.key, _key_pem(key), 0o600)
    write_atomic(pki.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _tighten(key_path: Path) -> None:
    with contextlib.suppress(OSError):
        if key_path.stat().st_mode & 0o077:
            key_path.chmod(0o600)
