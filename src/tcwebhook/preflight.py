"""What ``check-config`` checks beyond the start-up checks of ``service.check``.

``serve`` would find each of these only when it runs: the store (its folder writable by this
user, a PostgreSQL database reachable and its schema version), the ports, and the sinks.
A problem ``serve`` would stop on raises ``StartupError``; one it would live with (a port held
by the running service, an ERP that is down right now, no sink at all) is a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import os
import socket
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tcwebhook.config import FilesSinkSettings, HttpSinkSettings, Settings, url_passwords
from tcwebhook.errors import StartupError

# An unreachable sink is reported after this long; serve itself would simply retry.
SINK_CONNECT_TIMEOUT = 3.0


@dataclass
class Preflight:
    """What was found: one line per store and port, and the warnings."""

    store: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preflight(settings: Settings) -> Preflight:
    """Run every check; raises ``StartupError`` (one sentence) for what would stop serve."""
    found = Preflight()
    found.store = _check_store(settings)
    for what, host, port in _ports(settings):
        held = _port_problem(host, port)
        if held:
            found.warnings.append(f"{what} {host}:{port} {held}")
    if not settings.sinks:
        found.warnings.append(
            "no [[sinks]] are configured: events will be stored and never delivered (add a sink, see README)"
        )
    found.warnings += asyncio.run(_check_sinks(settings))
    return found


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def _writable_dir(folder: Path, role: str) -> None:
    """``folder`` exists or can be made, and this user can create (and remove) a file in it."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise StartupError(f"The {role} {folder} cannot be created: {existing} is a file, not a folder.")
    target = folder if existing == folder else existing
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".tcwebhook-check-"):
            pass
    except OSError as exc:
        if existing == folder:
            raise StartupError(
                f"The {role} {folder} exists but user {_user()} cannot create files in it ({exc.strerror}): "
                "fix its owner or mode, or point the setting elsewhere."
            ) from None
        raise StartupError(
            f"The {role} {folder} does not exist and user {_user()} cannot create it in {existing} "
            f"({exc.strerror}): create it for this user, or point the setting elsewhere."
        ) from None


def _check_store(settings: Settings) -> str:
    _writable_dir(settings.data_dir, "data directory (data_dir)")
    url = settings.store_url
    scheme = url.split("://", 1)[0].lower() if "://" in url else "sqlite"
    if scheme in ("postgres", "postgresql"):
        return asyncio.run(_check_postgres(settings))
    from tcwebhook.inbox.sqlite import sqlite_path

    path = sqlite_path(url)
    _writable_dir(path.parent, "inbox folder")
    if not path.exists():
        return f"store {settings.store_location} (created when serve starts)"
    if not os.access(path, os.R_OK | os.W_OK):
        raise StartupError(
            f"The inbox {path} exists but user {_user()} cannot read and write it: "
            "run tcwebhook as the user that owns it, or fix its owner."
        )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise StartupError(f"The inbox {path} cannot be read as a SQLite database ({exc}).") from None
    return f"store {settings.store_location} (schema version {version})"


async def _check_postgres(settings: Settings) -> str:
    import psycopg

    from tcwebhook.inbox.postgres import conninfo, schema_version
    from tcwebhook.inbox.schema import SCHEMA_VERSION

    where = settings.store_location
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo(settings.store_url, settings.store), autocommit=True)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in url_passwords(settings.store_url):
            reason = reason.replace(secret, "***")
        raise StartupError(
            f"Cannot connect to the PostgreSQL store {where} ({reason}): "
            "check [store] url, the server and the password."
        ) from None
    try:
        version = await schema_version(conn)
    finally:
        await conn.close()
    if version > SCHEMA_VERSION:
        raise StartupError(
            f"The store {where} has schema version {version}, newer than this tcwebhook knows ({SCHEMA_VERSION}): "
            "upgrade tcwebhook."
        )
    state = "no schema yet, serve creates it" if version == 0 else f"schema version {version}"
    return f"store {where} ({state})"


def _ports(settings: Settings) -> list[tuple[str, str, int]]:
    ports = [("[server] port", settings.server.host, settings.server.port)]
    if settings.tls.acme and settings.tls.acme_challenge == "http-01":
        ports.append(("[server] http_port", settings.server.host, settings.server.http_port))
    if settings.console.enabled:
        ports.append(("[console] port", settings.console.host, settings.console.port))
    if settings.worker.metrics_port is not None:
        ports.append(("[worker] metrics_port", settings.worker.metrics_host, settings.worker.metrics_port))
    return [p for p in ports if p[2] != 0]


def _port_problem(host: str, port: int) -> str | None:
    """Why serve could not bind ``host:port`` now, or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                if _tcwebhook_answers(host, port):
                    return "is held by a running tcwebhook (its /healthz answers): fine if that is this service"
                return "is in use by another program: serve will not start until it is free"
            if exc.errno == errno.EACCES:
                return f"needs privileges user {_user()} does not have (see README: ports below 1024)"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "is not an address of this machine"
            return f"cannot be bound ({exc.strerror})"
    return None


def _tcwebhook_answers(host: str, port: int) -> bool:
    """Whether what listens on the port is a tcwebhook: its ``/healthz`` answers in our shape."""
    import ssl

    import httpx

    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host  # noqa: S104
    # Only to recognise the listener, never to send anything: no certificate check is needed here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    netloc = f"[{target}]" if ":" in target else target
    for scheme in ("https", "http"):
        try:
            with httpx.Client(verify=context, timeout=2.0) as client:
                answer = client.get(f"{scheme}://{netloc}:{port}/healthz")
            body = answer.json()
        except (httpx.HTTPError, ValueError):
            continue
        if isinstance(body, dict) and "status" in body:
            return True
    return False


async def _check_sinks(settings: Settings) -> list[str]:
    warnings: list[str] = []
    for sink in settings.sinks:
        if isinstance(sink, FilesSinkSettings):
            try:
                _writable_dir(sink.directory, f"directory of sink {sink.name!r}")
            except StartupError as exc:
                warnings.append(str(exc).rstrip("."))
        elif isinstance(sink, HttpSinkSettings):
            problem = await _unreachable(sink.url)
            if problem:
                warnings.append(f"sink {sink.name!r}: {sink.url} is not reachable now ({problem}); serve will retry")
    return warnings


async def _unreachable(url: str) -> str | None:
    """Why a TCP connection to the URL's host and port fails, or None when it opens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), SINK_CONNECT_TIMEOUT)
    except TimeoutError:
        return f"no answer within {SINK_CONNECT_TIMEOUT:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None
