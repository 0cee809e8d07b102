"""The amqp sink: publish each event to a RabbitMQ exchange (AMQP 0-9-1).

Messages are persistent and published ``mandatory`` on a channel with publisher confirms: a
delivery is done only once the broker has confirmed it (it is then on disk in every queue it
was routed to). A message no queue is bound for comes back from the broker and the delivery is
retried, never silently dropped. ``message_id`` is the event id, stable across redeliveries, so
a consumer de-duplicates; ``correlation_id`` is the order or shipment id, and the headers carry
``orderId``, ``shipmentId``, ``eventName``, ``kind`` and Tradecloud's ``messageId``.

Ordering: the dispatcher publishes the next event of an order only after the previous one was
confirmed, and a RabbitMQ queue keeps publishing order; one queue per consuming ERP with a single
active consumer (``declare`` sets ``x-single-active-consumer``) hands them on in that order.

Failures: refused credentials, a missing exchange, a permission or precondition refusal are
permanent; a refused or lost connection, a negative confirm, a returned (unroutable) message and
a broker that blocks publishers (flow control, a memory or disk alarm) until the timeout are
retried. One connection per sink is kept open and reopened after an error.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from pathlib import Path

import aio_pika
import aiormq.exceptions
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, DeliveryMode
from pamqp.commands import Basic

from tcwebhook.config import redact_url, url_passwords
from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.base import EventSink, Probed
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter
from tcwebhook.sinks.patterns import NamePattern
from tcwebhook.sinks.payload import PayloadSource, event_body
from tcwebhook.transport.certs import client_context

log = structlog.get_logger(__name__)

_PERMANENT = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ConnectionNotAllowed,
)


class AmqpSink:
    """Publishes each event's payload as one persistent, confirmed message."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        exchange: str = "tradecloud",
        routing_key: str = "tradecloud.{kind}.{eventName}",
        declare: bool = False,
        queue: str | None = None,
        ca_bundle: Path | None = None,
        events: Iterable[str] = (),
        timeout: float = 30.0,
        payload: PayloadSource = event_body,
    ) -> None:
        self.name = name
        self.exchange_name = exchange
        self.routing_key = NamePattern.parse(routing_key, setting=f"Sink {name!r}: routing_key")
        self.declare = declare
        self.queue = queue or exchange
        self.filter = SinkFilter.parse(events, sink=name)
        self.timeout = timeout
        self.payload = payload
        self._url = url
        self._where = redact_url(url)
        self._secrets = url_passwords(url)
        self._tls: ssl.SSLContext | None = None
        if url.startswith("amqps://"):
            self._tls = client_context(ca_bundle, setting=f"Sink {name!r}: ca_bundle")
            self._tls.set_alpn_protocols([])  # the shared client context offers http/1.1
        self._conn: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def message(self, event: EventLike) -> aio_pika.Message:
        """The message ``deliver`` publishes for this event."""
        payload = self.payload(event)
        headers: dict[str, str] = {"eventName": event.event_name, "kind": event.kind.value}
        for header, value in (
            ("orderId", event.order_id),
            ("shipmentId", event.shipment_id),
            ("messageId", event.message_id),
        ):
            if value is not None:
                headers[header] = value
        return aio_pika.Message(
            payload.data,
            content_type=payload.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            correlation_id=event.order_id or event.shipment_id,
            timestamp=event.received_at,
            type=event.event_name,
            app_id="tcwebhook",
            headers=dict(headers),
        )

    async def _target(self) -> AbstractExchange:
        async with self._lock:
            if self._exchange is not None:
                return self._exchange
            conn = await aio_pika.connect(
                self._url,
                ssl_context=self._tls,
                timeout=self.timeout,
                client_properties={"connection_name": f"tcwebhook sink {self.name}"},
            )
            try:
                channel = await conn.channel(publisher_confirms=True)
                if self.declare:
                    exchange = await channel.declare_exchange(
                        self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                    queue = await channel.declare_queue(
                        self.queue, durable=True, arguments={"x-single-active-consumer": True}
                    )
                    await queue.bind(exchange, "#")
                else:
                    exchange = await channel.get_exchange(self.exchange_name, ensure=True)
            except BaseException:
                await conn.close()
                raise
            self._conn, self._channel, self._exchange = conn, channel, exchange
            return exchange

    async def _drop_connection(self) -> None:
        conn, self._conn, self._channel, self._exchange = self._conn, None, None, None
        if conn is not None:
            try:
                async with asyncio.timeout(5):
                    await conn.close()
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError, RuntimeError):
                pass

    async def deliver(self, event: StoredEvent | Event) -> None:
        message = self.message(event)
        key = self.routing_key.render(event)
        try:
            async with asyncio.timeout(self.timeout):
                exchange = await self._target()
                confirm = await exchange.publish(message, key, mandatory=True)
        except BaseException as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            await self._drop_connection()
            raise failure from None
        if isinstance(confirm, Basic.Nack):
            raise TransientError(f"the broker at {self._where} did not take the message (negative confirm)")
        if not isinstance(confirm, Basic.Ack):
            raise TransientError(
                f"no queue is bound to exchange {self.exchange_name!r} for routing key {key!r}: bind one"
            )
        log.debug("sink.amqp.confirmed", sink=self.name, event_id=event.event_id, routing_key=key)

    def _failure(self, exc: BaseException) -> PermanentError | TransientError | None:
        if isinstance(exc, _PERMANENT):
            return PermanentError(f"{self._where}: {_reason(exc, self._secrets)}")
        if isinstance(exc, TimeoutError):
            return TransientError(
                f"no confirm from {self._where} within {self.timeout:g} s (down, or blocking publishers)"
            )
        if isinstance(exc, (OSError, aiormq.exceptions.AMQPError, RuntimeError)):
            return TransientError(f"cannot publish to {self._where} ({_reason(exc, self._secrets)})")
        return None

    async def probe(self) -> str:
        """Connect and find (or declare) the exchange; a StartupError (one sentence) when that fails."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._target()
        except BaseException as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            await self._drop_connection()
            if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
                fix = f"declare exchange {self.exchange_name!r} on the broker or set declare = true"
            elif isinstance(exc, _PERMANENT):
                fix = "fix the user, password and virtual host in url (and the user's permissions)"
            else:
                fix = "start the broker or fix the url"
            raise StartupError(f"Sink {self.name!r}: {failure}: {fix}.") from None
        return f"connected to {self._where}, exchange {self.exchange_name!r} is there"

    async def close(self) -> None:
        async with self._lock:
            await self._drop_connection()


def _reason(exc: BaseException, secrets: Iterable[str]) -> str:
    text = " ".join(str(exc).split())
    for secret in secrets:
        text = text.replace(secret, "***")
    text = text[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What the dispatcher, the Tradecloud wrapper and start-up rely on.
_CHECK: type[EventSink] = AmqpSink
_PROBED: type[Probed] = AmqpSink
