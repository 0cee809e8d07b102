"""Raw clients of the connection tests: other loopback source addresses, PROXY protocol headers."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import struct
import time
from pathlib import Path

from tests.reliability.conftest import RawAnswer, read_answer, tls_over
from tests.support.servers import TOKEN

ORDERS = b"/tradecloud/orders"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def order_body(order_id: str, message_id: str) -> bytes:
    return (
        b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"%s","lines":[]},'
        b'"meta":{"messageId":"%s"}}' % (order_id.encode(), message_id.encode())
    )


def post(body: bytes, *, auth: str | None = f"Bearer {TOKEN}", close: bool = True, length: int | None = None) -> bytes:
    lines = [b"POST " + ORDERS + b" HTTP/1.1", b"Host: localhost", b"Content-Type: application/json"]
    if auth is not None:
        lines.append(b"Authorization: " + auth.encode())
    lines.append(b"Content-Length: %d" % (len(body) if length is None else length))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def tcp_from(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server on 127.0.0.1 from ``source`` (any 127.0.0.0/8 address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def tls_from(port: int, ca: Path, source: str = "127.0.0.1", proxy_header: bytes = b"") -> ssl.SSLSocket:
    sock = tcp_from(port, source)
    if proxy_header:
        sock.sendall(proxy_header)
    return tls_over(sock, ca)


def request_from(
    port: int, ca: Path, data: bytes, source: str = "127.0.0.1", proxy_header: bytes = b"", timeout: float = 10.0
) -> RawAnswer:
    with tls_from(port, ca, source, proxy_header) as sock:
        sock.sendall(data)
        return read_answer(sock, timeout)


def closed_before_tls(port: int, ca: Path, source: str = "127.0.0.1", proxy_header: bytes = b"") -> tuple[bool, float]:
    """Whether the server closed the connection without a TLS handshake, and how fast."""
    started = time.monotonic()
    sock = tcp_from(port, source)
    try:
        if proxy_header:
            with contextlib.suppress(OSError):
                sock.sendall(proxy_header)
        try:
            with tls_over(sock, ca):
                return False, time.monotonic() - started
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError):
            return True, time.monotonic() - started
    finally:
        sock.close()


def proxy_v1(source: str, dest: str = "127.0.0.1", sport: int = 40000, dport: int = 8443) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode("ascii")


def proxy_v2(
    source: str, dest: str = "127.0.0.1", sport: int = 40000, dport: int = 8443, *, local: bool = False
) -> bytes:
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(dest)
    if src.version == 4:
        family, addresses = 0x11, src.packed + dst.packed + struct.pack("!HH", sport, dport)
    else:
        family, addresses = 0x21, src.packed + dst.packed + struct.pack("!HH", sport, dport)
    command = 0x20 if local else 0x21
    tlv = b"\x04\x00\x03abc"  # a NOOP TLV, to be skipped
    payload = addresses + tlv
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(payload)) + payload
