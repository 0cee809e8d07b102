"""The challenges being answered now: http-01 tokens, and tls-alpn-01 (RFC 8737) validation contexts."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acme import challenges, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from josepy.jwk import JWK

from tcwebhook.transport.acme.files import private_pem

ACME_TLS_ALPN = "acme-tls/1"
_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 §3


# tls-alpn-01 is not among the acme package's challenge types, so it is declared here.


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737: a certificate for the name, with the key authorization's digest in it."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: JWK, **unused: Any) -> str:
        return self.key_authorization(account_key)


def tls_alpn_context(name: str, key_authorization: str) -> ssl.SSLContext:
    """A server context that presents the RFC 8737 validation certificate for ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        # The extension's value is the DER OCTET STRING holding the SHA-256 digest.
        .add_extension(x509.UnrecognizedExtension(_ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(private_pem(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    return ctx


class Challenges:
    """The challenges being validated now: http-01 tokens and tls-alpn-01 contexts by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.http01: dict[str, str] = {}  # token -> key authorization
        self.tls_alpn01: dict[str, ssl.SSLContext] = {}  # lower-case name -> validation context

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        if not server_name or not self.tls_alpn01:
            return None
        with self._lock:
            return self.tls_alpn01.get(server_name.lower())

    def http01_answer(self, token: str) -> str | None:
        with self._lock:
            return self.http01.get(token)

    @contextlib.contextmanager
    def publish(self, name: str, challb: messages.ChallengeBody, account_key: JWK) -> Iterator[None]:
        chall = challb.chall
        assert isinstance(chall, challenges.KeyAuthorizationChallenge)
        key_authorization = chall.key_authorization(account_key)
        token = chall.encode("token")
        with self._lock:
            if isinstance(chall, TLSALPN01):
                self.tls_alpn01[name.lower()] = tls_alpn_context(name, key_authorization)
            else:
                self.http01[token] = key_authorization
        try:
            yield
        finally:
            with self._lock:
                self.tls_alpn01.pop(name.lower(), None)
                self.http01.pop(token, None)
