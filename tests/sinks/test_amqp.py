"""The amqp sink against a private RabbitMQ node, read back with a real consumer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from aio_pika.abc import DeliveryMode
from tests.support.sink_servers import RABBIT_PASSWORD, RabbitNode

from tcwebhook.config import AmqpSinkSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.amqp import AmqpSink

from .amqp_consumer import declare_unbound_exchange, drain, unique
from .conftest import make_event

pytestmark = pytest.mark.anyio


def amqp_sink(node: RabbitNode, **overrides: Any) -> AmqpSink:
    options: dict[str, Any] = {"exchange": unique("tc"), "declare": True, "timeout": 10.0}
    options.update(overrides)
    url = options.pop("url", node.url())
    return AmqpSink("erp", url, **options)


class TestPublishing:
    """Persistent, confirmed messages with the event's id, headers and content type."""

    async def test_message_read_back(self, rabbit_node: RabbitNode) -> None:
        sink = amqp_sink(rabbit_node)
        event = make_event()
        shipment = replace(
            event, event_id="01JEVENT0000000000000000SH", seq=43, kind=EventKind.SHIPMENT,
            event_name="ShipmentUpdated", order_id=None, shipment_id="s-77", key="shipment:s-77",
        )
        try:
            assert "is there" in await sink.probe()
            await sink.deliver(event)
            await sink.deliver(shipment)
        finally:
            await sink.close()
        got = await drain(rabbit_node.url(), sink.queue, expect=2)
        assert [m.message_id for m in got] == [event.event_id, shipment.event_id]
        first = got[0]
        assert first.body == event.body
        assert first.content_type == "application/json"
        assert first.delivery_mode == DeliveryMode.PERSISTENT
        assert first.correlation_id == "3b0c2a0e"
        assert first.routing_key == "tradecloud.order.OrderLinesAcceptedBySupplier"
        assert first.headers == {
            "eventName": "OrderLinesAcceptedBySupplier",
            "kind": "order",
            "orderId": "3b0c2a0e",
            "messageId": event.message_id,
        }
        assert got[1].correlation_id == "s-77" and got[1].headers["shipmentId"] == "s-77"
        assert got[1].routing_key == "tradecloud.shipment.ShipmentUpdated"

    async def test_routing_key_pattern(self, rabbit_node: RabbitNode) -> None:
        sink = amqp_sink(rabbit_node, routing_key="erp.{kind}.{number}")
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        (message,) = await drain(rabbit_node.url(), sink.queue, expect=1)
        assert message.routing_key == "erp.order.PO-2025-000123"


class TestRefusals:
    """Refused credentials and a missing exchange are permanent; unroutable and no broker are retried."""

    async def test_wrong_password(self, rabbit_node: RabbitNode) -> None:
        sink = amqp_sink(rabbit_node, url=rabbit_node.url("not-the-password"))
        try:
            with pytest.raises(PermanentError, match="ACCESS_REFUSED") as failure:
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*fix the user, password and virtual host in url"):
                await sink.probe()
        finally:
            await sink.close()
        assert "not-the-password" not in str(failure.value)

    async def test_missing_exchange(self, rabbit_node: RabbitNode) -> None:
        sink = amqp_sink(rabbit_node, declare=False)
        try:
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*NOT_FOUND.*or set declare = true\.$"):
                await sink.probe()
            with pytest.raises(PermanentError, match="NOT_FOUND - no exchange"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_unroutable_is_not_dropped(self, rabbit_node: RabbitNode) -> None:
        exchange = unique("unbound")
        await declare_unbound_exchange(rabbit_node.url(), exchange)
        sink = amqp_sink(rabbit_node, exchange=exchange, declare=False)
        try:
            await sink.probe()
            with pytest.raises(TransientError, match=r"no queue is bound to exchange .* for routing key"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_nothing_listening(self) -> None:
        sink = AmqpSink("erp", f"amqp://u:{RABBIT_PASSWORD}@127.0.0.1:9/", timeout=5)
        try:
            with pytest.raises(TransientError, match="cannot publish to") as failure:
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match="start the broker or fix the url"):
                await sink.probe()
        finally:
            await sink.close()
        assert RABBIT_PASSWORD not in str(failure.value)


class TestSettings:
    """Plain amqp:// only to loopback; a queue name only with declare."""

    def test_plain_text_to_a_remote_broker_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"amqp:// is plain text; use amqps:// for mq\.example\.com"):
            AmqpSinkSettings(name="erp", url="amqp://u:p@mq.example.com/")
        AmqpSinkSettings(name="erp", url="amqps://u:p@mq.example.com/")
        AmqpSinkSettings(name="erp", url="amqp://u:p@127.0.0.1/")

    def test_queue_needs_declare(self) -> None:
        with pytest.raises(ValueError, match="queue is declared only with declare = true"):
            AmqpSinkSettings(name="erp", url="amqp://u:p@127.0.0.1/", queue="erp")


class TestTls:
    """amqps:// with the broker's certificate verified against ``ca_bundle``."""

    async def test_verified_publish(self, rabbit_node: RabbitNode) -> None:
        sink = amqp_sink(rabbit_node, url=rabbit_node.tls_url(), ca_bundle=rabbit_node.ca)
        try:
            await sink.probe()
            await sink.deliver(make_event())
        finally:
            await sink.close()
        (message,) = await drain(rabbit_node.url(), sink.queue, expect=1)
        assert message.message_id == make_event().event_id

    async def test_another_ca_is_refused(self, rabbit_node: RabbitNode, tmp_path: Path) -> None:
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        sink = amqp_sink(rabbit_node, url=rabbit_node.tls_url(), ca_bundle=other)
        try:
            with pytest.raises(TransientError, match=r"(?i)certificate verify failed"):
                await sink.deliver(make_event())
            with pytest.raises(StartupError, match=r"^Sink 'erp': .*certificate verify failed"):
                await sink.probe()
        finally:
            await sink.close()

