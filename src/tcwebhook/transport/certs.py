"""Certificates as a TLS client judges them, and the client TLS contexts that do the judging.

One module for what the start-up checks (``certcheck``), ``check-tls`` and ``send`` (the
simulator), the http sink and the Tradecloud API client all need, so they agree with each other:
self-signed detection, the names a certificate is valid for, RFC 6125 host-name matching (IDNA
normalised) and a verifying client context (TLS 1.2 or newer).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from tcwebhook.errors import StartupError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def subject_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names, then the IP addresses, of the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


def ip_literal(host: str) -> IPAddress | None:
    """The IP address ``host`` spells (brackets allowed, as in URLs), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    """A DNS name as certificates hold it: lower case, no trailing dot, IDNA A-labels."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host  # not a valid IDN: compared as given, so it simply matches nothing


def hostname_matches(names: Sequence[str], host: str) -> bool:
    """Whether ``host`` is covered by ``names`` (a subjectAltName list; the CN is never used).

    RFC 6125: DNS names compare case-insensitively after IDNA encoding, a wildcard stands only
    for the whole left-most label (``*.example.com`` covers ``a.example.com``, not
    ``example.com`` or ``a.b.example.com``), and an IP address matches only an IP entry.
    """
    wanted_ip = ip_literal(host)
    if wanted_ip is not None:
        return any(ip_literal(name) == wanted_ip for name in names)
    wanted = normalise_host(host)
    for name in names:
        if ip_literal(name) is not None:
            continue
        pattern = name.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*."):
            label, _, rest = wanted.partition(".")
            if label and rest and rest == pattern[2:]:
                return True
    return False


def sni_name(host: str) -> str | None:
    """The name to send as SNI: none for an IP address literal."""
    return None if ip_literal(host) is not None else host


def client_context(
    ca_bundle: Path | None = None,
    *,
    verify: bool = True,
    check_hostname: bool = True,
    setting: str = "CA bundle",
) -> ssl.SSLContext:
    """A client context: TLS 1.2 or newer, ALPN http/1.1, and whom to trust.

    With ``ca_bundle`` only the CA certificates in that PEM file are trusted; without it the
    system store and certifi's Mozilla bundle both are (internal endpoints often use a company CA
    installed in the system store, public ones a CA from the Mozilla list). ``verify=False``
    trusts anyone: for a sink an operator explicitly configured so. ``setting`` names the option
    in the one-sentence ``StartupError`` raised for an unusable bundle.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.check_hostname = check_hostname
    if ca_bundle is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        ctx.load_verify_locations(cafile=certifi.where())
        return ctx
    try:
        ctx.load_verify_locations(cafile=str(ca_bundle))
    except FileNotFoundError:
        raise StartupError(f"{setting} {ca_bundle} does not exist: point it at an existing PEM file.") from None
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise StartupError(
            f"{setting} {ca_bundle} holds no usable PEM certificate ({why}): point it at a PEM file "
            "with the CA certificate(s) to trust."
        ) from None
    return ctx
