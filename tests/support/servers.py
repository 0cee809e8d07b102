"""The real receiver as a subprocess: ``tcwebhook serve`` (and ``dev``) started with a test CA's certificate.

Servers bind port 0 and report the port they got in their "listening" log line, so no test picks a
port that something else may take before the server binds it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme
from tests.support.polling import NotInTime, eventually

TOKEN = "test-token-0123456789abcdef"
TOKEN_NEXT = "next-token-fedcba9876543210"  # a second token valid at the same time (rotation)
BASIC_USER = "tradecloud"
BASIC_PASSWORD = "basic-secret-0123456789"
CLI = [sys.executable, "-m", "tcwebhook.cli"]


_PORT_IN_LINE = re.compile(r'(?:"port":|\bport=|https://[^\s"/]+:)(\d+)')


def logged_port(log_path: Path, event: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """The port a server process logged in its ``event`` line ("listening", "console_listening").

    Reads JSON and console log lines alike; fails when the process exits or never logs it.
    """
    marker = re.compile(rf'"event":"{event}"|\]\s+{event}\s')

    def port() -> int | None:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        for line in text.splitlines():
            if marker.search(line) and (found := _PORT_IN_LINE.search(line)):
                return int(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {event}:\n{text}")
        return None

    try:
        return eventually(port, timeout, what=f"{event} line")
    except NotInTime:
        proc.kill()
        proc.wait(5)
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise RuntimeError(f"no {event} line in {timeout}s:\n{text}") from None


def free_port() -> int:
    """A port free now, for a server whose port must be known before it binds (the ACME tests:
    pebble validates on the receiver's ports, which go into pebble's config first). Anything that
    can bind port 0 and report the port does that instead (see ``logged_port``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A receiver process started by a fixture, with what a client needs to talk to it."""

    proc: subprocess.Popen[bytes]
    port: int
    ca_path: Path
    token: str
    basic: str  # "user:password"
    data_dir: Path
    log_path: Path
    config_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def url_orders(self) -> str:
        return self.base_url + "/tradecloud/orders"

    @property
    def url_shipments(self) -> str:
        return self.base_url + "/tradecloud/shipments"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "inbox.db"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(), timeout=10, **kwargs)

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def basic_header(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(self.basic.encode()).decode()}

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def console_port(self) -> int:
        """The operator console's port (configured as 0, chosen when it bound)."""
        return logged_port(self.log_path, "console_listening", self.proc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def wait_ready(server: RunningServer, timeout: float = 30) -> None:
    """Until ``/healthz`` answers 200; RuntimeError with the server's log if it exits or never does."""
    ctx = server.ssl_context()

    def healthy() -> bool:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.logs()}")
        try:
            return httpx.get(server.base_url + "/healthz", verify=ctx, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(healthy, timeout, interval=0.1, what="/healthz")
    except NotInTime:
        server.stop(signal.SIGKILL)
        raise RuntimeError(f"server not ready in {timeout}s:\n{server.logs()}") from None


@dataclass
class ServerFactory:
    """Writes a config for a trustme certificate and starts `tcwebhook serve` with it."""

    ca: trustme.CA
    base: Path
    started: list[RunningServer] = field(default_factory=list)

    def write_config(self, directory: Path, extra: str = "", port: int = 0) -> tuple[Path, int]:
        """A config for ``directory``; port 0 (the default) lets the server pick one when it binds."""
        directory.mkdir(parents=True, exist_ok=True)
        leaf = self.ca.issue_cert("localhost", "127.0.0.1")
        cert, key, ca_pem = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        self.ca.cert_pem.write_to_path(str(ca_pem))
        config = directory / "tcwebhook.toml"
        config.write_text(
            f'data_dir = "{directory / "data"}"\n'
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nshutdown_timeout = 5\n'
            f'[tls]\ncertfile = "{cert}"\nkeyfile = "{key}"\ntrust_store = "{ca_pem}"\nreload_interval = 0.5\n'
            f'[auth]\nbearer_tokens = ["{TOKEN}", "{TOKEN_NEXT}"]\n'
            f'[[auth.basic]]\nusername = "{BASIC_USER}"\npassword = "{BASIC_PASSWORD}"\n'
            f"{extra}\n"
        )
        return config, port

    def start(
        self,
        name: str = "server",
        extra: str = "",
        env: dict[str, str] | None = None,
        wait: bool = True,
        port: int = 0,
    ) -> RunningServer:
        directory = self.base / name
        config, port = self.write_config(directory, extra, port)
        return self.start_with(config, port, directory, env=env, wait=wait)

    def start_with(
        self, config: Path, port: int, directory: Path, env: dict[str, str] | None = None, wait: bool = True
    ) -> RunningServer:
        """Start ``serve``; port 0 takes a port when binding, another port (a restart) is reused.

        Without ``wait`` the call returns once the server listens (or has exited), before it is healthy.
        """
        log_path = directory / f"server-{len(self.started)}.log"
        full_env = {**os.environ, **(env or {})}
        argv = [*CLI, "serve", "--config", str(config)] + (["--port", str(port)] if port else [])
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=directory,
            )
        server = RunningServer(
            proc,
            port,
            directory / "ca.pem",
            TOKEN,
            f"{BASIC_USER}:{BASIC_PASSWORD}",
            directory / "data",
            log_path,
            config,
            env or {},
        )
        self.started.append(server)
        if not port:
            try:
                server.port = logged_port(log_path, "listening", proc)
            except RuntimeError:
                if wait:
                    raise
                # Exited before listening: a start-up refusal the caller checks (port stays 0).
        if wait:
            wait_ready(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM, timeout=10)
