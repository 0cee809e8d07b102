"""The console listener holds the webhook listener's limits: head size and count, deadline, per-address cap."""

from __future__ import annotations

import contextlib
import re
import ssl
import time

import httpx
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
    def test_huge_header_refused_at_once(self, server_factory: ServerFactory) -> None:
        # Its own server with the default deadline: on a busy machine 2 s could pass first.
        console_server = server_factory.start(
            "console-head", extra=CONSOLE.format(hash=PasswordHasher().hash("operator-password-1"))
        )
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


def _logged_in(server: RunningServer) -> httpx.Client:
    client = httpx.Client(base_url=f"https://localhost:{server.console_port()}", verify=str(server.ca_path), timeout=30)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    form_data = {"username": "olga", "password": "operator-password-1", "csrf_token": token.group(1)}
    r = client.post("/login", data=form_data)
    assert r.status_code == 303, r.text
    return client


class TestConsoleInput:
    """Query strings a page cannot use are 400 pages, never 500; no page shows words from the URL."""

    QUERIES = (
        "/events?before=99999999999999999999999999",
        "/events?before=%C2%B2",  # '²': isdigit() says yes, int() says no
        "/events?before=%D9%A3",  # an Arabic-Indic three
        "/events?since=99999999999w",
        "/events?since=1e400h",
        "/events?until=99999999999999999999d",
        "/dead?sink=erp&before=%C2%B2",
        "/dead?sink=erp&before=99999999999999999999999999",
    )

    def test_bad_input_is_400(self, console_server: RunningServer) -> None:
        with contextlib.closing(_logged_in(console_server)) as client:
            for query in self.QUERIES:
                r = client.get(query)
                assert r.status_code == 400, (query, r.status_code, r.text[-500:])

    def test_no_free_text_banner(self, console_server: RunningServer) -> None:
        with contextlib.closing(_logged_in(console_server)) as client:
            r = client.get("/events", params={"note": "Your session expired: log in at https://evil.example"})
            assert r.status_code == 200
            assert "Your session expired" not in r.text  # (the URL itself is kept, encoded, as the back link)
            known = client.get("/events", params={"done": "replayed", "requeued": "3", "events": "2"})
            assert "Replayed: re-queued 3 deliveries of 2 event(s)." in known.text
            forged = client.get("/events", params={"done": "replayed", "requeued": "<b>3</b>", "events": "2"})
            assert "Replayed" not in forged.text
