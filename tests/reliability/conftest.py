"""Helpers of the reliability suite: reading the inbox, a scriptable ERP endpoint, raw TLS calls."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from tests.support.bodies import order_event as order_event
from tests.support.erp import ErpEndpoint as ErpEndpoint
from tests.support.erp import message_id_of as message_id_of
from tests.support.inbox import attempts_of as attempts_of
from tests.support.inbox import pending_count as pending_count
from tests.support.inbox import read_events as read_events
from tests.support.inbox import read_quarantine as read_quarantine
from tests.support.polling import NotInTime, eventually

# Quick retries, and a short lease so work held by a killed process is taken over within seconds.
FAST_DELIVERY = (
    "[delivery]\npoll_interval = 0.1\ninitial_delay = 0.1\nmax_delay = 0.5\njitter = 0\n"
    "max_attempts = 1000\nlease_seconds = 2\n"
)


# -- the inbox, read the way an operator's tooling would ----------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns the last answer."""
    try:
        return bool(eventually(predicate, timeout, interval=interval))
    except NotInTime:
        return False


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


# -- webhook bodies -------------------------------------------------------------------------------


# -- a scriptable ERP endpoint for the http sink ------------------------------------------------


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


def tls_over(sock: socket.socket, ca: Path) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["http/1.1"])
    # Handshake explicitly: wrap_socket skips it, without an error, when the server has already
    # reset the connection (the socket reads as not connected), which looks like a handshake done.
    tls = ctx.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
    tls.do_handshake()
    return tls


def tls_connect(port: int, ca: Path, timeout: float = 10.0) -> ssl.SSLSocket:
    return tls_over(socket.create_connection(("127.0.0.1", port), timeout=timeout), ca)


def read_answer(sock: socket.socket, timeout: float, data: bytes = b"") -> RawAnswer:
    """Read until the peer closes, a full response arrived, or ``timeout`` passes; ``data``: the
    answer's first bytes, read already."""
    if data and _complete(data):
        return RawAnswer(_status_of(data), data, closed=False)
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


def _early_answer(sock: ssl.SSLSocket) -> bytes | None:
    """The first bytes of an answer sent already (b"" when the server closed), or None.

    A readable socket alone does not say the server answered: TLS 1.3 session tickets arrive
    after the handshake, at a moment a loaded server chooses, with no application data.
    """
    if not (sock.pending() or select.select([sock], [], [], 0)[0]):
        return None
    previous = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except ssl.SSLWantReadError:
        return None
    except (ssl.SSLError, ConnectionError):  # closed, cleanly or not
        return b""
    finally:
        sock.settimeout(previous)


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
            early = _early_answer(sock) if i else None
            if early == b"":
                return RawAnswer(None, b"", closed=True)
            if early is not None:
                return read_answer(sock, timeout, early)
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
