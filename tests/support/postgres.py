"""A throw-away PostgreSQL cluster for the tests: initdb in a temp dir, a free port, pg_ctl.

Debian's ``postgresql`` package installs the server binaries outside PATH; ``.ci/run`` installs
the package when it is missing. The server refuses to run as root, so as root the cluster
belongs to the ``postgres`` user and every server command runs through ``runuser``.

Clients connect over TCP with a password (SCRAM), as a production tcwebhook would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import NotInTime, eventually

USER = "tcwebhook"  # the cluster's superuser, for the fixtures' own statements (local socket)
APP_USER = "tcwebhook_app"  # what tcwebhook connects as: owns its database, not a superuser
PASSWORD = "pg-secret-0123456789"  # a test cluster's password, never reused


def _bin_dir() -> Path:
    override = os.environ.get("TCWEBHOOK_PG_BIN")
    if override:
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (see .ci/run)")


def _free_port() -> int:
    # PostgreSQL cannot listen on port 0: a port is probed here, and ``start`` takes another one
    # when something bound this one in between.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgCluster:
    """One PostgreSQL server of our own; ``url(db)`` for a client."""

    root: Path
    port: int = field(default_factory=_free_port)
    bin_dir: Path = field(default_factory=_bin_dir)
    fsync: bool = False  # a test cluster does not outlive the machine; benchmarks turn it on
    settings: dict[str, str] = field(default_factory=dict)
    cpu: str | None = None  # the benchmark pins the server to a core (taskset); the tests do not

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        if self.cpu is not None and args[0] == "pg_ctl" and shutil.which("taskset"):
            cmd = ["taskset", "-c", self.cpu, *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        done = self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync", "--no-instructions",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        pwfile.unlink()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
            "logging_collector": "off",
            **self.settings,
        }
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def start(self) -> None:
        for _ in range(5):
            logged = self.log.stat().st_size if self.log.exists() else 0
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
            if done.returncode == 0:
                return
            with self.log.open("rb") as fh:
                fh.seek(logged)
                if b"could not bind" not in fh.read():
                    break
            self.port = _free_port()  # taken since it was probed: another one (the last setting wins)
            with (self.data / "postgresql.conf").open("a") as fh:
                fh.write(f"port = {self.port}\n")
        raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def server_pids(self) -> list[int]:
        """The postmaster and every backend of this cluster."""
        try:
            first = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        import psutil  # type: ignore[import-untyped]

        try:
            main = psutil.Process(first)
            return [first, *(c.pid for c in main.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-4000:]
        return ""

    def url(self, dbname: str = "postgres", *, password: bool = True, user: str = APP_USER) -> str:
        auth = f"{user}:{PASSWORD}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run one statement as the superuser through psql; its output."""
        done = self._run(
            "psql", "-h", str(self.root), "-p", str(self.port), "-U", USER, "-d", dbname,
            "-v", "ON_ERROR_STOP=1", "-Atqc", statement, timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name} OWNER {APP_USER}")
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(RuntimeError):
            self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def new_cluster(fsync: bool = False, cpu: str | None = None, **settings: str) -> PgCluster:
    """An initialised, started cluster in a fresh directory the server user can reach."""
    root = Path(tempfile.mkdtemp(prefix="tcwebhook-pg-"))
    root.chmod(0o755)
    cluster = PgCluster(root, fsync=fsync, settings=settings, cpu=cpu)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    # The server needs a moment after pg_ctl -w before it takes TCP connections under load.
    def answers() -> bool:
        try:
            cluster.sql("SELECT 1")
        except RuntimeError:
            return False
        return True

    with contextlib.suppress(NotInTime):  # the statement below then fails with the server's own error
        eventually(answers, 10, interval=0.1, what="SELECT 1")
    cluster.sql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{PASSWORD}'")
    return cluster
