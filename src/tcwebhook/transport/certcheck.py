"""Start-up checks of the TLS certificate, key and chain, with one-sentence fixes.

Tradecloud only delivers to an endpoint whose chain it can verify, so a bad chain must stop the
service at start-up (``CertificateError``) rather than surface as failed webhooks later.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from tcwebhook.errors import CertificateError
from tcwebhook.transport.certs import hostname_matches, ip_literal, is_self_signed, normalise_host, subject_alt_names

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL
)
_DATE = "%Y-%m-%d %H:%M UTC"
_CONTENTS = {
    "certfile": "certificate chain",
    "keyfile": "private key",
    "trust_store": "trusted root certificates",
}


@dataclass(frozen=True)
class CertReport:
    """What the checks found; ``warnings`` are problems that do not stop the service."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    days_left: int
    key_type: str
    key_size: int
    fingerprint_sha256: str
    chain: tuple[str, ...]
    trust_store: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PemPair:
    """The bytes of a certificate file and its key file, read once so checks and loading agree."""

    certfile: Path
    keyfile: Path
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)

    @classmethod
    def read(cls, certfile: Path, keyfile: Path) -> PemPair:
        """Read both files; raises ``CertificateError`` when one is missing or unreadable."""
        return cls(certfile, keyfile, _read(certfile, "certfile"), _read(keyfile, "keyfile"))

    @property
    def digest(self) -> str:
        """A hash of both files, to notice any change (even one keeping size and mtime)."""
        h = hashlib.sha256()
        for part in (self.cert_pem, self.key_pem):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.hexdigest()


def check_certificate_setup(
    certfile: Path,
    keyfile: Path,
    trust_store: Path | None,
    public_hostname: str | None,
    *,
    expiry_warning_days: int = 30,
    now: datetime | None = None,
) -> CertReport:
    """Check that ``certfile``/``keyfile`` make a chain a TLS client will accept.

    ``trust_store`` is a PEM bundle (or a folder of them) of trusted roots; ``None`` means the
    system roots. Raises ``CertificateError`` with one sentence saying what is wrong and how to
    fix it; problems that do not stop the service end up in ``CertReport.warnings``.
    """
    return check_pem_pair(
        PemPair.read(certfile, keyfile),
        trust_store,
        public_hostname,
        expiry_warning_days=expiry_warning_days,
        now=now,
    )


def check_pem_pair(
    pair: PemPair,
    trust_store: Path | None,
    public_hostname: str | None,
    *,
    expiry_warning_days: int = 30,
    now: datetime | None = None,
) -> CertReport:
    """The checks of ``check_certificate_setup`` on bytes already read."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    certs = _parse_certificates(pair.cert_pem, pair.certfile, pair.keyfile)
    key = _parse_key(pair.key_pem, pair.keyfile, pair.certfile)
    leaf = _leaf_matching_key(certs, key, pair.certfile, pair.keyfile)
    intermediates = certs[1:]
    if is_self_signed(leaf):
        raise CertificateError(
            f"The certificate in {pair.certfile} ({_name(leaf.subject)}) is self-signed, which "
            "Tradecloud will not trust: use a certificate issued by a public CA such as "
            "Let's Encrypt."
        )
    _check_validity(leaf, now, f"The certificate in {pair.certfile}")
    sans = subject_alt_names(leaf)
    if not sans:
        raise CertificateError(
            f"The certificate in {pair.certfile} has no DNS or IP subjectAltName, so TLS clients "
            "cannot match it to a host name: reissue it with the public host name as a SAN."
        )
    if public_hostname is not None and not hostname_matches(sans, public_hostname):
        raise CertificateError(
            f"The certificate in {pair.certfile} does not cover server.public_hostname "
            f"{public_hostname!r} (it names {', '.join(sans)}): use a certificate for that name "
            "or correct public_hostname."
        )
    anchors, store_label = _trust_anchors(trust_store)
    hostname = public_hostname or _probe_name(sans)
    chain = _verify_chain(leaf, intermediates, anchors, store_label, hostname, now, pair.certfile)
    public_key = key.public_key()
    key_type, key_size = _describe_key(public_key)
    found = _warnings(chain, key_type, key_size, pair.keyfile, now, expiry_warning_days)
    return CertReport(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        sans=sans,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        days_left=(leaf.not_valid_after_utc - now) // timedelta(days=1),
        key_type=key_type,
        key_size=key_size,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        chain=tuple(c.subject.rfc4514_string() for c in chain),
        trust_store=store_label,
        warnings=found,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"[tls] {what} {path} does not exist: point {what} at the PEM file of your "
            f"{_CONTENTS[what]}."
        ) from None
    except IsADirectoryError:
        raise CertificateError(
            f"[tls] {what} {path} is a folder: point {what} at the PEM file itself."
        ) from None
    except PermissionError:
        raise CertificateError(
            f"[tls] {what} {path} is not readable by this user: give the service user read "
            "access to it."
        ) from None
    except OSError as exc:
        raise CertificateError(
            f"[tls] {what} {path} cannot be read ({exc.strerror}): check the file and its disk."
        ) from None


def _parse_certificates(data: bytes, certfile: Path, keyfile: Path) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if b"PRIVATE KEY-----" in data:
            raise CertificateError(
                f"{certfile} holds a private key, not a certificate: check that certfile and "
                f"keyfile ({keyfile}) are not swapped."
            )
        if _is_der_certificate(data):
            raise CertificateError(
                f"{certfile} is a DER (binary) certificate, not PEM: convert it with "
                f"`openssl x509 -inform der -in {certfile} -out {certfile}.pem`."
            )
        raise CertificateError(
            f"{certfile} is not a PEM certificate file: it must contain "
            "'-----BEGIN CERTIFICATE-----' blocks, the leaf first and then its intermediates."
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(
            f"{certfile} holds a damaged PEM certificate block: copy the chain again from your CA."
        ) from None


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _parse_key(data: bytes, keyfile: Path, certfile: Path) -> PrivateKeyTypes:
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise CertificateError(
                f"{keyfile} holds a certificate, not a private key: check that certfile "
                f"({certfile}) and keyfile are not swapped."
            )
        raise CertificateError(
            f"{keyfile} is not a PEM private key: it must contain a '-----BEGIN PRIVATE KEY-----' "
            "block or its EC/RSA variant (convert a DER key with `openssl pkey -inform der`)."
        )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateError(
            f"{keyfile} is encrypted with a passphrase, which the service cannot enter: store it "
            "unencrypted (`openssl pkey -in KEY -out KEY.plain`) and protect it with chmod 600."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(
            f"{keyfile} holds a damaged or unsupported private key: export the key again as PEM."
        ) from None


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    der: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _leaf_matching_key(
    certs: Sequence[x509.Certificate], key: PrivateKeyTypes, certfile: Path, keyfile: Path
) -> x509.Certificate:
    wanted = _public_der(key.public_key())
    for index, cert in enumerate(certs):
        if _public_der(cert.public_key()) == wanted:
            if index == 0:
                return cert
            raise CertificateError(
                f"{certfile} lists its certificates out of order ({_name(cert.subject)}, the one "
                f"matching {keyfile}, is number {index + 1}): put the leaf first, then its "
                "intermediates."
            )
    raise CertificateError(
        f"The private key in {keyfile} does not belong to the certificate in {certfile} "
        f"({_name(certs[0].subject)}): use the key generated with this certificate's request."
    )


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        raise CertificateError(
            f"{what} expired on {end:{_DATE}} (it is now {now:{_DATE}}): renew it and replace "
            "the file."
        )
    if now < start:
        raise CertificateError(
            f"{what} is not valid before {start:{_DATE}} (it is now {now:{_DATE}}): check the "
            "system clock or wait until then."
        )


def _probe_name(sans: Sequence[str]) -> str:
    """A concrete name the certificate must serve, for chain checks when no host name is set."""
    for san in sans:
        if ip_literal(san) is None:
            # A wildcard has to be checked through one name it covers.
            return "tcwebhook-probe" + san[1:] if san.startswith("*.") else san
    return sans[0]


def _trust_anchors(trust_store: Path | None) -> tuple[list[x509.Certificate], str]:
    if trust_store is None:
        return _system_anchors(), "the system trust store"
    if trust_store.is_dir():
        # A folder in the style of /etc/ssl/certs: read every certificate found in it.
        anchors = [
            cert
            for path in sorted(trust_store.iterdir())
            if path.is_file()
            for cert in _lenient_certificates(_read(path, "trust_store"))
        ]
    else:
        anchors = _strict_certificates(_read(trust_store, "trust_store"), trust_store)
    if not anchors:
        raise CertificateError(
            f"[tls] trust_store {trust_store} holds no certificates: put your CA's root "
            "certificate(s) there in PEM form."
        )
    return anchors, f"trust_store {trust_store}"


def _strict_certificates(data: bytes, path: Path) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise CertificateError(
            f"[tls] trust_store {path} is not a PEM file of CA certificates: point it at the "
            "root certificate(s) of your CA in PEM form."
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(
            f"[tls] trust_store {path} holds a damaged PEM certificate block: copy the CA "
            "certificate again."
        ) from None


def _lenient_certificates(data: bytes) -> list[x509.Certificate]:
    # System bundles hold a few old roots cryptography refuses or warns about (e.g. a negative
    # serial number); skip or quietly accept those, they are not the operator's to fix.
    found: list[x509.Certificate] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in _PEM_BLOCK.findall(data):
            try:
                found.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return found


def _system_anchors() -> list[x509.Certificate]:
    paths = ssl.get_default_verify_paths()
    anchors: list[x509.Certificate] = []
    if paths.cafile:
        try:
            anchors = _lenient_certificates(Path(paths.cafile).read_bytes())
        except OSError:
            anchors = []
    if not anchors and paths.capath and os.path.isdir(paths.capath):
        for entry in sorted(Path(paths.capath).iterdir()):
            try:
                anchors.extend(_lenient_certificates(entry.read_bytes()))
            except OSError:
                continue
    if not anchors:
        anchors = _certifi_anchors()
    if not anchors:
        raise CertificateError(
            "No system CA certificates were found to check the chain against: install the "
            "ca-certificates package or set [tls] trust_store."
        )
    return anchors


def _certifi_anchors() -> list[x509.Certificate]:
    try:
        import certifi
    except ImportError:
        return []
    return _lenient_certificates(Path(certifi.where()).read_bytes())


def _eku_allows_server(
    policy: Policy, cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None
) -> None:
    if ext is None:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH in ext or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ext:
        return
    raise ValueError("the certificate's extendedKeyUsage does not include serverAuth")


def _leaf_policy() -> ExtensionPolicy:
    # The Web PKI defaults also enforce CA/Browser Forum criticality rules that TLS clients
    # (OpenSSL, Java, Go) ignore and private CAs rarely follow; judge the leaf as those clients do.
    return (
        ExtensionPolicy.webpki_defaults_ee()
        .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_allows_server)
    )


def _verifier_subject(name: str) -> Subject:
    ip = ip_literal(name)
    if ip is not None:
        return x509.IPAddress(ip)
    return x509.DNSName(normalise_host(name))


def _verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    store_label: str,
    hostname: str,
    now: datetime,
    certfile: Path,
) -> list[x509.Certificate]:
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(now)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_leaf_policy()
        )
        .build_server_verifier(_verifier_subject(hostname))
    )
    try:
        return verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise CertificateError(
            _explain_chain_failure(leaf, intermediates, anchors, store_label, certfile, now, exc)
        ) from None


def _explain_chain_failure(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    store_label: str,
    certfile: Path,
    now: datetime,
    exc: VerificationError,
) -> str:
    anchor_names = {a.subject for a in anchors}
    by_subject = {c.subject: c for c in intermediates}
    top = leaf
    seen = {leaf.subject}
    # Follow the issuer names through certfile to the last certificate it holds.
    while top.issuer in by_subject and top.issuer not in seen and top.issuer not in anchor_names:
        seen.add(top.issuer)
        top = by_subject[top.issuer]
        # Expired intermediates are only fatal when no other path exists, as here.
        try:
            _check_validity(top, now, f"The intermediate {_name(top.subject)} in {certfile}")
        except CertificateError as expired:
            return str(expired)
    if top.issuer not in anchor_names and not is_self_signed(top):
        if top is leaf:
            return (
                f"The intermediate certificate that issued {_name(leaf.subject)} "
                f"({_name(leaf.issuer)}) is missing from {certfile}: certfile must hold the leaf "
                "followed by its intermediate certificates (for Let's Encrypt use fullchain.pem), "
                f"or, if that issuer is a private root CA, set [tls] trust_store to it (checked "
                f"against {store_label})."
            )
        return (
            f"The chain in {certfile} ends at {_name(top.subject)}, whose issuer "
            f"{_name(top.issuer)} is neither in certfile nor in {store_label}: add the missing "
            "intermediate to certfile after the leaf, or trust the right root."
        )
    if is_self_signed(top) and top.subject not in anchor_names:
        return (
            f"The chain in {certfile} leads to the root {_name(top.subject)}, which "
            f"{store_label} does not trust: use a certificate from a trusted CA or set "
            "[tls] trust_store to that root."
        )
    reason = str(exc).removeprefix("validation failed: ").split(" (encountered processing", 1)[0]
    reason = reason.split("validator failed: ValueError: ", 1)[-1]
    return (
        f"The certificate chain in {certfile} does not verify against {store_label} ({reason}): "
        "reissue the certificate for server use (serverAuth) from a CA the clients trust."
    )


def _describe_key(public_key: object) -> tuple[str, int]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}", public_key.curve.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(public_key).__name__, 0


def _warnings(
    chain: Sequence[x509.Certificate],
    key_type: str,
    key_size: int,
    keyfile: Path,
    now: datetime,
    expiry_warning_days: int,
) -> list[str]:
    warnings: list[str] = []
    window = timedelta(days=expiry_warning_days)
    for position, cert in enumerate(chain[:-1] or chain):
        end = cert.not_valid_after_utc
        if end - now < window:
            days = (end - now) // timedelta(days=1)
            what = "The certificate" if position == 0 else f"The intermediate {_name(cert.subject)}"
            warnings.append(
                f"{what} expires on {end:{_DATE}} (in {days} days): renew it before then."
            )
    if key_type == "RSA" and key_size < 2048:
        warnings.append(f"The RSA key has only {key_size} bits: use at least 2048 bits.")
    elif key_type.startswith("Ed"):
        warnings.append(f"Many TLS clients cannot use {key_type} certificates: prefer EC P-256.")
    warnings.extend(_key_permission_warnings(keyfile))
    return warnings


def _key_permission_warnings(keyfile: Path) -> list[str]:
    if os.name != "posix":
        return []
    try:
        mode = keyfile.stat().st_mode
    except OSError:
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"{keyfile} is readable by other users: restrict it with `chmod 600 {keyfile}`."]
    return []


def _name(name: x509.Name) -> str:
    return f"'{name.rfc4514_string() or '(empty name)'}'"

