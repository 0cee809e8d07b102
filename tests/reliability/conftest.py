"""Helpers of the reliability suite: reading the inbox, a scriptable ERP endpoint, raw TLS calls."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import select
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from tests.support.polling import NotInTime, eventually

from tcwebhook.config import load_settings
from tcwebhook.inbox.base import Attempt, EventFilter, QuarantineEntry, StoredEvent
from tcwebhook.inbox.factory import open_inbox

# Quick retries, and a short lease so work held by a killed process is taken over within seconds.
FAST_DELIVERY = (
    "[delivery]\npoll_interval = 0.1\ninitial_delay = 0.1\nmax_delay = 0.5\njitter = 0\n"
    "max_attempts = 1000\nlease_seconds = 2\n"
)


# -- the inbox, read the way an operator's tooling would ----------------------------------------


def read_events(config: Path, limit: int = 1_000_000) -> Sequence[StoredEvent]:
    """Every stored event, through the public inbox API (a second process may be writing)."""

    async def read() -> Sequence[StoredEvent]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return await inbox.list_events(EventFilter(limit=limit))
        finally:
            await inbox.close()

    return asyncio.run(read())


def read_quarantine(config: Path, limit: int = 100_000) -> Sequence[QuarantineEntry]:
    async def read() -> Sequence[QuarantineEntry]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return await inbox.list_quarantined(limit=limit)
        finally:
            await inbox.close()

    return asyncio.run(read())


def pending_count(config: Path) -> int:
    async def read() -> int:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return int((await inbox.count_by_status())["pending"])
        finally:
            await inbox.close()

    return asyncio.run(read())


def attempts_of(config: Path, event_ids: Sequence[str]) -> dict[str, Sequence[Attempt]]:
    """The recorded delivery attempts of each event."""

    async def read() -> dict[str, Sequence[Attempt]]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return {eid: await inbox.attempts(eid) for eid in event_ids}
        finally:
            await inbox.close()

    return asyncio.run(read())


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns the last answer."""
    try:
        return bool(eventually(predicate, timeout, interval=interval))
    except NotInTime:
        return False


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


# -- webhook bodies -------------------------------------------------------------------------------


def order_event(order_id: str, seq: int, event_name: str = "OrderLinesConfirmedBySupplier") -> dict[str, Any]:
    """A small valid order event; ``seq`` orders the events of one order (lastUpdatedAt grows)."""
    return {
        "eventName": event_name,
        "orderEvent": {
            "orderId": order_id,
            "buyerOrder": {"purchaseOrderNumber": f"PO-{order_id[:8]}", "companyId": str(uuid.uuid4())},
            "lastUpdatedAt": f"2025-05-02T08:{seq // 60:02d}:{seq % 60:02d}.000Z",
            "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
        },
        "meta": {"messageId": str(uuid.uuid4()), "createdDateTime": "2025-05-02T08:15:30.123Z"},
    }


def message_id_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    meta = data.get("meta") if isinstance(data, dict) else None
    return meta.get("messageId") if isinstance(meta, dict) else None


# -- a scriptable ERP endpoint for the http sink ------------------------------------------------


@dataclass
class ErpEndpoint:
    """A loopback HTTP server standing in for the ERP: ``ok``, ``erroring``, ``slow`` or ``down``."""

    mode: str = "ok"
    slow_seconds: float = 1.5
    accepted: list[tuple[str | None, str | None, bytes]] = field(default_factory=list)  # key, event id, body
    attempts: int = 0
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/erp/in"

    def start(self) -> None:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with endpoint._lock:
                    endpoint.attempts += 1
                    mode = endpoint.mode
                if mode == "slow":
                    time.sleep(endpoint.slow_seconds)
                    self._answer(503)
                    return
                if mode == "erroring":
                    self._answer(500)
                    return
                with endpoint._lock:
                    endpoint.accepted.append(
                        (self.headers.get("x-tcwebhook-key"), self.headers.get("x-tcwebhook-event-id"), body)
                    )
                self._answer(200)

            def _answer(self, status: int) -> None:
                # The sink may have given up waiting (slow mode) and closed the connection: an
                # error escaping here would keep the socket alive in a traceback (ResourceWarning).
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Down: the port stops listening (connection refused), like a stopped ERP."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def accepted_ids(self) -> list[str | None]:
        with self._lock:
            return [message_id_of(body) for _, _, body in self.accepted]


@pytest.fixture
def erp() -> Iterator[ErpEndpoint]:
    endpoint = ErpEndpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


# -- raw requests over TLS ----------------------------------------------------------------------


@dataclass
class RawAnswer:
    """What came back on a raw connection: the status (None when no HTTP answer) and bytes."""

    status: int | None
    data: bytes
    closed: bool
    error: str | None = None


def _status_of(data: bytes) -> int | None:
    if not data.startswith(b"HTTP/1."):
        return None
    try:
        return int(data[9:12])
    except ValueError:
        return None


def _complete(data: bytes) -> bool:
    """A full response is in ``data`` (headers plus Content-Length bytes of body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    return len(data) >= end + 4 + length


def tls_connect(port: int, ca: Path, timeout: float = 10.0) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_answer(sock: socket.socket, timeout: float) -> RawAnswer:
    """Read until the peer closes, a full response arrived, or ``timeout`` passes."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ssl.SSLZeroReturnError:
            return RawAnswer(_status_of(data), data, closed=True)
        except (ssl.SSLError, ConnectionError) as exc:
            return RawAnswer(_status_of(data), data, closed=True, error=repr(exc))
        if not chunk:
            return RawAnswer(_status_of(data), data, closed=True)
        data += chunk
        if _complete(data):
            return RawAnswer(_status_of(data), data, closed=False)
    return RawAnswer(_status_of(data), data, closed=False, error="timeout")


def send_raw(
    port: int,
    ca: Path,
    chunks: Sequence[bytes],
    *,
    pause: float = 0.0,
    timeout: float = 10.0,
) -> RawAnswer:
    """Send ``chunks`` over one TLS connection (``pause`` seconds apart) and read the answer."""
    with tls_connect(port, ca, timeout) as sock:
        for i, chunk in enumerate(chunks):
            if i and pause:
                time.sleep(pause)
            # The server may have answered (or closed) already: read that before sending more,
            # since writing into a closed connection can reset it and lose the answer.
            if i and (sock.pending() or select.select([sock], [], [], 0)[0]):
                break
            try:
                sock.sendall(chunk)
            except (ssl.SSLError, ConnectionError) as exc:
                answer = read_answer(sock, 1.0)
                answer.error = answer.error or repr(exc)
                answer.closed = True
                return answer
        return read_answer(sock, timeout)


# -- a small disk of our own, for the disk-full test ---------------------------------------------


def mount_small_disk(path: Path, size: str) -> bool:
    """A tmpfs of ``size`` at ``path``; False when this machine does not allow mounting."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB file system of its own (tmpfs), so "disk full" fills nothing else."""
    path = tmp_path / "small-disk"
    if not mount_small_disk(path, "8m"):
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        unmount(path)
