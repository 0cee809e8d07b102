"""Stand-ins for the ERP side: loopback HTTP(S) servers that record what a sink delivered."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from tests.support.polling import eventually


def message_id_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    meta = data.get("meta") if isinstance(data, dict) else None
    return meta.get("messageId") if isinstance(meta, dict) else None


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


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class ErpApp:
    """An ASGI app that records requests; the path picks the answer.

    ``/ok`` 200, ``/status/<code>`` that code with a short body, ``/big/<code>`` a 5 kB body,
    ``/echo-auth/<code>`` the Authorization header as body, ``/redirect`` 302, ``/slow`` no
    answer and ``/stalled-body`` a 200 whose body stops half-way, until released (at most 5 s).
    """

    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        self.received.append(Received(scope["method"], path, headers, body, scope["client"][1]))
        status, answer, extra = 200, b"ok", []
        parts = path.strip("/").split("/")
        if parts[0] == "status":
            status, answer = int(parts[1]), f"erp says {parts[1]}".encode()
        elif parts[0] == "big":
            status, answer = int(parts[1]), b"x" * 5000
        elif parts[0] == "echo-auth":
            status, answer = int(parts[1]), f"bad auth {headers.get('authorization')}".encode()
        elif parts[0] == "redirect":
            status, answer = 302, b""
            extra = [(b"location", b"https://erp.example/new")]
        elif parts[0] == "slow":
            await asyncio.to_thread(self.release.wait, 5)
        elif parts[0] == "stalled-body":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"accepted", "more_body": True})
            await asyncio.to_thread(self.release.wait, 5)
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@dataclass
class ErpServer:
    app: ErpApp
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.app.release.set()
        self.server.should_exit = True
        self.thread.join(10)


def start_erp(app: ErpApp, *, cert: Path | None = None, key: Path | None = None) -> ErpServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    def up() -> bool:
        if not thread.is_alive():
            raise RuntimeError("loopback ERP server did not start")
        return bool(server.started)

    eventually(up, 10, interval=0.01, what="loopback ERP server started")
    base_url = f"https://localhost:{port}" if cert else f"http://127.0.0.1:{port}"
    return ErpServer(app, base_url, server, thread)


@dataclass
class TlsErp:
    server: ErpServer
    ca_pem: Path
