"""sd_notify against a real datagram socket: READY once listening, WATCHDOG pings, STOPPING."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.servers import ServerFactory

from tcwebhook.transport.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        yield sock, path
    finally:
        sock.close()


def receive_all(sock: socket.socket, until: float) -> list[str]:
    messages: list[str] = []
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


class TestNotifier:
    """The protocol itself: message format, abstract sockets, watchdog settings."""

    def test_without_systemd_nothing_is_sent(self) -> None:
        notifier = Notifier({})
        assert not notifier.enabled
        assert notifier.ready("x") is False

    def test_ready_message(self, notify_socket: tuple[socket.socket, str]) -> None:
        sock, path = notify_socket
        assert Notifier({"NOTIFY_SOCKET": path}).ready("listening on 127.0.0.1:1")
        fields = sock.recv(4096).decode().split("\n")
        assert fields == ["READY=1", "STATUS=listening on 127.0.0.1:1", f"MAINPID={os.getpid()}"]

    def test_abstract_namespace(self) -> None:
        name = f"tcwebhook-test-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(2)
            assert Notifier({"NOTIFY_SOCKET": "@" + name}).stopping()
            assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"

    def test_gone_socket_does_not_raise(self, tmp_path: Path) -> None:
        assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")}).ready("x") is False

    @pytest.mark.parametrize(
        ("env", "interval"),
        [
            ({"WATCHDOG_USEC": "30000000"}, 30.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # for another process
            ({"WATCHDOG_USEC": "0"}, None),
            ({}, None),
        ],
    )
    def test_watchdog_interval(self, env: dict[str, str], interval: float | None) -> None:
        assert Notifier({"NOTIFY_SOCKET": "/run/x", **env}).watchdog_interval == interval

    def test_watchdog_pings_while_the_loop_runs(self, notify_socket: tuple[socket.socket, str]) -> None:
        sock, path = notify_socket
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})

        async def main() -> None:
            async with notifier.watchdog():
                await asyncio.sleep(0.5)

        asyncio.run(main())
        pings = receive_all(sock, time.monotonic() + 0.3)
        assert 5 <= pings.count("WATCHDOG=1") <= 15  # every 50 ms for 0.5 s, then none


class TestServeUnderSystemd:
    """`tcwebhook serve` as systemd's Type=notify service sees it."""

    def test_ready_watchdog_stopping(
        self, server_factory: ServerFactory, notify_socket: tuple[socket.socket, str]
    ) -> None:
        sock, path = notify_socket
        server = server_factory.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}, wait=False)
        messages: list[str] = []
        deadline = time.monotonic() + 30
        while not any(m.startswith("READY=1") for m in messages) and time.monotonic() < deadline:
            messages += receive_all(sock, time.monotonic() + 0.2)
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert f"STATUS=listening on 127.0.0.1:{server.port}" in ready
        assert f"MAINPID={server.proc.pid}" in ready
        # READY is sent once the port answers: a request right after it succeeds.
        r = httpx.get(server.base_url + "/healthz", verify=str(server.ca_path), timeout=5)
        assert r.status_code == 200
        pings = receive_all(sock, time.monotonic() + 1.0)
        assert pings.count("WATCHDOG=1") >= 5
        assert server.stop(signal.SIGTERM) == 0
        assert "STOPPING=1\nSTATUS=stopping" in receive_all(sock, time.monotonic() + 0.5)
