"""The systemd service protocol: readiness, stopping and watchdog messages (sd_notify(3)).

With ``Type=notify`` systemd starts the units that depend on tcwebhook only once it reports
``READY=1`` — after the port is bound and the store is open, not when the process merely exists.
With ``WatchdogSec=`` it restarts a process whose event loop stops answering. The protocol is
one datagram per message on the socket named by ``NOTIFY_SOCKET``; outside systemd (no such
variable) every call is a no-op, so the same code runs in a terminal, in tests and in a unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages to the socket systemd gave this process (if any)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one message; False when there is no systemd to tell."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            # systemd gone or socket unwritable: the service itself must keep running.
            log.warning("systemd.notify_failed", error=exc.strerror or str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self, status: str) -> bool:
        return self.notify("RELOADING=1", f"STATUS={status}")

    def reloaded(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    @contextlib.asynccontextmanager
    async def watchdog(self) -> AsyncIterator[None]:
        """Answer systemd's watchdog from the event loop while the context lasts.

        The pings come from a task on the serving loop, so a loop that is blocked (or dead)
        stops them and systemd restarts the process; half the interval leaves room for a slow
        moment, as sd_watchdog_enabled(3) advises.
        """
        if self.address is None or self.watchdog_interval is None:
            yield
            return
        task = asyncio.create_task(self._ping(self.watchdog_interval / 2))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _ping(self, every: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(every)


def _socket_address(value: str) -> str | None:
    if not value or value[0] not in "/@":
        return None  # unset, or not a path or abstract name we can use
    # A leading "@" names a socket in the abstract namespace, written with a NUL byte.
    return "\0" + value[1:] if value[0] == "@" else value


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. the parent that forked us)
    return int(usec) / 1_000_000
