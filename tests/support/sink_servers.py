"""Private servers for the sink tests, from Debian's packages: sshd, a RabbitMQ node, MariaDB.

Each runs from a temp dir on loopback with its own keys, users and ports, and is stopped (and
its dir removed) by the fixture that started it. ``.ci/run`` installs ``openssh-server``,
``rabbitmq-server`` and ``mariadb-server`` when they are missing. As root, RabbitMQ runs as the
``rabbitmq`` user and MariaDB as ``mysql`` (both refuse root); sshd runs as root and lets the
current user in with a key of its own.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

RABBIT_USER = "tcwebhook"
RABBIT_PASSWORD = "rabbit-secret-0123456789"
MARIADB_USER = "tcwebhook_app"
MARIADB_PASSWORD = "mariadb-secret-0123456789"
KEY_PASSPHRASE = "key-passphrase-0123456789"


def free_port() -> int:
    """A port free now (sshd, RabbitMQ and MariaDB cannot report a port they picked themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not listening on {port} after {timeout:g} s:\n{_tail(log)}")
        time.sleep(0.1)


def wait_closed(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still listening after {timeout:g} s")
        time.sleep(0.1)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-4000:]
    return ""


def _kill_tree(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Signal ``proc`` and every process it started (sshd's per-connection children outlive it)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(sig)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    proc.wait(timeout)


def _as(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


@dataclass
class SshServer:
    """``sshd -D -f <cfg>`` on a loopback port, with its own host key and one authorized key."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def username(self) -> str:
        return getpass.getuser()

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    @property
    def client_key(self) -> Path:
        """The authorized key (encrypted with ``KEY_PASSPHRASE``)."""
        return self.root / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for key, passphrase in ((self.host_key, ""), (self.client_key, KEY_PASSPHRASE)):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "tcwebhook-test", "-f", str(key)],
                check=True,
                timeout=30,
            )
        shutil.copy(self.client_key.with_suffix(".pub"), self.root / "authorized_keys")
        host_pub = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        (self.root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            f"AllowUsers {self.username}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
            "ClientAliveInterval 5\nMaxStartups 100\nMaxSessions 100\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.root / "sshd_config")], stdout=out, stderr=out
            )
        wait_listening(self.port, self.proc, self.log, 30)

    def stop(self) -> None:
        """The daemon and every session it serves: connections break, new ones are refused."""
        _kill_tree(self.proc)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_ssh_server() -> SshServer:
    server = SshServer(Path(tempfile.mkdtemp(prefix="tcwebhook-sshd-")))
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@dataclass
class RabbitNode:
    """A RabbitMQ node of our own: node name, ports, mnesia and log dirs in a temp dir."""

    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)  # amqps, with a certificate of the test CA
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"tcwebhook-{uuid.uuid4().hex[:8]}@localhost")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "node.log"

    def url(self, password: str = RABBIT_PASSWORD) -> str:
        return f"amqp://{RABBIT_USER}:{password}@127.0.0.1:{self.port}/"

    def tls_url(self) -> str:
        return f"amqps://{RABBIT_USER}:{RABBIT_PASSWORD}@localhost:{self.tls_port}/"

    @property
    def ca(self) -> Path:
        """The CA that signed the amqps listener's certificate (for the sink's ``ca_bundle``)."""
        return self.root / "ca.pem"

    def env(self) -> dict[str, str]:
        r = self.root
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(r),  # the Erlang cookie
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
            "RABBITMQ_LOG_BASE": str(r / "log"),
            "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(r / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(r / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(r / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(r / "rabbit.pid"),
        }

    def _home(self) -> list[str]:
        # runuser sets HOME to the rabbitmq user's; the node's Erlang cookie is in ours.
        return ["env", f"HOME={self.root}"]

    def init(self) -> None:
        import trustme

        self.root.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(self.ca))
        leaf.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(self.root / "key.pem"))
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
            f"ssl_options.cacertfile = {self.ca}\nssl_options.certfile = {self.root / 'cert.pem'}\n"
            f"ssl_options.keyfile = {self.root / 'key.pem'}\nssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            f"default_user = {RABBIT_USER}\ndefault_pass = {RABBIT_PASSWORD}\n"
            "loopback_users = none\ndisk_free_limit.absolute = 10MB\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        if os.geteuid() == 0:
            for path in (self.root, *self.root.rglob("*")):
                shutil.chown(path, "rabbitmq", "rabbitmq")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*_as("rabbitmq"), *self._home(), "/usr/lib/rabbitmq/bin/rabbitmq-server"],
                stdout=out, stderr=out, env=self.env(), cwd=self.root,
            )
        wait_listening(self.port, self.proc, self.log, 180)  # a cold node takes 20 s or more
        wait_listening(self.tls_port, self.proc, self.log, 60)

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*_as("rabbitmq"), *self._home(), "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *args],
            capture_output=True, text=True, env=self.env(), cwd=self.root, timeout=timeout, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def stop_app(self) -> None:
        """The broker stops (its connections close, the port is closed); the Erlang node stays."""
        self.ctl("stop_app")
        wait_closed(self.port)

    def start_app(self) -> None:
        self.ctl("start_app")
        assert self.proc is not None
        wait_listening(self.port, self.proc, self.log, 120)
        wait_listening(self.tls_port, self.proc, self.log, 60)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        _kill_tree(self.proc, signal.SIGKILL, timeout=10)
        # epmd is started by the node as a daemon of its own, on our private port.
        for proc in psutil.process_iter(["name"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["name"] == "epmd" and proc.environ().get("ERL_EPMD_PORT") == str(self.epmd_port):
                    proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def new_rabbit_node() -> RabbitNode:
    root = Path(tempfile.mkdtemp(prefix="tcwebhook-rabbit-"))
    root.chmod(0o755)
    node = RabbitNode(root)
    try:
        node.init()
        node.start()
    except BaseException:
        node.destroy()
        raise
    return node


@dataclass
class MariaDb:
    """A throw-away MariaDB: ``mariadb-install-db`` into a temp datadir, ``mariadbd`` on loopback."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def log(self) -> Path:
        return self.root / "error.log"

    def url(self, database: str, password: str = MARIADB_PASSWORD) -> str:
        return f"mariadb://{MARIADB_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "mysql", "mysql")
        done = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.root / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
             *(["--user=mysql"] if os.geteuid() == 0 else [])],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.root / 'data'}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mariadbd.pid'}",
             f"--log-error={self.log}", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             "--innodb-flush-log-at-trx-commit=2", *(["--user=mysql"] if os.geteuid() == 0 else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.proc, self.log, 60)

    def stop(self) -> None:
        _kill_tree(self.proc, timeout=30)
        self.proc = None

    def sql(self, statement: str, database: str = "") -> str:
        """One statement as root over the socket; its tab-separated output."""
        done = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement,
             *([database] if database else [])],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed: {done.stderr}")
        return done.stdout.strip()

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name}")
        self.sql(f"GRANT ALL ON {name}.* TO '{MARIADB_USER}'@'127.0.0.1'")
        return name

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_mariadb() -> MariaDb:
    db = MariaDb(Path(tempfile.mkdtemp(prefix="tcwebhook-mariadb-")))
    try:
        db.init()
        db.start()
        db.sql(f"CREATE USER '{MARIADB_USER}'@'127.0.0.1' IDENTIFIED BY '{MARIADB_PASSWORD}'")
    except BaseException:
        db.destroy()
        raise
    return db
