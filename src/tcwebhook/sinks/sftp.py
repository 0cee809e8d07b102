"""The sftp sink: put each event as one file into a folder on the ERP's SFTP server.

A delivery uploads to a hidden name in ``remote_dir`` (``.<name>.tmp``, which the pick-up job
should skip, as for the files sink), asks the server to flush it (``fsync@openssh.com`` when
offered) and renames it into place. SFTP version 3's rename never replaces an existing file, so
a file already present is never overwritten: when the final name exists, the event was delivered
before (the name carries the event id) and the delivery counts as done. The hidden name is a
function of the event too, so an upload cut off by a crash is overwritten by the next attempt
instead of being left behind.

The server's host key must be in ``known_hosts``; an unknown key is never trusted on first use.
One SSH connection per sink is kept open (with keep-alives) and reopened after an error, or
before the next delivery when it was lost while idle (a server restart between two events).

Failures: authentication refused, an unknown host key, permission denied or a missing
``remote_dir`` are permanent (the operator must fix something); a refused or lost connection,
a timeout and everything the server reports as a generic failure (a full disk) are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Iterable
from pathlib import Path

import asyncssh
import structlog

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.base import EventSink, Probed
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter
from tcwebhook.sinks.patterns import NamePattern
from tcwebhook.sinks.payload import PayloadSource, event_body

log = structlog.get_logger(__name__)

_KEEPALIVE_SECONDS = 15.0
# Permission and path errors: the account or the folder needs fixing; retrying cannot help.
_PERMANENT_SFTP = (
    asyncssh.SFTPPermissionDenied,
    asyncssh.SFTPNoSuchFile,
    asyncssh.SFTPNoSuchPath,
    asyncssh.SFTPNotADirectory,
    asyncssh.SFTPInvalidFilename,
    asyncssh.SFTPWriteProtect,
    asyncssh.SFTPFileIsADirectory,
)

# The SFTP session is gone (the connection or its channel closed): open a new connection.
_SESSION_GONE = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)


def _still_open(conn: asyncssh.SSHClientConnection) -> None:
    if conn.is_closed():
        raise asyncssh.SFTPConnectionLost("Connection lost")


class SftpSink:
    """Uploads each event's payload as one file, atomically, never overwriting a file."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        username: str,
        known_hosts: Path,
        port: int = 22,
        password: str | None = None,
        private_key: Path | None = None,
        passphrase: str | None = None,
        remote_dir: str = ".",
        filename: str = "{stem}{ext}",
        events: Iterable[str] = (),
        timeout: float = 30.0,
        payload: PayloadSource = event_body,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.username = username
        self.remote_dir = remote_dir or "."
        self.filter = SinkFilter.parse(events, sink=name)
        self.timeout = timeout
        self.payload = payload
        self.pattern = NamePattern.parse(filename, setting=f"Sink {name!r}: filename")
        if not self.pattern.fields & {"stem", "eventId"}:
            # An existing name means "delivered": two events must never share one.
            raise StartupError(
                f"Sink {name!r}: filename must contain {{eventId}} or {{stem}}, so each event has its own file."
            )
        if "/" in filename:
            raise StartupError(f"Sink {name!r}: filename cannot contain '/'; put the folder in remote_dir.")
        self._where = f"{host}:{port}"
        self._password = password
        try:
            self._known_hosts = asyncssh.read_known_hosts(str(known_hosts))
        except OSError as exc:
            raise StartupError(
                f"Sink {name!r}: cannot read known_hosts {known_hosts} ({exc.strerror or exc}): "
                f"write the server's key there (ssh-keyscan -p {port} {host}, checked against the server)."
            ) from None
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise StartupError(f"Sink {name!r}: known_hosts {known_hosts} is not a known_hosts file ({exc}).") from None
        self._keys: list[asyncssh.SSHKey] = []
        if private_key is not None:
            try:
                self._keys = [asyncssh.read_private_key(str(private_key), passphrase)]
            except OSError as exc:
                raise StartupError(
                    f"Sink {name!r}: cannot read private_key {private_key} ({exc.strerror or exc})."
                ) from None
            except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
                raise StartupError(
                    f"Sink {name!r}: private_key {private_key} cannot be loaded ({exc}): check the file and passphrase."
                ) from None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def remote_name(self, event: EventLike) -> str:
        """The file name ``deliver`` gives this event in ``remote_dir``."""
        return self.pattern.render(event, self.payload(event).extension)

    def remote_path(self, event: EventLike) -> str:
        return posixpath.join(self.remote_dir, self.remote_name(event))

    async def _client(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        async with self._lock:
            if self._conn is not None and self._sftp is not None:
                if not self._conn.is_closed():
                    return self._conn, self._sftp
                # Lost while no request was waiting: nothing reported it, so notice it here.
                await self._drop_connection(self._conn)
            conn = await asyncssh.connect(
                self.host,
                self.port,
                username=self.username,
                password=self._password,
                client_keys=self._keys or None,
                known_hosts=self._known_hosts,
                # Only what is configured: no ssh-agent, no ~/.ssh/config, no default key files.
                agent_path=None,
                config=None,
                ignore_encrypted=True,
                preferred_auth="publickey" if self._keys else "password,keyboard-interactive",
                connect_timeout=self.timeout,
                login_timeout=self.timeout,
                keepalive_interval=_KEEPALIVE_SECONDS,
                keepalive_count_max=3,
            )
            try:
                self._sftp = await conn.start_sftp_client()
            except BaseException:
                with contextlib.suppress(OSError, asyncssh.Error):
                    conn.close()
                raise
            self._conn = conn
            return conn, self._sftp

    async def _drop_connection(self, broken: asyncssh.SSHClientConnection | None = None) -> None:
        """Close the kept connection; with ``broken``, only if it is still that one (another
        delivery may have opened a fresh connection since ``broken`` failed)."""
        if broken is not None and broken is not self._conn:
            return
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            # Closing a connection the server already broke may fail too; it is gone either way.
            with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
                conn.close()
                async with asyncio.timeout(5):
                    await conn.wait_closed()

    async def deliver(self, event: StoredEvent | Event) -> None:
        payload = self.payload(event)
        final = posixpath.join(self.remote_dir, self.pattern.render(event, payload.extension))
        tmp = posixpath.join(self.remote_dir, "." + posixpath.basename(final) + ".tmp")
        conn: asyncssh.SSHClientConnection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn, sftp = await self._client()
                placed = await self._put(conn, sftp, payload.data, tmp, final)
        except BaseException as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            if conn is not None and (
                not isinstance(exc, asyncssh.SFTPError) or isinstance(exc, _SESSION_GONE)
            ):
                await self._drop_connection(conn)
            raise failure from None
        if placed:
            log.debug("sink.sftp.delivered", sink=self.name, event_id=event.event_id, file=final)
        else:
            log.info("sink.sftp.already_there", sink=self.name, event_id=event.event_id, file=final)

    async def _put(
        self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, data: bytes, tmp: str, final: str
    ) -> bool:
        """Upload ``data`` to ``tmp`` and rename it to ``final``; False when ``final`` was there.

        Each request is preceded by ``_still_open``: asyncssh keeps a request it could not send on
        a connection that has just closed, and later sets the connection error on it where nobody
        awaits it, which asyncio logs as "Future exception was never retrieved". Checking first
        (no await in between) sends nothing on a closed connection.
        """
        _still_open(conn)
        if await sftp.exists(final):
            return False
        _still_open(conn)
        handle = await sftp.open(tmp, "wb")
        try:
            _still_open(conn)
            await handle.write(data)
            _still_open(conn)
            await self._flush(handle)
        finally:
            if not conn.is_closed():
                await handle.close()
        _still_open(conn)
        try:
            await sftp.rename(tmp, final)
        except asyncssh.SFTPError:
            _still_open(conn)
            if not await sftp.exists(final):
                raise
            # Another attempt put it there first: same event, same bytes.
            _still_open(conn)
            await sftp.remove(tmp)
        return True

    async def _flush(self, handle: asyncssh.SFTPClientFile) -> None:
        # A server without fsync@openssh.com cannot be asked; its own write-back applies.
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await handle.fsync()

    def _failure(self, exc: BaseException) -> PermanentError | TransientError | None:
        """The delivery error for ``exc``; None when it is not an SSH/network error (cancellation)."""
        where = f"{self.username}@{self._where}"
        if isinstance(exc, asyncssh.PermissionDenied):
            return PermanentError(f"{where} refused the credentials (authentication failed)")
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            return PermanentError(f"the host key of {self._where} is not the one in known_hosts")
        if isinstance(exc, _PERMANENT_SFTP):
            return PermanentError(f"SFTP {where}:{self.remote_dir}: {exc.reason or type(exc).__name__}")
        if isinstance(exc, asyncssh.SFTPError):
            return TransientError(f"SFTP {where}:{self.remote_dir}: {exc.reason or type(exc).__name__}")
        if isinstance(exc, TimeoutError):
            return TransientError(f"no answer from {self._where} within {self.timeout:g} s")
        if isinstance(exc, (OSError, asyncssh.Error)):
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
            return TransientError(f"cannot reach {self._where} ({reason})")
        return None

    async def probe(self) -> str:
        """Connect and look at ``remote_dir``; a StartupError (one sentence) when that fails."""
        try:
            async with asyncio.timeout(self.timeout):
                _, sftp = await self._client()
                is_dir = await sftp.isdir(self.remote_dir)
        except BaseException as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            await self._drop_connection()
            fix = (
                "fix username and password/private_key"
                if isinstance(exc, asyncssh.PermissionDenied)
                else f"add the server's key to known_hosts (ssh-keyscan -p {self.port} {self.host}, checked)"
                if isinstance(exc, asyncssh.HostKeyNotVerifiable)
                else "start the server or fix host and port"
            )
            raise StartupError(f"Sink {self.name!r}: {failure}: {fix}.") from None
        if not is_dir:
            raise StartupError(
                f"Sink {self.name!r}: remote_dir {self.remote_dir!r} is not a folder on {self._where}: "
                "create it or fix remote_dir."
            )
        return f"connected to {self.username}@{self._where}, {self.remote_dir} is a folder"

    async def close(self) -> None:
        async with self._lock:
            await self._drop_connection()


# What the dispatcher, the Tradecloud wrapper and start-up rely on.
_CHECK: type[EventSink] = SftpSink
_PROBED: type[Probed] = SftpSink
