"""The console listener holds the webhook listener's limits: head size and count, deadline, per-address cap."""

from __future__ import annotations

import ssl
import time

import pytest
from argon2 import PasswordHasher
from tests.reliability.conftest import send_raw, tls_connect
from tests.support.servers import RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

CONSOLE = (
    '[console]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
    '[[console.users]]\nusername = "olga"\npassword_hash = "{hash}"\nrole = "operator"\n'
)


@pytest.fixture
def console_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory.start(
        "console-limits",
        extra=CONSOLE.format(hash=PasswordHasher().hash("operator-password-1")),
        env={"TCWEBHOOK_SERVER__REQUEST_TIMEOUT": "2", "TCWEBHOOK_SERVER__MAX_CONNECTIONS_PER_IP": "4"},
    )


class TestConsoleListener:
    def test_huge_header_refused_at_once(self, console_server: RunningServer) -> None:
        port = console_server.console_port()
        head = b"GET /login HTTP/1.1\r\nHost: localhost\r\nX-Big: "
        started = time.monotonic()
        answer = send_raw(port, console_server.ca_path, [head, *([b"a" * (1024 * 1024)] * 48)], timeout=20)
        took = time.monotonic() - started
        print(f"console, 48 MB header: answered {answer.status} after {took:.2f} s")
        assert answer.status == 431, answer
        assert took < 10

    def test_trickling_client_closed(self, console_server: RunningServer) -> None:
        port = console_server.console_port()
        head = b"GET /login HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 100
        started = time.monotonic()
        answer = send_raw(port, console_server.ca_path, [bytes([b]) for b in head], pause=0.1, timeout=20)
        took = time.monotonic() - started
        assert answer.closed, answer
        assert took < 8, took  # the 2 s request deadline, not the 14 s the bytes would take

    def test_per_address_cap(self, console_server: RunningServer) -> None:
        port = console_server.console_port()
        held = [tls_connect(port, console_server.ca_path) for _ in range(4)]
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                _request_once(port, console_server)
        finally:
            for sock in held:
                sock.close()


def _request_once(port: int, server: RunningServer) -> None:
    with tls_connect(port, server.ca_path, timeout=5) as sock:
        sock.sendall(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n")
        if not sock.recv(1):
            raise ConnectionError("closed")
