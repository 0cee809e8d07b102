"""The sample factory's state and the helpers every body builder shares."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from tcwebhook.simulator.samples.families import Json
from tcwebhook.simulator.samples.states import ITEMS, Delivery, Line, Order, Shipment, iso_time


class FactoryBase:
    """The factory's state (random source, clock, pools in flight) and what every body builder uses."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        orders_in_flight: int = 16,
        buyer_company_id: str | None = None,
        supplier_company_id: str | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._clock = (start or datetime.now(UTC)).astimezone(UTC)
        self._in_flight = max(1, orders_in_flight)
        self._buyer = buyer_company_id or self._uuid()
        self._supplier = supplier_company_id or self._uuid()
        self._buyer_users = [self._uuid() for _ in range(3)]
        self._supplier_users = [self._uuid() for _ in range(3)]
        self._po_counter = self._rng.randrange(100_000, 900_000)
        self._sn_counter = self._rng.randrange(1_000, 9_000)
        self._orders: dict[bool, list[Order]] = {False: [], True: []}
        self._shipments: list[Shipment] = []

    # -- helpers ----------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _tick(self) -> str:
        self._clock += timedelta(milliseconds=self._rng.randint(5, 1500))
        return iso_time(self._clock)

    def _meta(self, trace_id: str, user_id: str, company_id: str, created: str) -> Json:
        return {
            "messageId": str(uuid.uuid4()),
            "source": {"traceId": trace_id, "userId": user_id, "companyId": company_id},
            "createdDateTime": created,
        }

    def _by_buyer(self, event_name: str) -> bool:
        return event_name.endswith("ByBuyer")

    def _new_order(self, single_delivery: bool) -> Order:
        rng = self._rng
        order_id = self._uuid()
        self._po_counter += 1
        today = self._clock.date()
        lines: list[Line] = []
        for n in range(1, rng.randint(1, 4) + 1):
            item = rng.choice(ITEMS)
            position = f"{n:04d}"
            first = today + timedelta(days=rng.randint(14, 60))
            parts = 1 if single_delivery else rng.choice((1, 1, 2, 3))
            schedule = [
                Delivery(f"{k:02d}", first + timedelta(days=30 * (k - 1)), rng.choice((10, 25, 50, 60, 100, 250)))
                for k in range(1, parts + 1)
            ]
            net = round(rng.uniform(0.5, 400.0), 2)
            gross = round(net / 0.9, 2) if rng.random() < 0.3 else None
            lines.append(
                Line(
                    line_id=f"{order_id}-{position}",
                    position=position,
                    item=item,
                    schedule=schedule,
                    net_price=net,
                    gross_price=gross,
                    sales_order_position=str(10 * n),
                )
            )
        order = Order(
            order_id=order_id,
            purchase_order_number=f"PO-{today.year}-{self._po_counter:06d}",
            single_delivery=single_delivery,
            buyer_company_id=self._buyer,
            supplier_company_id=self._supplier,
            buyer_user_id=rng.choice(self._buyer_users),
            supplier_user_id=rng.choice(self._supplier_users),
            trace_id=self._uuid(),
            sales_order_number=f"SO-{self._po_counter + 470_000}",
            lines=lines,
        )
        pool = self._orders[single_delivery]
        pool.append(order)
        if len(pool) > self._in_flight:
            pool.pop(0)
        return order

    def _pick_order(self, single_delivery: bool | None = None) -> Order:
        if single_delivery is None:
            pool = self._orders[False] + self._orders[True]
            single_delivery = False
        else:
            pool = self._orders[single_delivery]
        # Sometimes a fresh order, as if it had been issued before this run.
        if not pool or self._rng.random() < 0.1:
            return self._new_order(single_delivery)
        return self._rng.choice(pool)

    def _contact(self, user_id: str, side: str) -> Json:
        return {"userId": user_id, "email": f"{side}.{user_id[:8]}@example-{side}.com"}

    def _document(self, code: str, doc_type: str) -> Json:
        return {
            "code": code,
            "revision": "1",
            "name": f"{code.lower()}.pdf",
            "description": doc_type,
            "type": doc_type,
            "objectId": self._uuid(),
        }
