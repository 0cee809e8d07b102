"""The benchmark's webhook body: a realistic ~4 KB order event, and unique variants of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from tcwebhook.simulator.samples import Family, SampleFactory

TARGET_BYTES = 4096
EVENT_NAME = "OrderLinesConfirmedBySupplier"


@dataclass(frozen=True)
class BodyTemplate:
    """One order event body whose messageId and orderId can be swapped for same-length ones."""

    body: bytes
    message_id: bytes
    order_id: bytes

    def variant(self, serial: int, orders: int = 500) -> bytes:
        """The body with a unique messageId (from ``serial``) and one of ``orders`` order ids."""
        mid = f"{self.message_id[:24].decode()}{serial:012x}".encode()
        oid = f"{self.order_id[:24].decode()}{serial % orders:012x}".encode()
        return self.body.replace(self.message_id, mid).replace(self.order_id, oid)


def order_event_template(seed: int = 7, target: int = TARGET_BYTES) -> BodyTemplate:
    """A seeded order event from the simulator, the one nearest ``target`` bytes of 200 tried."""
    factory = SampleFactory(seed=seed)
    best: tuple[int, bytes, str, str] | None = None
    for _ in range(200):
        event = factory.event(Family.ORDER, EVENT_NAME)
        raw = orjson.dumps(event.data)
        gap = abs(len(raw) - target)
        if best is None or gap < best[0]:
            best = (gap, raw, event.data["meta"]["messageId"], event.data["orderEvent"]["orderId"])
    assert best is not None
    _, raw, mid, oid = best
    # Fixed, recognisable prefixes keep every variant the same length and a valid UUID.
    new_mid = str(uuid.UUID(int=uuid.UUID(mid).int & ~((1 << 48) - 1)))
    new_oid = str(uuid.UUID(int=uuid.UUID(oid).int & ~((1 << 48) - 1)))
    raw = raw.replace(mid.encode(), new_mid.encode()).replace(oid.encode(), new_oid.encode())
    return BodyTemplate(raw, new_mid.encode(), new_oid.encode())
