"""Loopback HTTPS servers for the sender and TLS-check tests, and the certificates they use.

``ScriptedServer`` is a tiny HTTP/1.1 server (asyncio, its own thread) that answers each
request with the next step of a script (a status code, ``"drop"`` to close the connection
without answering, ``"hang"`` to answer nothing until the client gives up) and records when
each request arrived and on which connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import struct
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Step = int | str  # a status code, "drop" or "hang"

GOOD_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the whole request had been read
    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """HTTPS/1.1 on 127.0.0.1; ``start()`` returns once it listens, ``stop()`` joins it."""

    context: ssl.SSLContext | None
    script: list[Step] = field(default_factory=list)
    default: Step = 200
    hang_seconds: float = 3.0
    authorization: str | None = None  # when set, any other Authorization header gets a 401
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/hook"

    def set_script(self, steps: Iterable[Step], default: Step = 200) -> None:
        with self._lock:
            self.script = list(steps)
            self.default = default
            self.arrivals.clear()

    def _next_step(self) -> Step:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        pending = b""
        try:
            if self.context is None:
                # A plain HTTP server answers a TLS ClientHello (first byte 0x16) with a 400.
                first = await reader.readexactly(1)
                if first == b"\x16":
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    await writer.drain()
                    return
                pending = first
            while True:
                line = pending + await reader.readline()
                pending = b""
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if self.authorization is not None and headers.get("authorization") != self.authorization:
                    step: Step = 401
                else:
                    step = self._next_step()
                with self._lock:
                    self.arrivals.append(Arrival(time.monotonic(), connection, method, target, headers, body))
                if step == "drop":
                    return
                if step == "hang":
                    await asyncio.sleep(self.hang_seconds)
                    return
                status = int(step)
                payload = b"" if status in (204, 304) else b'{"status":"scripted"}'
                reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Scripted"
                head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\n"
                if status in (301, 302, 307):
                    head += "Location: https://localhost:1/elsewhere\r\n"
                writer.write((head + "Content-Type: application/json\r\n\r\n").encode() + payload)
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    def start(self) -> ScriptedServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            # Handshakes our probes refuse on purpose are not errors worth a log line here.
            loop.set_exception_handler(lambda _loop, _ctx: None)

            async def main() -> None:
                if self.context is not None:
                    self._server = await asyncio.start_server(
                        self._handle, "127.0.0.1", self.port, ssl=self.context, ssl_handshake_timeout=5
                    )
                else:
                    self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                async with self._server:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._server.serve_forever()

            async def cancel_handlers() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                loop.run_until_complete(main())
                loop.run_until_complete(cancel_handlers())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Arrival]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.arrivals) >= n:
                    return list(self.arrivals)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} requests, got {len(self.arrivals)}")

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_context(
    chain_pem: bytes,
    key_pem: bytes,
    directory: Path,
    *,
    ciphers: str = GOOD_TLS12_CIPHERS,
    allow_tls11: bool = False,
) -> ssl.SSLContext:
    """A server context from PEM bytes (written to ``directory``, as ``load_cert_chain`` wants)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "chain.pem", directory / "key.pem"
    cert_path.write_bytes(chain_pem)
    key_path.write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    if allow_tls11:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    return ctx


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class Pki:
    """A root CA (what the client trusts), an intermediate, and server setups good and broken."""

    directory: Path
    root: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.intermediate = self.root.create_child_ca()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / "ca.pem"
        self.root.cert_pem.write_to_path(str(self.ca_path))

    def _leaf(self, ca: trustme.CA, *names: str, **kwargs: object) -> trustme.LeafCert:
        return ca.issue_cert(*(names or ("localhost", "127.0.0.1")), **kwargs)  # type: ignore[arg-type]

    def _ctx(self, name: str, chain: bytes, key: bytes, **kwargs: object) -> ssl.SSLContext:
        return server_context(chain, key, self.directory / name, **kwargs)  # type: ignore[arg-type]

    def good(self) -> ssl.SSLContext:
        leaf = self._leaf(self.intermediate)
        chain = b"".join(p.bytes() for p in leaf.cert_chain_pems)
        return self._ctx("good", chain, leaf.private_key_pem.bytes())

    def missing_intermediate(self) -> ssl.SSLContext:
        leaf = self._leaf(self.intermediate)
        return self._ctx("no-intermediate", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())

    def expired(self) -> ssl.SSLContext:
        now = datetime.now(UTC)
        leaf = self._leaf(self.root, not_before=now - timedelta(days=90), not_after=now - timedelta(days=2))
        return self._ctx("expired", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())

    def expiring(self, days: int = 10) -> ssl.SSLContext:
        now = datetime.now(UTC)
        leaf = self._leaf(self.root, not_before=now - timedelta(days=80), not_after=now + timedelta(days=days))
        return self._ctx("expiring", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())

    def wrong_host(self) -> ssl.SSLContext:
        leaf = self._leaf(self.root, "wrong.example")
        return self._ctx("wrong-host", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())

    def self_signed(self) -> ssl.SSLContext:
        chain, key = _self_signed("localhost")
        return self._ctx("self-signed", chain, key)

    def tls11(self) -> ssl.SSLContext:
        leaf = self._leaf(self.intermediate)
        chain = b"".join(p.bytes() for p in leaf.cert_chain_pems)
        return self._ctx("tls11", chain, leaf.private_key_pem.bytes(), allow_tls11=True)

    def tls11_only(self) -> ssl.SSLContext:
        ctx = self.tls11()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        return ctx

    def weak_ciphers(self) -> ssl.SSLContext:
        """RSA key, so static-RSA suites are possible, and every TLS 1.2 suite allowed."""
        leaf = self.intermediate.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)
        chain = b"".join(p.bytes() for p in leaf.cert_chain_pems)
        return self._ctx("weak", chain, leaf.private_key_pem.bytes(), ciphers="ALL:@SECLEVEL=0")


class DroppingFront:
    """A TCP front for a server that closes its first ``drop`` connections before any TLS byte
    (an overloaded server's reset), then relays every later connection to ``target_port``."""

    def __init__(self, target_port: int, drop: int = 1) -> None:
        self.target_port = target_port
        self.remaining = drop
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._relayed: list[socket.socket] = []  # closed once the pipes over them have ended
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/hook"

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.remaining > 0:
                self.remaining -= 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # RST
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._relayed += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                thread.start()
                self._threads.append(thread)

    def __enter__(self) -> DroppingFront:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.listener.close()
        for sock in self._relayed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # ends pipes still waiting in recv
        for thread in self._threads:
            thread.join(5)
        for sock in self._relayed:
            sock.close()
