"""Fixtures for the sink tests: stored events and a loopback HTTP(S) server playing the ERP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvicorn

# The fake Tradecloud API, for the Tradecloud-backed sink (tests/sinks/test_tradecloud.py).
from tests.servers import MariaDb, RabbitNode, SshServer, new_mariadb, new_rabbit_node, new_ssh_server
from tests.tradecloud_api.conftest import fake_api, fake_server, tc_settings  # noqa: F401 - fixtures

from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import StoredEvent

ORDER_BODY = (
    b'{"eventName":"OrderLinesAcceptedBySupplier","orderEvent":{"orderId":"3b0c2a0e",'
    b'"buyerOrder":{"purchaseOrderNumber":"PO-2025-000123"},"lines":[{"id":"l1"}]}}'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_event(**overrides: Any) -> StoredEvent:
    """A stored order event; keyword arguments replace fields."""
    base = StoredEvent(
        seq=42,
        event_id="01JEVENT0000000000000000AB",
        received_at=datetime(2026, 5, 27, 10, 15, 2, 123456, tzinfo=UTC),
        kind=EventKind.ORDER,
        event_name="OrderLinesAcceptedBySupplier",
        dedupe_key="0f1e2d3c-4b5a-4697-8877-665544332211",
        content_type="application/json",
        body=ORDER_BODY,
        key="order:3b0c2a0e",
        order_id="3b0c2a0e",
        shipment_id=None,
        purchase_order_number="PO-2025-000123",
        shipment_number=None,
        message_id="0f1e2d3c-4b5a-4697-8877-665544332211",
        last_updated_at="2025-05-02T08:15:29.987Z",
        headers={},
        status="pending",
    )
    return replace(base, **overrides)


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
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("loopback ERP server did not start")
        time.sleep(0.01)
    base_url = f"https://localhost:{port}" if cert else f"http://127.0.0.1:{port}"
    return ErpServer(app, base_url, server, thread)


@pytest.fixture(scope="module")
def erp() -> Iterator[ErpServer]:
    server = start_erp(ErpApp())
    yield server
    server.stop()


@dataclass
class TlsErp:
    server: ErpServer
    ca_pem: Path


@pytest.fixture(scope="module")
def tls_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsErp]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    directory = tmp_path_factory.mktemp("tls")
    cert, key, ca_pem = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = start_erp(ErpApp(), cert=cert, key=key)
    yield TlsErp(server, ca_pem)
    server.stop()


# -- private servers for the sftp, amqp and sql sinks (tests/servers.py) --------------------------


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SshServer]:
    """One sshd for the session (tests that stop it start their own)."""
    server = new_ssh_server()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def rabbit_node() -> Iterator[RabbitNode]:
    """One RabbitMQ node for the session: a cold start takes 20 s or more, so only once."""
    node = new_rabbit_node()
    yield node
    node.destroy()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDb]:
    """One MariaDB server for the session (tests that stop it start their own)."""
    db = new_mariadb()
    yield db
    db.destroy()
