"""Huge request lines and headers: refused with 414/431 at once, cheaply, without reading the rest.

A header of 64 MiB or a million short header lines used to cost seconds of CPU (the parser joins
header fragments) and hundreds of MiB; the limits of ``[server] max_request_line_bytes``,
``max_header_bytes`` and ``max_header_count`` stop them while the request is still arriving.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import trustme
from tests.reliability.conftest import read_answer, send_raw, tls_connect
from tests.support.servers import TOKEN, RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

HEAD = b"POST /tradecloud/orders HTTP/1.1\r\nHost: localhost\r\n"
BODY = (
    b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"limits-1","lines":[]},'
    b'"meta":{"messageId":"7d3c1a52-0000-4000-8000-00000000aa01"}}'
)
MIB = 1024 * 1024


def valid_request(extra_headers: list[bytes], target: bytes = b"/tradecloud/orders") -> bytes:
    lines = [
        b"POST " + target + b" HTTP/1.1",
        b"Host: localhost",
        b"Authorization: Bearer " + TOKEN.encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(BODY),
        b"Connection: close",
        *extra_headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + BODY


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Attack:
    """What one oversized request cost the server and how the connection ended."""

    cpu: float  # server CPU seconds spent while the request was sent and answered
    peak_growth: float  # growth of the server's peak RSS, MiB
    sent: int  # bytes the client managed to send before the server closed
    seconds: float  # from the first byte sent to the connection being closed
    answer: bytes


def attack(server: RunningServer, head: bytes, filler: bytes, total: int, tail: bytes) -> Attack:
    """Send ``head``, then ``filler`` repeated up to ``total`` bytes, then ``tail``; read the end."""
    pid = server.proc.pid
    cpu0, peak0 = cpu_seconds(pid), peak_rss_mb(pid)
    started = time.monotonic()
    sent = 0
    answer = b""
    with tls_connect(server.port, server.ca_path, timeout=60) as sock:
        try:
            sock.sendall(head)
            sent += len(head)
            while sent < total:
                # Stop writing once the server answered or closed (keeping what it said).
                early = _early_answer(sock)
                if early is not None:
                    answer = early
                    break
                sock.sendall(filler)
                sent += len(filler)
            else:
                sock.sendall(tail)
        except (ssl.SSLError, ConnectionError):
            pass
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            answer += read_answer(sock, 60).data
    seconds = time.monotonic() - started
    time.sleep(0.2)  # let the server finish its side of the close before sampling
    return Attack(cpu_seconds(pid) - cpu0, peak_rss_mb(pid) - peak0, sent, seconds, answer)


def _early_answer(sock: ssl.SSLSocket) -> bytes | None:
    """What the server sent so far (b"" when it closed), or None while it is silent.

    Readable is not enough: TLS 1.3 session tickets make the socket readable without any answer.
    """
    if not select.select([sock], [], [], 0)[0]:
        return None
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except ssl.SSLWantReadError:
        return None
    except (ssl.SSLError, ConnectionError):
        return b""
    finally:
        sock.settimeout(60)


@pytest.fixture(scope="module")
def limited(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server with the default header limits."""
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("limits"))
    server = factory.start("limits")
    try:
        yield server
    finally:
        factory.stop_all()


class TestHeaderLimits:
    """Request line, header total and header count limits: 414/431, connection closed."""

    def test_long_request_line(self, limited: RunningServer) -> None:
        answer = send_raw(limited.port, limited.ca_path, [valid_request([], b"/tradecloud/orders?x=" + b"a" * 9000)])
        assert answer.status == 414, answer
        assert b"connection: close" in answer.data.lower()
        assert closed_after_answer(limited, valid_request([], b"/tradecloud/orders?x=" + b"a" * 9000))

    def test_too_many_headers(self, limited: RunningServer) -> None:
        extra = [b"X-H%d: v" % i for i in range(100)]  # 106 headers in all
        answer = send_raw(limited.port, limited.ca_path, [valid_request(extra)])
        assert answer.status == 431, answer
        assert b"connection: close" in answer.data.lower()
        assert closed_after_answer(limited, valid_request(extra))

    def test_headers_too_large_in_total(self, limited: RunningServer) -> None:
        extra = [b"X-Big-%d: " % i + b"v" * 7000 for i in range(10)]  # 70 KB in 10 fields
        answer = send_raw(limited.port, limited.ca_path, [valid_request(extra)])
        assert answer.status == 431, answer

    def test_within_limits_accepted(self, limited: RunningServer) -> None:
        """90 fields, 60 KB of headers and a 7 KB URL are still an ordinary request."""
        extra = [b"X-F%d: " % i + b"v" * 660 for i in range(90)]
        target = b"/tradecloud/orders?x=" + b"a" * 7000
        answer = send_raw(limited.port, limited.ca_path, [valid_request(extra, target)])
        assert answer.status in (200, 202), answer

    def test_single_64_mib_header(self, limited: RunningServer) -> None:
        result = attack(limited, HEAD + b"X-Big: ", b"a" * MIB, 64 * MIB, b"\r\n\r\n")
        print(  # the figures of docs/reliability.md (-s)
            f"\n64 MiB header: server CPU {result.cpu:.3f} s, peak RSS +{result.peak_growth:.1f} MiB, "
            f"client sent {result.sent / MIB:.1f} MiB, closed after {result.seconds:.3f} s, "
            f"answer {result.answer[:12]!r}"
        )
        assert result.cpu < 0.5, result
        assert result.peak_growth < 20, result
        assert result.sent < 16 * MIB, "the server kept reading"
        assert result.answer in (b"",) or result.answer.startswith(b"HTTP/1.1 431"), result.answer[:80]
        assert limited.proc.poll() is None

    def test_million_short_header_lines(self, limited: RunningServer) -> None:
        line = b"X-a: b\r\n"
        result = attack(limited, HEAD, line * 8192, 1_000_000 * len(line), b"\r\n")
        print(  # the figures of docs/reliability.md (-s)
            f"\n1M header lines: server CPU {result.cpu:.3f} s, peak RSS +{result.peak_growth:.1f} MiB, "
            f"client sent {result.sent / MIB:.1f} MiB, closed after {result.seconds:.3f} s, "
            f"answer {result.answer[:12]!r}"
        )
        assert result.cpu < 0.5, result
        assert result.peak_growth < 20, result
        assert result.sent < 4 * MIB, "the server kept reading"
        assert result.answer in (b"",) or result.answer.startswith(b"HTTP/1.1 431"), result.answer[:80]
        assert limited.proc.poll() is None

    def test_other_connections_keep_being_served(self, limited: RunningServer) -> None:
        """After both attacks, a valid request is answered."""
        answer = send_raw(limited.port, limited.ca_path, [valid_request([])])
        assert answer.status in (200, 202), answer


def closed_after_answer(server: RunningServer, request: bytes) -> bool:
    """Send ``request`` (without ``Connection: close``): the server answers, then closes at once."""
    with tls_connect(server.port, server.ca_path, timeout=5) as sock:
        sock.sendall(request.replace(b"Connection: close\r\n", b""))
        first = read_answer(sock, 5)
        if first.closed:
            return True
        then = read_answer(sock, 2)  # an open keep-alive connection would time out here
        return then.closed and not then.data


class TestHeaderLimitSettings:
    """The limits come from [server] and can be lowered."""

    def test_lower_limits(self, server_factory: ServerFactory) -> None:
        server = server_factory.start(
            "low",
            extra="",
            env={
                "TCWEBHOOK_SERVER__MAX_HEADER_COUNT": "10",
                "TCWEBHOOK_SERVER__MAX_HEADER_BYTES": "2048",
                "TCWEBHOOK_SERVER__MAX_REQUEST_LINE_BYTES": "256",
            },
        )
        assert send_raw(server.port, server.ca_path, [valid_request([])]).status in (200, 202)
        assert send_raw(server.port, server.ca_path, [valid_request([b"X-%d: v" % i for i in range(6)])]).status == 431
        assert send_raw(server.port, server.ca_path, [valid_request([b"X-Big: " + b"v" * 2100])]).status == 431
        target = b"/tradecloud/orders?x=" + b"a" * 300
        assert send_raw(server.port, server.ca_path, [valid_request([], target)]).status == 414
