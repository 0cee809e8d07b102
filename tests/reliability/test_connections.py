"""Connection slots: early replies close, a whole-request deadline, idle connections make room, per-address caps.

Before, a POST with a huge ``Content-Length`` got its 401 and the connection stayed open while
the client trickled the body, so a thousand such sockets filled ``max_connections``.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid

import pytest
from tests.reliability.clients import order_body, post, request_from, tls_from
from tests.reliability.conftest import read_answer, wait_until
from tests.support.servers import RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

TIMEOUT = 2.0  # [server] request_timeout of the servers under test


def _metric(server: RunningServer, name: str, reason: str | None = None) -> float:
    with server.client() as client:
        text = client.get(server.base_url + "/metrics", headers=server.bearer()).text
    label = f'{{reason="{reason}"}}' if reason else ""
    found = re.search(rf"^{re.escape(name + label)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _is_closed(sock: ssl.SSLSocket, wait: float) -> bool:
    """The server closed ``sock`` within ``wait`` seconds (EOF or reset), having sent nothing more."""
    answer = read_answer(sock, wait)
    return answer.closed and not answer.data


def _held(sock: ssl.SSLSocket) -> bool:
    """``sock`` is still open: nothing to read and no EOF right now."""
    sock.setblocking(False)
    try:
        sock.recv(1)  # an answer or EOF: not waiting any more
        return False
    except ssl.SSLWantReadError:
        return True
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        sock.settimeout(10)


def _valid() -> bytes:
    return post(order_body(f"conn-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())), close=False)


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory.start("conn", env={"TCWEBHOOK_SERVER__REQUEST_TIMEOUT": str(TIMEOUT)})


class TestEarlyReplies:
    """A reply sent before the body was read carries Connection: close and the connection closes."""

    @pytest.mark.parametrize(
        ("auth", "length", "status"),
        [(None, 1_000_000, 401), ("Bearer wrong-token-0123456789", 1_000_000, 401), ("valid", 50_000_000, 413)],
        ids=["no-credentials", "wrong-credentials", "too-large"],
    )
    def test_closed_after_early_reply(self, server: RunningServer, auth: str | None, length: int, status: int) -> None:
        token = f"Bearer {server.token}" if auth == "valid" else auth
        with tls_from(server.port, server.ca_path) as sock:
            sock.sendall(post(b"", auth=token, close=False, length=length) + b'{"eventName":')
            started = time.monotonic()
            answer = read_answer(sock, 5)
            assert answer.status == status, answer
            assert b"\r\nconnection: close\r\n" in answer.data.lower()
            if not answer.closed:
                # The body trickles on, one byte at a time, as in the attack; the server has closed.
                for _ in range(3):
                    try:
                        sock.sendall(b" ")
                    except (ssl.SSLError, ConnectionError):
                        break
                    time.sleep(0.05)
                assert _is_closed(sock, 2)
            assert time.monotonic() - started < 1.5

    def test_slots_freed_while_the_client_holds_its_socket(self, server: RunningServer) -> None:
        """The server's side ends even when the client never reads nor closes (TLS shutdown bounded)."""
        socks = [tls_from(server.port, server.ca_path) for _ in range(20)]
        try:
            for sock in socks:
                sock.sendall(post(b"", auth=None, close=False, length=1_000_000) + b"{")
            started = time.monotonic()
            # connections_open counts the /metrics request's own connection too.
            assert wait_until(lambda: _metric(server, "tcwebhook_connections_open") <= 1, 6, interval=0.2)
            seconds = time.monotonic() - started
            print(f"\n20 early-answered connections, client silent: server side closed after {seconds:.1f} s")
        finally:
            for sock in socks:
                sock.close()

    def test_keep_alive_after_a_read_body(self, server: RunningServer) -> None:
        """A complete request still keeps its connection (Tradecloud may reuse it)."""
        with tls_from(server.port, server.ca_path) as sock:
            for _ in range(3):
                sock.sendall(_valid())
                answer = read_answer(sock, 5)
                assert answer.status == 202 and b"connection: close" not in answer.data.lower(), answer


class TestRequestDeadline:
    """The whole request, head and body, must arrive within [server] request_timeout."""

    def test_trickled_body_cut_at_the_deadline(self, server: RunningServer) -> None:
        body = order_body("slow-1", str(uuid.uuid4()))
        with tls_from(server.port, server.ca_path) as sock:
            started = time.monotonic()
            sock.sendall(post(b"", close=False, length=len(body)))
            answer = b""
            for byte in body:
                try:
                    sock.sendall(bytes([byte]))
                except (ssl.SSLError, ConnectionError):
                    break
                time.sleep(0.2)
                if time.monotonic() - started > TIMEOUT + 3:
                    break
                early = read_answer(sock, 0.01)
                answer += early.data
                if early.closed:
                    break
            answer += read_answer(sock, 3).data
            elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after" in answer.lower() and b"connection: close" in answer.lower()
        assert TIMEOUT - 0.3 < elapsed < TIMEOUT + 1.5, elapsed

    def test_deadline_counts_from_the_first_byte_of_the_head(self, server: RunningServer) -> None:
        """A slow head and then a slow body share one deadline (not one each)."""
        body = order_body("slow-2", str(uuid.uuid4()))
        head = post(b"", close=False, length=len(body))
        with tls_from(server.port, server.ca_path) as sock:
            started = time.monotonic()
            half = len(head) // 2
            sock.sendall(head[:half])
            time.sleep(TIMEOUT * 0.6)
            sock.sendall(head[half:] + body[:5])
            assert _is_closed_or_503(sock, TIMEOUT * 2)
            elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT + 1.0, elapsed


def _is_closed_or_503(sock: ssl.SSLSocket, wait: float) -> bool:
    answer = read_answer(sock, wait)
    return answer.data.startswith(b"HTTP/1.1 503") or (answer.closed and not answer.data)


class TestPerAddressCap:
    """[server] max_connections_per_ip: further connections from that address are closed before TLS."""

    def test_cap(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("perip", env={"TCWEBHOOK_SERVER__MAX_CONNECTIONS_PER_IP": "4"})
        held = [tls_from(server.port, server.ca_path) for _ in range(4)]
        try:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls_from(server.port, server.ca_path).close()
            # Another address still gets in, and a freed slot can be taken again.
            assert request_from(server.port, server.ca_path, _valid(), source="127.0.0.2").status == 202
            held.pop().close()
            assert wait_until(lambda: _try(server), 3)
        finally:
            for sock in held:
                sock.close()
        # /metrics is read from 127.0.0.1 too: wait until the held connections are gone.
        assert wait_until(lambda: _metric_or_none(server, "per_ip") is not None, 5)
        assert (_metric_or_none(server, "per_ip") or 0) >= 1


def _metric_or_none(server: RunningServer, reason: str) -> float | None:
    try:
        return _metric(server, "tcwebhook_connections_refused_total", reason)
    except Exception:
        return None


def _try(server: RunningServer) -> bool:
    try:
        return request_from(server.port, server.ca_path, _valid()).status == 202
    except (ssl.SSLError, ConnectionError):
        return False


class TestCapacity:
    """Near max_connections idle keep-alive connections are closed first; past it, refused before TLS."""

    @pytest.fixture
    def capped(self, server_factory: ServerFactory) -> RunningServer:
        return server_factory.start(
            "capped",
            env={
                "TCWEBHOOK_SERVER__MAX_CONNECTIONS": "20",
                "TCWEBHOOK_SERVER__MAX_CONNECTIONS_PER_IP": "0",
                "TCWEBHOOK_SERVER__KEEP_ALIVE_TIMEOUT": "60",
                "TCWEBHOOK_SERVER__REQUEST_TIMEOUT": "60",
            },
        )

    def test_idle_connections_make_room(self, capped: RunningServer) -> None:
        idle = []
        try:
            for _ in range(20):
                sock = tls_from(capped.port, capped.ca_path)
                idle.append(sock)
                sock.sendall(_valid())
                assert read_answer(sock, 5).status == 202
            # Twenty idle keep-alive connections hold every slot; a new sender still gets through.
            for _ in range(5):
                fresh = post(order_body("cap", str(uuid.uuid4())))
                assert request_from(capped.port, capped.ca_path, fresh).status == 202
            # Kept under 90 % of the cap: the longest idle ones were closed, a few at a time.
            closed = sum(1 for sock in idle if _is_closed(sock, 0.2))
            assert 3 <= closed < 20, closed
        finally:
            for sock in idle:
                sock.close()
        assert _metric(capped, "tcwebhook_connections_closed_total", "idle_for_capacity") == closed

    def test_busy_connections_are_not_closed(self, capped: RunningServer) -> None:
        busy = []
        try:
            for _ in range(20):
                sock = tls_from(capped.port, capped.ca_path)
                sock.sendall(b"POST /tradecloud/orders HTTP/1.1\r\nHost: x\r\n")  # a request in progress
                busy.append(sock)
            time.sleep(0.2)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls_from(capped.port, capped.ca_path).close()
            assert all(_held(sock) for sock in busy)
        finally:
            for sock in busy:
                sock.close()
        assert wait_until(lambda: (_metric_or_none(capped, "max_connections") or 0) >= 1, 5)
