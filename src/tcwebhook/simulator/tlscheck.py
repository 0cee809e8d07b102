"""An SSL-Labs-style check of a webhook URL from Tradecloud's side of the connection.

Every check returns a ``Check`` (PASS / WARN / FAIL / SKIP with one line of detail); the
report fails when any check fails. Protocol and cipher probes are single handshakes with
client contexts pinned to one protocol version or one cipher family; SKIP means the local
OpenSSL cannot even offer what would be probed, so the server was not tested for it.
"""

from __future__ import annotations

import socket
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.samples import SampleFactory, family_of
from tcwebhook.simulator.trust import (
    SELF_SIGNED_MESSAGE,
    PeerChain,
    common_name,
    days_left,
    diagnose_handshake,
    explain_handshake_failure,
    explain_untrusted,
    fetch_peer_chain,
    find_ssl_error,
)
from tcwebhook.transport.certs import client_context, hostname_matches, is_self_signed, sni_name, subject_alt_names

EXPIRY_WARNING_DAYS = 30


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check result, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass(slots=True)
class TlsReport:
    """All checks of one URL; ``ok`` is False when any check failed."""

    url: str
    host: str
    port: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def status_of(self, name: str) -> Status:
        return next(c.status for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail} for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class _Handshake:
    accepted: bool
    version: str | None = None
    cipher: str | None = None
    error: str | None = None
    local: bool = False  # the failure is on our side: the probe could not be made


# OpenSSL failures that happen before anything reaches the server.
_LOCAL_ERRORS = ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH")


def _handshake(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> _Handshake:
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=sni_name(host)) as tls,
        ):
            cipher = tls.cipher()
            return _Handshake(True, tls.version(), cipher[0] if cipher else None)
    except ssl.SSLError as exc:
        text = f"{exc.reason} {exc}".upper()
        return _Handshake(False, error=str(exc.reason or exc), local=any(e in text for e in _LOCAL_ERRORS))
    except OSError as exc:  # reset, EOF or timeout during the handshake: refused
        return _Handshake(False, error=exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))


def _pinned(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated, which is exactly why we offer them: to see them refused.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    # OpenSSL 3 offers TLS 1.0/1.1 (SHA-1 signatures, old suites) only at security level 0.
    ctx.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    return ctx


# Weak TLS 1.2 families: (check name, OpenSSL cipher string). TLS 1.3 suites are all AEAD + FS.
WEAK_CIPHER_FAMILIES: tuple[tuple[str, str], ...] = (
    ("Weak ciphers: static RSA key exchange (no forward secrecy)", "kRSA:!PSK"),
    ("Weak ciphers: CBC with SHA-1", "SHA1:!kRSA:!aNULL:!eNULL:!PSK:!SRP"),
    ("Weak ciphers: CBC with SHA-256/384 (not AEAD)", "SHA256:SHA384:!kRSA:!aNULL:!eNULL:!PSK:!SRP"),
    ("Weak ciphers: 3DES", "3DES"),
    ("Weak ciphers: RC4", "RC4"),
    ("Weak ciphers: anonymous or NULL", "aNULL:eNULL"),
)


def _protocol_checks(report: TlsReport, timeout: float) -> None:
    host, port = report.host, report.port
    for label, version in (("TLS 1.0", ssl.TLSVersion.TLSv1), ("TLS 1.1", ssl.TLSVersion.TLSv1_1)):
        name = f"{label} refused"
        try:
            result = _handshake(host, port, _pinned(version), timeout)
        except ssl.SSLError:
            result = _Handshake(False, local=True)
        if result.accepted:
            report.add(name, Status.FAIL, f"the server accepts {label} ({result.cipher}); allow 1.2+ only")
        elif result.local:
            report.add(name, Status.SKIP, f"the local OpenSSL cannot offer {label}; not tested")
        else:
            report.add(name, Status.PASS, "refused")
    modern: dict[str, _Handshake] = {}
    for label, version in (("TLS 1.2", ssl.TLSVersion.TLSv1_2), ("TLS 1.3", ssl.TLSVersion.TLSv1_3)):
        modern[label] = _handshake(host, port, _pinned(version, "DEFAULT"), timeout)
    any_modern = any(r.accepted for r in modern.values())
    for label, result in modern.items():
        name = f"{label} accepted"
        if result.accepted:
            report.add(name, Status.PASS, f"accepted ({result.cipher})")
        elif not any_modern:
            report.add(name, Status.FAIL, "refused; Tradecloud needs TLS 1.2 or 1.3")
        elif label == "TLS 1.2":
            report.add(name, Status.WARN, "refused; only TLS 1.3 is offered (older senders need 1.2)")
        else:
            report.add(name, Status.PASS, "not offered (optional: TLS 1.2 is)")


def _cipher_checks(report: TlsReport, timeout: float) -> None:
    for name, ciphers in WEAK_CIPHER_FAMILIES:
        try:
            ctx = _pinned(ssl.TLSVersion.TLSv1_2, f"{ciphers}:@SECLEVEL=0")
        except ssl.SSLError:
            report.add(name, Status.SKIP, "the local OpenSSL cannot offer these suites; not tested")
            continue
        result = _handshake(report.host, report.port, ctx, timeout)
        if result.accepted:
            report.add(name, Status.FAIL, f"the server accepts {result.cipher}")
        elif result.local:
            report.add(name, Status.SKIP, "the local OpenSSL cannot offer these suites; not tested")
        else:
            report.add(name, Status.PASS, "refused")


def _chain_check(report: TlsReport, ca_bundle: Path | None, peer: PeerChain | None, timeout: float) -> None:
    name = "Certificate chain trusted"
    store = f"CA bundle {ca_bundle}" if ca_bundle else "the system trust store"
    ctx = client_context(ca_bundle, check_hostname=False)
    try:
        with (
            socket.create_connection((report.host, report.port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=sni_name(report.host)),
        ):
            pass
    except ssl.SSLCertVerificationError as exc:
        report.add(name, Status.FAIL, explain_untrusted(exc, peer, report.host))
        return
    except ssl.SSLError as exc:
        why = diagnose_handshake(report.host, report.port, exc, timeout=timeout)
        report.add(name, Status.FAIL, why or explain_handshake_failure(exc))
        return
    except OSError as exc:
        report.add(name, Status.FAIL, f"no verifying handshake possible ({exc})")
        return
    sent = len(peer.certificates) if peer else 0
    report.add(name, Status.PASS, f"complete, verifies against {store} ({sent} certificate(s) sent)")


def _key_description(key: Any) -> tuple[Status, str]:
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        return (Status.PASS if bits >= 2048 else Status.FAIL), f"RSA {bits} bits" + (
            "" if bits >= 2048 else " (needs at least 2048)"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
        return (Status.PASS if bits >= 256 else Status.FAIL), f"EC {key.curve.name} ({bits} bits)" + (
            "" if bits >= 256 else " (needs at least 256)"
        )
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        kind = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        return Status.WARN, f"{kind}: public CAs do not issue it and many clients cannot use it"
    if isinstance(key, dsa.DSAPublicKey):
        return Status.FAIL, f"DSA {key.key_size} bits: not accepted by modern clients"
    return Status.WARN, f"unusual key type {type(key).__name__}"


def _certificate_checks(report: TlsReport, peer: PeerChain, now: datetime) -> None:
    leaf = peer.leaf
    subject = common_name(leaf.subject)
    if is_self_signed(leaf):
        report.add("Not self-signed", Status.FAIL, SELF_SIGNED_MESSAGE)
    else:
        report.add("Not self-signed", Status.PASS, f"'{subject}' issued by '{common_name(leaf.issuer)}'")

    names = subject_alt_names(leaf)
    if hostname_matches(names, report.host):
        report.add("Hostname matches", Status.PASS, f"{report.host} is in {', '.join(names)}")
    elif not names:
        report.add("Hostname matches", Status.FAIL, "the certificate has no subjectAltName; clients ignore the CN")
    else:
        report.add("Hostname matches", Status.FAIL, f"the certificate is for {', '.join(names)}, not {report.host}")

    left = days_left(leaf, now)
    until = leaf.not_valid_after_utc.strftime("%Y-%m-%d")
    if leaf.not_valid_before_utc > now:
        report.add("Expiry", Status.FAIL, f"not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    elif left < 0:
        report.add("Expiry", Status.FAIL, f"expired on {until} ({int(-left)} days ago)")
    elif left < EXPIRY_WARNING_DAYS:
        report.add("Expiry", Status.WARN, f"expires on {until}, in {int(left)} days: renew it")
    else:
        report.add("Expiry", Status.PASS, f"valid until {until} ({int(left)} days)")

    status, detail = _key_description(leaf.public_key())
    report.add("Key", status, detail)

    weak: list[str] = []
    for cert in peer.certificates:
        algorithm = cert.signature_hash_algorithm
        if is_self_signed(cert) and cert is not leaf:
            continue  # a root's own signature is never checked
        if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
            weak.append(f"'{common_name(cert.subject)}' ({algorithm.name})")
    if weak:
        report.add("Signature", Status.FAIL, "signed with a broken hash: " + ", ".join(weak))
    else:
        oid = leaf.signature_algorithm_oid
        report.add("Signature", Status.PASS, getattr(oid, "_name", None) or oid.dotted_string)


def _sample_body(url: str, event_name: str | None) -> bytes:
    if event_name is None:
        event_name = "ShipmentIssuedBySupplier" if "shipment" in url.lower() else "OrderIssuedByBuyer"
    family = family_of(event_name)
    return orjson.dumps(SampleFactory().event(family, event_name).data)


def _post(
    url: str, ctx: ssl.SSLContext, timeout: float, body: bytes, credentials: Credentials | None
) -> tuple[int | None, float, str | None]:
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        headers["Authorization"] = credentials.header()
    t0 = time.perf_counter()
    try:
        with httpx.Client(verify=ctx, timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        tls = find_ssl_error(exc)
        reason = explain_handshake_failure(tls) if tls is not None else exc.__class__.__name__
        if isinstance(tls, ssl.SSLCertVerificationError):
            reason = "the certificate is not trusted (see the chain checks)"
        return None, time.perf_counter() - t0, reason
    return response.status_code, time.perf_counter() - t0, None


def _auth_checks(
    report: TlsReport,
    ca_bundle: Path | None,
    credentials: Credentials,
    timeout: float,
    event_name: str | None,
) -> None:
    ctx = client_context(ca_bundle)
    status, latency, error = _post(report.url, ctx, timeout, _sample_body(report.url, event_name), credentials)
    name = f"Test event ({credentials.scheme} auth)"
    if status is None:
        report.add(name, Status.FAIL, f"not delivered: {error}")
    elif 200 <= status < 300:
        report.add(name, Status.PASS, f"answered {status} in {latency * 1000:.0f} ms")
    else:
        report.add(name, Status.FAIL, f"answered {status}; Tradecloud needs a 2xx for an accepted event")
    status, _, error = _post(report.url, ctx, timeout, _sample_body(report.url, event_name), None)
    name = "Request without credentials refused"
    if status in (401, 403):
        report.add(name, Status.PASS, f"answered {status}")
    elif status is not None and 200 <= status < 300:
        report.add(name, Status.FAIL, f"answered {status}: the endpoint accepts events from anyone")
    elif status is None:
        report.add(name, Status.WARN, f"no answer: {error}")
    else:
        report.add(name, Status.WARN, f"answered {status}; expected 401")


def check_tls(
    url: str,
    *,
    ca_bundle: Path | None = None,
    credentials: Credentials | None = None,
    timeout: float = 5.0,
    event_name: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TlsReport:
    """Run every check against ``url`` (blocking; a few dozen handshakes at most).

    Raises ``ValueError`` for a URL that is not ``https://``, ``StartupError`` for an unusable
    CA bundle; everything about the server ends up in the report.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https:// URL; Tradecloud only calls HTTPS endpoints")
    if event_name is not None:
        family_of(event_name)  # KeyError for an undocumented name, before any network traffic
    report = TlsReport(url=url, host=parts.hostname, port=parts.port or 443)
    client_context(ca_bundle)  # a bad bundle fails fast, before any network traffic
    try:
        with socket.create_connection((report.host, report.port), timeout=timeout):
            pass
    except OSError as exc:
        report.add("Reachable", Status.FAIL, f"cannot connect to {report.host}:{report.port} ({exc})")
        return report
    report.add("Reachable", Status.PASS, f"{report.host}:{report.port} accepts connections")

    _protocol_checks(report, timeout)
    _cipher_checks(report, timeout)
    try:
        peer: PeerChain | None = fetch_peer_chain(report.host, report.port, timeout=timeout)
    except (OSError, ValueError) as exc:
        tls = find_ssl_error(exc)
        detail = str(exc)
        if tls is not None:
            why = diagnose_handshake(report.host, report.port, tls, timeout=timeout)
            detail = why or explain_handshake_failure(tls)
        report.add("Certificate", Status.FAIL, f"no certificate could be read: {detail}")
        peer = None
    _chain_check(report, ca_bundle, peer, timeout)
    if peer is not None:
        _certificate_checks(report, peer, now())
    if credentials is not None:
        _auth_checks(report, ca_bundle, credentials, timeout, event_name)
    return report
