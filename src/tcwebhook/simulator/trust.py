"""How the sender decides to trust a webhook server, and why it refuses one.

The sender verifies like Tradecloud (``transport.certs.client_context``): TLS 1.2 or newer, the
chain checked against the usual public roots (or only a test CA bundle), the host name checked.
When verification fails, a
second handshake without verification fetches what the server presents, so the refusal can
say *why* (self-signed, chain incomplete, expired, wrong host).
"""

from __future__ import annotations

import _ssl
import socket
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from tcwebhook.transport.certs import is_self_signed, sni_name, subject_alt_names

SELF_SIGNED_MESSAGE = (
    "the server presents a self-signed certificate; Tradecloud refuses self-signed "
    "certificates — use a certificate from a public CA"
)

# OpenSSL X509_V_ERR_* codes the explanations distinguish.
_NOT_YET_VALID = 9
_EXPIRED = 10
_SELF_SIGNED_LEAF = 18
_SELF_SIGNED_IN_CHAIN = 19
_NO_LOCAL_ISSUER = 20
_CANNOT_VERIFY_LEAF = 21
_NO_ISSUER = 2
_HOSTNAME_MISMATCH = 62


def unverified_context() -> ssl.SSLContext:
    """A context that completes a handshake with anything, to look at the peer's certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Level 0 so a server with an old protocol or a weak key still shows its certificate.
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


@dataclass(frozen=True, slots=True)
class PeerChain:
    """The certificates a server sends, leaf first, and what the handshake negotiated."""

    certificates: tuple[x509.Certificate, ...]
    version: str | None
    cipher: str | None

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]


def _sent_chain(tls: ssl.SSLSocket) -> list[bytes]:
    # Python 3.13 exposes the chain the peer sent; 3.11/3.12 have it on the private object.
    getter: Any = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    ders: list[bytes] = []
    if getter is not None:
        for item in getter() or ():
            ders.append(item if isinstance(item, bytes) else item.public_bytes(_ssl.ENCODING_DER))
    if not ders:
        leaf = tls.getpeercert(binary_form=True)
        if leaf:
            ders.append(leaf)
    return ders


def fetch_peer_chain(host: str, port: int, *, timeout: float = 10.0) -> PeerChain:
    """Handshake without verification and return the certificates the server sends.

    Raises ``OSError`` (including ``ssl.SSLError``) when no handshake is possible at all.
    """
    ctx = unverified_context()
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=sni_name(host)) as tls,
    ):
        ders = _sent_chain(tls)
        cipher = tls.cipher()
        version = tls.version()
    if not ders:
        raise ssl.SSLError("the server sent no certificate")
    return PeerChain(
        certificates=tuple(x509.load_der_x509_certificate(d) for d in ders),
        version=version,
        cipher=cipher[0] if cipher else None,
    )


def common_name(name: x509.Name) -> str:
    """The CN of a name, or the whole RFC 4514 string when it has none."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if attrs:
        value = attrs[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return name.rfc4514_string() or "(empty name)"


def find_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside an exception chain (httpx wraps it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """Any TLS error inside an exception chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _day(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d")


def explain_untrusted(error: ssl.SSLCertVerificationError | None, peer: PeerChain | None, host: str) -> str:
    """One sentence saying why the sender refuses the server's certificate."""
    code = error.verify_code if error is not None else None
    reason = (error.verify_message if error is not None else None) or "verification failed"
    if peer is not None and is_self_signed(peer.leaf):
        return SELF_SIGNED_MESSAGE
    leaf = peer.leaf if peer is not None else None
    if code == _EXPIRED:
        if leaf is not None:
            return (
                f"the server certificate expired on {_day(leaf.not_valid_after_utc)}; "
                "Tradecloud refuses expired certificates — renew it"
            )
        return "a certificate in the server's chain has expired; Tradecloud refuses it — renew it"
    if code == _NOT_YET_VALID:
        return "the server certificate is not valid yet; check its notBefore date and the clocks"
    if code == _HOSTNAME_MISMATCH:
        names = ", ".join(subject_alt_names(leaf)) if leaf is not None else ""
        return (
            f"the server certificate is for {names or 'other names'}, not {host}; Tradecloud "
            "refuses a certificate that does not match the webhook URL's host name"
        )
    if code == _SELF_SIGNED_IN_CHAIN:
        root = common_name(peer.certificates[-1].subject) if peer is not None else "a private CA"
        return (
            f"the server certificate is not trusted: its chain ends in '{root}', a root CA that "
            "is not trusted (a private CA); Tradecloud only trusts public CAs"
        )
    if code in (_NO_LOCAL_ISSUER, _CANNOT_VERIFY_LEAF, _NO_ISSUER, _SELF_SIGNED_LEAF):
        if peer is None:
            return f"the server certificate is not trusted, chain incomplete or unknown CA ({reason})"
        issuer = common_name(peer.certificates[-1].issuer)
        if len(peer.certificates) == 1:
            return (
                "the server certificate is not trusted, chain incomplete: the server sends only "
                f"its own certificate, issued by '{issuer}', which is not a trusted root; serve "
                "the full chain (certificate followed by its intermediate CA certificates), or "
                "use a certificate from a public CA"
            )
        return (
            f"the server certificate is not trusted: the {len(peer.certificates)} certificates "
            f"the server sends end at an issuer '{issuer}' that is not a trusted root (chain "
            "incomplete or a private CA); serve the full chain of a public CA"
        )
    return f"the server certificate is not trusted ({reason})"


def _definite_cause(error: ssl.SSLError) -> str | None:
    text = f"{error.reason or ''} {error}".upper()
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
        return "the server does not speak TLS on this port (plain HTTP?); Tradecloud needs HTTPS"
    if "PROTOCOL_VERSION" in text or "UNSUPPORTED_PROTOCOL" in text or "NO_PROTOCOLS" in text:
        return "the server does not offer TLS 1.2 or 1.3; Tradecloud connects with TLS 1.2 or newer only"
    if "HANDSHAKE_FAILURE" in text or "NO_SHARED_CIPHER" in text:
        return "the TLS handshake failed: no cipher suite in common with a TLS 1.2+ client"
    return None


def explain_handshake_failure(error: ssl.SSLError) -> str:
    """One sentence for a TLS failure that is not about the certificate."""
    return _definite_cause(error) or f"the TLS handshake failed ({error.reason or error})"


def _old_protocol(host: str, port: int, timeout: float) -> str | None:
    """The protocol version the server negotiates when offered only TLS 1.0/1.1, if any."""
    ctx = unverified_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=sni_name(host)) as tls,
        ):
            return tls.version()
    except OSError:
        return None


def _speaks_plain_http(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def diagnose_handshake(host: str, port: int, error: ssl.SSLError, *, timeout: float = 10.0) -> str | None:
    """Why a TLS 1.2+ handshake with the server cannot work, or ``None`` if nothing says so.

    Servers built on asyncio end a refused handshake without an alert, so the client only
    sees an EOF; a second handshake offering only TLS 1.0/1.1, or a plain HTTP request,
    shows what the server does instead. ``None`` means the failure looks transient (a reset
    or EOF the probes cannot explain).
    """
    text = f"{error.reason or ''} {error}".upper()
    if "EOF" in text or "RESET" in text or "HANDSHAKE_FAILURE" in text:
        old = _old_protocol(host, port, timeout)
        if old is not None:
            return f"the server offers only {old.replace('v', ' ')}; Tradecloud connects with TLS 1.2 or newer only"
        if _speaks_plain_http(host, port, timeout):
            return "the server answers plain HTTP on this port, not TLS; Tradecloud needs HTTPS"
    return _definite_cause(error)


def days_left(cert: x509.Certificate, now: datetime | None = None) -> float:
    """Days until ``notAfter`` (negative once expired)."""
    now = now or datetime.now(UTC)
    return (cert.not_valid_after_utc - now).total_seconds() / 86400
