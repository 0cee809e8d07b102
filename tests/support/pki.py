"""Test PKI: certificates issued by a throw-away CA to order, client TLS contexts, a loopback TLS server."""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IO_TIMEOUT = 5.0


def write_pair(
    issued: trustme.LeafCert, directory: Path, stem: str = "server"
) -> tuple[Path, Path]:
    """Write the chain (leaf + intermediates) and its key like a CA's fullchain/privkey files."""
    cert = directory / f"{stem}.pem"
    key = directory / f"{stem}-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    key.chmod(0o600)
    return cert, key


def issue(
    ca: trustme.CA,
    directory: Path,
    *,
    stem: str = "custom",
    names: Sequence[str] = ("localhost",),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    rsa_bits: int | None = None,
) -> tuple[Path, Path]:
    """A leaf signed by ``ca`` with the given validity, names and EKU (trustme fixes those)."""
    issuer_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = _new_key(rsa_bits)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tcwebhook test")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    sans = [x509.DNSName(n) for n in names]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _new_key(rsa_bits: int | None) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if rsa_bits:
        return rsa.generate_private_key(65537, rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def client_context(
    ca: trustme.CA | Path,
    *,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client that verifies the chain and host name, as Tradecloud does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if isinstance(ca, Path):
        ctx.load_verify_locations(cafile=ca)
    else:
        ca.configure_trust(ctx)
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


@dataclass(frozen=True)
class Session:
    version: str
    cipher: str
    alpn: str | None
    peer_der: bytes

    @property
    def peer(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.peer_der)


def handshake(port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> Session:
    """Connect, complete the handshake, check the echo, and describe the session."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(b"ping\n")
        assert tls.recv(16) == b"ping\n"
        peer = tls.getpeercert(binary_form=True)
        version, cipher = tls.version(), tls.cipher()
        assert peer is not None
        assert version is not None
        assert cipher is not None
        return Session(version, cipher[0], tls.selected_alpn_protocol(), peer)


class LoopbackTlsServer:
    """Serves TLS on 127.0.0.1 from a thread: echoes what it reads, records failed handshakes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoopbackTlsServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(IO_TIMEOUT)
        self._listener.close()

    def next_error(self) -> BaseException:
        """The next handshake failure seen by the server (waits for it, bounded)."""
        return self.errors.get(timeout=IO_TIMEOUT)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if selector.select(timeout=0.05):
                    conn, _ = self._listener.accept()
                    self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.errors.put(exc)
            conn.close()
            return
        with tls, contextlib.suppress(OSError):
            while not self._stop.is_set():
                data = tls.recv(4096)
                if not data:
                    break
                tls.sendall(data)
