"""SIGHUP re-reads [auth] and [tls]: credentials rotate with no lost event, a bad file is refused."""

from __future__ import annotations

import signal
import socket
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import cast

import httpx
import trustme
from cryptography import x509
from tests.support.polling import eventually
from tests.support.servers import BASIC_PASSWORD, BASIC_USER, RunningServer, ServerFactory, free_port, wait_ready

from tcwebhook.config import AuthSettings, Settings
from tcwebhook.receiver.app import Receiver
from tcwebhook.reload import Reloader
from tcwebhook.transport.acme import CertificateManager
from tcwebhook.transport.systemd import Notifier
from tcwebhook.transport.tls import ReloadingServerContext

OLD = "old-token-0123456789abcdef"
NEW = "new-token-0123456789abcdef"


def config_text(server: RunningServer, tokens: list[str], certfile: Path | None = None) -> str:
    directory = server.config_path.parent if server.config_path else Path()
    cert = certfile or directory / "cert.pem"
    key = cert.with_name(cert.name.replace("cert", "key"))
    quoted = ", ".join(f'"{t}"' for t in tokens)
    return (
        f'data_dir = "{directory / "data"}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {server.port}\nshutdown_timeout = 5\n'
        f'[tls]\ncertfile = "{cert}"\nkeyfile = "{key}"\ntrust_store = "{directory / "ca.pem"}"\n'
        f"reload_interval = 3600\n"
        f"[auth]\nbearer_tokens = [{quoted}]\n"
        f'[[auth.basic]]\nusername = "{BASIC_USER}"\npassword = "{BASIC_PASSWORD}"\n'
    )


def reload_with(server: RunningServer, text: str, expect: str) -> None:
    assert server.config_path is not None
    before = server.logs().count(expect)
    server.config_path.write_text(text)
    server.proc.send_signal(signal.SIGHUP)
    eventually(lambda: server.logs().count(expect) > before, 15, what=f"another {expect!r} line")


def post(server: RunningServer, token: str) -> int:
    body = {"eventName": "OrderIssuedByBuyer", "orderEvent": {"orderId": str(uuid.uuid4())},
            "meta": {"messageId": str(uuid.uuid4())}}
    r = httpx.post(server.url_orders, json=body, headers={"Authorization": f"Bearer {token}"},
                   verify=str(server.ca_path), timeout=10)
    return r.status_code


def start(factory: ServerFactory) -> RunningServer:
    server = factory.start("reload", wait=False)
    assert server.config_path is not None
    server.stop(signal.SIGKILL)
    factory.started.remove(server)
    server.config_path.write_text(config_text(server, [OLD]))
    return factory.start_with(server.config_path, server.port, server.config_path.parent)


class TestCredentialRotation:
    """Old and new tokens both valid during the window; nothing refused while rotating."""

    def test_rotate_without_a_refused_event(self, server_factory: ServerFactory) -> None:
        server = start(server_factory)
        assert post(server, OLD) == 202
        assert post(server, NEW) == 401

        statuses: list[int] = []
        current = [OLD]
        stop = threading.Event()

        def sender() -> None:  # the sender switches tokens mid-way, as Tradecloud would
            while not stop.is_set():
                statuses.append(post(server, current[0]))

        thread = threading.Thread(target=sender)
        thread.start()
        try:
            reload_with(server, config_text(server, [OLD, NEW]), "config_reloaded")
            current[0] = NEW
            time.sleep(0.3)
            reload_with(server, config_text(server, [NEW]), "config_reloaded")
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(20)
        assert statuses and set(statuses) == {202}, statuses
        assert post(server, OLD) == 401
        assert post(server, NEW) == 202
        logs = server.logs()
        assert NEW not in logs and OLD not in logs

    def test_broken_config_is_refused_and_the_old_one_stays(self, server_factory: ServerFactory) -> None:
        server = start(server_factory)
        reload_with(server, "this is [not toml", "config_reload_refused")
        assert post(server, OLD) == 202
        reload_with(server, config_text(server, []).split("[auth]")[0], "config_reload_refused")  # no credentials
        assert post(server, OLD) == 202
        reload_with(server, config_text(server, ["short"]), "config_reload_refused")
        assert post(server, OLD) == 202
        assert server.proc.poll() is None


class TestCertificateReload:
    """[tls] pointing at new files is applied on SIGHUP; files that do not pass are refused."""

    def test_new_certificate_files(self, server_factory: ServerFactory, test_ca: trustme.CA) -> None:
        server = start(server_factory)
        directory = server.config_path.parent if server.config_path else Path()
        before = served_serial(server)
        leaf = test_ca.issue_cert("localhost", "127.0.0.1")
        cert, key = directory / "cert2.pem", directory / "key2.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        reload_with(server, config_text(server, [OLD], cert), "config_reloaded")
        after = served_serial(server)
        assert after != before
        assert after == x509.load_pem_x509_certificate(cert.read_bytes()).serial_number

        other = trustme.CA().issue_cert("localhost")  # not trusted by trust_store: refused
        cert3, key3 = directory / "cert3.pem", directory / "key3.pem"
        other.cert_chain_pems[0].write_to_path(str(cert3))
        other.private_key_pem.write_to_path(str(key3))
        reload_with(server, config_text(server, [NEW], cert3), "config_reload_refused")
        assert served_serial(server) == after
        assert post(server, OLD) == 202  # the whole reload was refused, tokens included
        assert post(server, NEW) == 401


def served_serial(server: RunningServer) -> int:
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class _FakeTls:
    """Records what the reload asks the TLS context to serve."""

    def __init__(self) -> None:
        self.targets: list[tuple[Path, Path]] = []

    def retarget(self, certfile: Path, keyfile: Path, **unused: object) -> None:
        self.targets.append((certfile, keyfile))


class _FakeReceiver:
    oauth = None

    def __init__(self) -> None:
        self.tokens: list[tuple[str, ...]] = []

    def use_auth(self, auth: AuthSettings, oauth: object) -> None:
        self.tokens.append(tuple(t.get_secret_value() for t in auth.bearer_tokens))


class TestAcmeReload:
    """Under [tls] acme the file names no certificate: a reload keeps serving the ACME files."""

    def test_reload_keeps_the_acme_certificate(self, tmp_path: Path) -> None:
        def settings(token: str) -> Settings:
            return Settings(data_dir=tmp_path, server={"public_hostname": "webhooks.example.com"},
                            tls={"acme": True}, auth={"bearer_tokens": [token]})

        running = CertificateManager(settings(OLD)).with_certificate()
        tls, receiver = _FakeTls(), _FakeReceiver()
        reloader = Reloader(running, lambda: settings(NEW), cast(Receiver, receiver),
                            cast(ReloadingServerContext, tls), Notifier({}))
        assert reloader.reload()
        acme_dir = tmp_path / "acme"
        assert tls.targets == [(acme_dir / "cert.pem", acme_dir / "key.pem")]
        assert receiver.tokens == [(NEW,)]
        assert reloader.settings.tls.certfile == acme_dir / "cert.pem"


class _SlowFront:
    """A TCP relay to PostgreSQL whose first connection waits ``delay`` s: start-up is then mid-way."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.first = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.done.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.first.is_set():
                self.first.set()
                time.sleep(self.delay)
            upstream = socket.create_connection(self.target, timeout=10)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(None)
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


class TestHangupDuringStartup:
    """A SIGHUP while `serve` is still starting (opening the store) is applied once it serves, never fatal."""

    def test_queued(self, server_factory: ServerFactory, pg_url: str) -> None:
        parts = pg_url.rpartition("@")[2].partition("/")[0].rpartition(":")
        front = _SlowFront((parts[0], int(parts[2])), delay=3)
        try:
            slow_url = pg_url.replace(f":{parts[2]}/", f":{front.port}/")
            # A fixed port: with port 0 the factory would wait for the "listening" line itself.
            server = server_factory.start("hup", env={"TCWEBHOOK_STORE__URL": slow_url}, wait=False, port=free_port())
            assert '"listening"' not in server.logs()
            assert front.first.wait(30), server.logs()  # the store is being opened: start-up is under way
            time.sleep(0.5)
            assert '"listening"' not in server.logs()
            server.proc.send_signal(signal.SIGHUP)
            wait_ready(server)
            deadline = time.monotonic() + 15
            while '"config_reloaded"' not in server.logs():
                assert server.proc.poll() is None, server.logs()
                assert time.monotonic() < deadline, server.logs()
                time.sleep(0.05)
            server.stop()
        finally:
            front.close()
