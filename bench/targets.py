"""The servers the benchmark drives: tcwebhook itself, nginx (the ceiling), the parse-only app.

Every server process is pinned to CPU 0 with ``taskset -c 0`` and every load generator to CPU 1,
so on a 2-core machine the two never compete for a core (the server's own threads share CPU 0).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from bench.pki import Pki

from tcwebhook.transport.tls import TLS12_CIPHERS

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
LOADGEN_CPU = "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """``argv`` under ``taskset -c cpu`` when taskset exists and the machine has that CPU."""
    if os.cpu_count() and os.cpu_count() >= 2 and _which("taskset"):  # type: ignore[operator]
        return ["taskset", "-c", cpu, *argv]
    return argv


def _which(name: str) -> str | None:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a live process, in MiB, summed over its children."""
    total = 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    for proc in procs:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return round(total, 1)


@dataclass
class Target:
    """A server process under test."""

    name: str
    argv: list[str]
    port: int
    path: str
    workdir: Path
    ready_path: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    config: Path | None = None  # tcwebhook only: lets ``settle`` watch the delivery backlog
    source: str | None = None  # fingerprint of src/ when the process started (tcwebhook only)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, ca: Path, timeout: float = 60.0) -> None:
        from bench.machine import source_fingerprint

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.source = source_fingerprint(REPO)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                pinned(SERVER_CPU, self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        self._wait_ready(ca, timeout)

    def _wait_ready(self, ca: Path, timeout: float) -> None:
        assert self.proc is not None
        ctx = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + timeout
        request = f"GET {self.ready_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw, ctx.wrap_socket(
                    raw, server_hostname="localhost"
                ) as tls:
                    tls.sendall(request)
                    if tls.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.tail_log()}")

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.proc.pid) if self.proc and self.proc.poll() is None else None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server and its children so far."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))
        except psutil.NoSuchProcess:
            return 0.0

    def cpu_busy(self, interval: float = 0.5) -> float:
        """CPU use of the server (and children) over ``interval``, in percent of one core."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
            time.sleep(interval)
            after = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        except psutil.NoSuchProcess:
            return 0.0
        return float(100.0 * (after - before) / interval)

    def settle(self, limit: float, threshold: float = 15.0) -> float:
        """Wait (at most ``limit`` s) until background work (delivery) is done; seconds waited."""
        started = time.monotonic()
        if self.config is not None:
            from bench.growth import pending_events

            while time.monotonic() - started < limit and pending_events(self.config) > 0:
                time.sleep(0.2)
        while time.monotonic() - started < limit and self.cpu_busy(0.3) > threshold:
            pass
        return round(time.monotonic() - started, 1)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        return self.proc.returncode

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- tcwebhook ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OursLayout:
    """Files of one tcwebhook instance under test."""

    directory: Path
    config: Path
    data_dir: Path
    outbox: Path
    token: str

    @property
    def inbox_db(self) -> Path:
        return self.data_dir / "inbox.db"


def write_ours_config(
    directory: Path, pki: Pki, port: int, token: str | None = None, *, sink: bool = True
) -> OursLayout:
    """A production-mode config: test CA, SQLite inbox, files sink (unless not ``sink``), JSON logs."""
    directory.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_urlsafe(24)
    data_dir, outbox = directory / "data", directory / "outbox"
    config = directory / "tcwebhook.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\n'
        # Every load generator connects from 127.0.0.1: no per-address cap.
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nmax_connections_per_ip = 0\n'
        f'[tls]\ncertfile = "{pki.cert}"\nkeyfile = "{pki.key}"\ntrust_store = "{pki.ca}"\n'
        f'[auth]\nbearer_tokens = ["{token}"]\n'
        '[logging]\nlevel = "info"\nformat = "json"\n'
        + (f'[[sinks]]\nname = "files"\ntype = "files"\ndirectory = "{outbox}"\n' if sink else "")
    )
    return OursLayout(directory, config, data_dir, outbox, token)


def ours_target(layout: OursLayout, port: int, name: str = "tcwebhook") -> Target:
    return Target(
        name=name,
        argv=[sys.executable, "-m", "tcwebhook.cli", "serve", "--config", str(layout.config)],
        port=port,
        path="/tradecloud/orders",
        workdir=layout.directory,
        ready_path="/healthz",
        headers=[("Authorization", f"Bearer {layout.token}"), ("Content-Type", "application/json")],
        config=layout.config,
    )


# -- the parse-only ASGI app -------------------------------------------------------------------


def minimal_target(directory: Path, pki: Pki, port: int) -> Target:
    return Target(
        name="minimal",
        argv=[
            sys.executable, "-m", "bench.minimal_app",
            "--port", str(port), "--cert", str(pki.cert), "--key", str(pki.key),
        ],
        port=port,
        path="/tradecloud/orders",
        workdir=directory,
        headers=[("Content-Type", "application/json")],
    )


# -- nginx -------------------------------------------------------------------------------------

_NGINX_CONF = """\
# Generated by the tcwebhook benchmark: TLS on loopback, every request answered 200.
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 15s;
    client_max_body_size 10m;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        ssl_session_tickets off;
        location / {{
            default_type application/json;
            return 200 '{{"status":"stored","eventId":"00000000000000000000000000"}}';
        }}
    }}
}}
"""


def nginx_target(directory: Path, pki: Pki, port: int, nginx: str = "nginx") -> Target:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(dir=directory, port=port, cert=pki.cert, key=pki.key, ciphers=TLS12_CIPHERS)
    )
    # As root nginx would switch its worker to "nobody", which cannot read the temp-dir key.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(user + conf.read_text())
    return Target(
        name="nginx",
        argv=[nginx, "-c", str(conf), "-p", str(directory), "-e", str(directory / "nginx-error.log")],
        port=port,
        path="/tradecloud/orders",
        workdir=directory,
        headers=[("Content-Type", "application/json")],
    )


def core_times(core: str = SERVER_CPU) -> tuple[float, float]:
    """(busy, total) jiffies of one CPU from /proc/stat; busy excludes idle and iowait."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == f"cpu{core}":
            values = [float(v) for v in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)
            return sum(values) - idle, sum(values)
    return 0.0, 0.0


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """User and system CPU seconds of each live thread of ``pid`` by thread id, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[int, tuple[float, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        times[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return times


class CpuWatch:
    """How busy a server and its CPU were over a measurement (percent of one core)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.wall = time.monotonic()
        self.cpu = target.cpu_seconds()
        self.core = core_times()
        self.load_core = core_times(LOADGEN_CPU)

    def done(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self.wall)
        server = 100.0 * (self.target.cpu_seconds() - self.cpu) / wall
        busy, total = core_times()
        core = 100.0 * (busy - self.core[0]) / max(1e-9, total - self.core[1])
        lbusy, ltotal = core_times(LOADGEN_CPU)
        load_core = 100.0 * (lbusy - self.load_core[0]) / max(1e-9, ltotal - self.load_core[1])
        # What ran on the server's CPU besides the server: other work on the machine, kernel.
        # A generator CPU near 100% with a server below it means the client was the limit.
        return {"server_cpu_pct": round(server, 1), "cpu0_busy_pct": round(core, 1),
                "cpu0_other_pct": round(max(0.0, core - server), 1), "cpu1_busy_pct": round(load_core, 1)}
