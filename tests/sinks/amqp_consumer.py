"""A real consumer for the amqp sink tests: reads back what the broker has in a queue."""

from __future__ import annotations

import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


def unique(prefix: str) -> str:
    """A fresh exchange or queue name, so tests sharing the session's node do not meet."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def drain(url: str, queue: str, *, expect: int | None = None, idle: float = 1.0) -> list[AbstractIncomingMessage]:
    """Every message in ``queue``, acknowledged, in queue order (stops when none came for ``idle`` s)."""
    got: list[AbstractIncomingMessage] = []
    conn = await aio_pika.connect(url, timeout=10)
    try:
        channel = await conn.channel()
        q = await channel.get_queue(queue, ensure=True)
        for _ in range(100_000):
            message = await q.get(fail=False, timeout=10)
            if message is None:
                if expect is None or len(got) >= expect:
                    break
                # A persistent message may still be on its way into the queue: look once more.
                message = await q.get(fail=False, timeout=10)
                if message is None:
                    break
            await message.ack()
            got.append(message)
    finally:
        await conn.close()
    return got


async def declare_unbound_exchange(url: str, name: str) -> None:
    """A durable topic exchange with no queue bound (every message to it is unroutable)."""
    conn = await aio_pika.connect(url, timeout=10)
    try:
        channel = await conn.channel()
        await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    finally:
        await conn.close()
