"""Fixtures for the sink tests: stored events and a loopback HTTP(S) server playing the ERP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme

# The fake Tradecloud API, for the Tradecloud-backed sink (tests/sinks/test_tradecloud.py).
from tests.support.erp import ErpApp as ErpApp
from tests.support.erp import ErpServer as ErpServer
from tests.support.erp import Received as Received
from tests.support.erp import TlsErp as TlsErp
from tests.support.erp import start_erp as start_erp
from tests.support.sink_servers import MariaDb, RabbitNode, SshServer, new_mariadb, new_rabbit_node, new_ssh_server
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


@pytest.fixture(scope="module")
def erp() -> Iterator[ErpServer]:
    server = start_erp(ErpApp())
    yield server
    server.stop()


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


# -- private servers for the sftp, amqp and sql sinks (tests/support/sink_servers.py) -------------


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
