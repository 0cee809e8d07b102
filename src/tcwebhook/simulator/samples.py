"""Realistic Tradecloud webhook bodies for every documented event name.

A ``SampleFactory`` keeps a small pool of orders and shipments "in flight", so the events it
builds are consistent the way real traffic is: the same order id, purchase order number and
lines across the events of one order, shipments that point at those orders' lines, one
``traceId`` per flow, a fresh ``meta.messageId`` per message and a ``lastUpdatedAt`` that only
grows. Values are invented; shapes follow the contract (sections 3 to 5).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from tcwebhook.contract import names
from tcwebhook.contract.kinds import EventKind

Json = dict[str, Any]

# Sorted, so a seeded factory builds the same stream on every run.
ORDER_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.ORDER_EVENT_NAMES))
ORDER_DOCUMENTS_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.ORDER_DOCUMENTS_EVENT_NAMES))
SHIPMENT_EVENT_NAMES: tuple[str, ...] = tuple(sorted(names.SHIPMENT_EVENT_NAMES))


class Family(StrEnum):
    """A kind of webhook body, named as ``--events`` spells it."""

    ORDER = "order"
    SINGLE_DELIVERY = "single-delivery"
    DOCUMENTS = "documents"
    SHIPMENT = "shipment"

    @property
    def envelope_key(self) -> str:
        return _ENVELOPE_KEYS[self]

    @property
    def event_names(self) -> tuple[str, ...]:
        if self is Family.DOCUMENTS:
            return ORDER_DOCUMENTS_EVENT_NAMES
        if self is Family.SHIPMENT:
            return SHIPMENT_EVENT_NAMES
        return ORDER_EVENT_NAMES

    @property
    def kind(self) -> EventKind:
        if self is Family.DOCUMENTS:
            return EventKind.ORDER_DOCUMENTS
        if self is Family.SHIPMENT:
            return EventKind.SHIPMENT
        return EventKind.ORDER


_ENVELOPE_KEYS = {
    Family.ORDER: "orderEvent",
    Family.SINGLE_DELIVERY: "singleDeliveryOrderEvent",
    Family.DOCUMENTS: "orderDocumentsEvent",
    Family.SHIPMENT: "shipment",
}

_FAMILY_NAMES = frozenset(f.value for f in Family)

Selection = tuple[tuple[Family, str], ...]


def family_of(event_name: str, *, single_delivery: bool = False) -> Family:
    """The family a documented event name belongs to; ``KeyError`` for an unknown name."""
    if event_name in SHIPMENT_EVENT_NAMES:
        return Family.SHIPMENT
    if event_name in ORDER_DOCUMENTS_EVENT_NAMES:
        return Family.DOCUMENTS
    if event_name in ORDER_EVENT_NAMES:
        return Family.SINGLE_DELIVERY if single_delivery else Family.ORDER
    raise KeyError(event_name)


def parse_selection(spec: str, *, single_delivery: bool = False) -> Selection:
    """Turn an ``--events`` value into the (family, event name) pairs to draw from.

    ``mix`` is every family; a family name selects its events; anything else must be a
    documented event name (order events go in ``orderEvent`` unless ``single_delivery``).
    Raises ``ValueError`` naming the first unknown item.
    """
    pairs: list[tuple[Family, str]] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "mix":
            families = list(Family)
        elif item in _FAMILY_NAMES:
            families = [Family(item)]
        else:
            try:
                pairs.append((family_of(item, single_delivery=single_delivery), item))
            except KeyError:
                choices = ", ".join(["mix", *Family])
                raise ValueError(f"unknown event or family {item!r}: use {choices} or documented event names") from None
            continue
        pairs.extend((fam, name) for fam in families for name in fam.event_names)
    if not pairs:
        raise ValueError("no events selected")
    return tuple(dict.fromkeys(pairs))


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """One webhook message: its body as data plus the ids a test or a GET call needs."""

    family: Family
    event_name: str
    data: Json
    message_id: str
    order_id: str | None = None
    shipment_id: str | None = None
    purchase_order_number: str | None = None
    shipment_number: str | None = None
    last_updated_at: str | None = None

    @property
    def kind(self) -> EventKind:
        return self.family.kind

    @property
    def object_id(self) -> str:
        """The id a GET webhook puts in the URL (order id, or shipment id for shipments)."""
        value = self.shipment_id if self.family is Family.SHIPMENT else self.order_id
        assert value is not None
        return value


# Per order event: line process status, in-progress sub-status, logistics status (None: keep;
# a process status of None keeps the in-progress sub-status too).
_LINE_STATE: Mapping[str, tuple[str | None, str | None, str | None]] = {
    "OrderIssuedByBuyer": ("Issued", None, "Open"),
    "OrderLinesIssuedByBuyer": ("Issued", None, "Open"),
    "OrderLinesReissuedByBuyer": ("InProgress", "ReissuedRejectedLine", "Open"),
    "OrderLinesUpdatedByBuyer": ("Issued", None, None),
    "OrderLinesAcceptedBySupplier": ("Confirmed", None, None),
    "OrderLinesRejectedBySupplier": ("Rejected", None, None),
    "OrderLinesConfirmedByBuyer": ("Confirmed", None, None),
    "OrderLinesConfirmedBySupplier": ("Confirmed", None, None),
    "OrderChangesProposedBySupplier": ("InProgress", "OpenSupplierProposal", None),
    "OrderChangesProposalApprovedByBuyer": ("Confirmed", None, None),
    "OrderChangesProposalRejectedByBuyer": ("InProgress", "RejectedSupplierProposal", None),
    "OrderLinesUpdatedBySupplier": (None, None, None),
    "OrderLinesItemDetailsChanged": (None, None, None),
    "OrderLinesItemDetailsChangedBySupplier": (None, None, None),
    "OrderLinesReopenRequestedByBuyer": ("InProgress", "OpenBuyerReopenRequest", None),
    "OrderLinesReopenRequestRevertedByBuyer": ("Confirmed", None, None),
    "OrderLinesReopenRequestApprovedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestRejectedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestedBySupplier": ("InProgress", "OpenSupplierReopenRequest", None),
    "OrderLinesReopenRequestRevertedBySupplier": ("Confirmed", None, None),
    "OrderLinesReopenRequestApprovedByBuyer": ("Confirmed", None, None),
    "OrderLinesReopenRequestRejectedByBuyer": ("Confirmed", None, None),
    "OrderLinesReconfirmationRequestedByBuyer": (
        "InProgress",
        "OpenBuyerReconfirmationRequest",
        None,
    ),
    "OrderLinesReconfirmedBySupplier": ("Confirmed", None, None),
    "OrderLinesCancelledByBuyer": ("Cancelled", None, "Cancelled"),
    "CancelledOrderLinesRevertedByBuyer": ("InProgress", "RevertedCancelledLine", "Open"),
    "OrderLinesCompletedByBuyer": ("Completed", None, "Delivered"),
    "CompletedOrderLinesRevertedByBuyer": ("InProgress", "RevertedCompletedLine", None),
    "OrderLinesMarkedAsOpenByBuyer": ("Confirmed", None, "Open"),
    "OrderLinesMarkedAsOpenBySupplier": ("Confirmed", None, "Open"),
    "OrderLinesShippedByBuyer": ("Confirmed", None, "Shipped"),
    "OrderLinesMarkedAsDeliveredByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesMarkedAsDeliveredBySupplier": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryHistoryAppendedByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryHistorySetByBuyer": ("Confirmed", None, "Delivered"),
    "OrderLinesDeliveryScheduleLogisticsUpdatedByBuyer": ("Confirmed", None, "ReadyToShip"),
    "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier": ("Confirmed", None, "Produced"),
    "OrderLinesShipmentRescheduleRequestedBySupplier": (
        "InProgress",
        "OpenSupplierShipmentRescheduleRequest",
        None,
    ),
    "OrderLinesShipmentRescheduleApprovedByBuyer": ("Confirmed", None, None),
    "OrderLinesShipmentRescheduleRejectedByBuyer": ("Confirmed", None, None),
}
# Events about the whole order that leave line states alone and carry every line.
_WHOLE_ORDER = frozenset(
    {
        "OrderIssuedByBuyer",
        "OrderContactReassignedByBuyer",
        "OrderContactReassignedBySupplier",
        "OrderResentByBuyer",
        "OrderResentBySupplier",
    }
)
_PROCESS_RANK = ("Issued", "InProgress", "Rejected", "Confirmed", "Cancelled", "Completed")
_LOGISTICS_RANK = ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered", "Cancelled")

_ITEMS = (
    ("HH-600-45", "Hose 600mm DN45", "S-99812", "4009 42 00", 1.35),
    ("FT-12", "Fitting 12mm", "S-10012", "7307 19 10", 0.04),
    ("BR-220", "Bracket 220", "S-55120", "7326 90 98", 0.62),
    ("VL-80", "Ball valve DN80", "S-80800", "8481 80 81", 7.9),
    ("GS-3015", "Gasket set 30x15", "S-30150", "4016 93 00", 0.11),
    ("MT-4KW", "Motor 4 kW IE3", "S-44000", "8501 52 30", 31.0),
)
_CITIES = (
    ("Rotterdam", "NL", "3011 AA"),
    ("Berlin", "DE", "10115"),
    ("Antwerpen", "BE", "2000"),
    ("Lyon", "FR", "69002"),
    ("Milano", "IT", "20121"),
)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _money(value: float) -> Json:
    return {"priceInTransactionCurrency": {"value": round(value, 2), "currencyIso": "EUR"}}


def _prices(net: float, gross: float | None = None) -> Json:
    prices: Json = {}
    if gross is not None:
        prices["grossPrice"] = _money(gross)
        prices["discountPercentage"] = round(100 * (1 - net / gross), 2)
    prices["netPrice"] = _money(net)
    prices["priceUnitOfMeasureIso"] = "PCE"
    prices["priceUnitQuantity"] = 1
    return prices


@dataclass(slots=True)
class _Delivery:
    position: str
    when: date
    quantity: int
    status: str = "Open"


@dataclass(slots=True)
class _Line:
    line_id: str
    position: str
    item: tuple[str, str, str, str, float]
    schedule: list[_Delivery]
    net_price: float
    gross_price: float | None
    sales_order_position: str
    process_status: str = "Issued"
    in_progress_status: str | None = None
    logistics_status: str = "Open"
    last_updated_at: str = ""
    delivered: list[_Delivery] = field(default_factory=list)


@dataclass(slots=True)
class _Order:
    order_id: str
    purchase_order_number: str
    single_delivery: bool
    buyer_company_id: str
    supplier_company_id: str
    buyer_user_id: str
    supplier_user_id: str
    trace_id: str
    sales_order_number: str
    lines: list[_Line]
    version: int = 0
    last_updated_at: str = ""


@dataclass(slots=True)
class _ShipmentLine:
    order: _Order
    line: _Line
    delivery: _Delivery
    quantity: int
    advice_position: str
    last_updated_at: str


@dataclass(slots=True)
class _Shipment:
    shipment_id: str
    number: str
    advice_number: str
    supplier_company_id: str
    buyer_company_id: str
    supplier_user_id: str
    trace_id: str
    lines: list[_ShipmentLine]
    departure: str
    city: tuple[str, str, str]
    status: str = "Issued"
    reason: str | None = None
    supplier_documents: list[Json] = field(default_factory=list)
    buyer_documents: list[Json] = field(default_factory=list)
    tracking_number: str = ""
    last_updated_at: str = ""


class SampleFactory:
    """Builds consistent webhook bodies; seed it for repeatable ids and numbers.

    ``meta.messageId`` is always a fresh random UUID, also with a seed, because two runs against
    one receiver must not look like redeliveries of each other.
    """

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
        self._orders: dict[bool, list[_Order]] = {False: [], True: []}
        self._shipments: list[_Shipment] = []

    # -- public -----------------------------------------------------------------------------

    def event(self, family: Family, event_name: str) -> SampleEvent:
        """One webhook message of ``family`` named ``event_name``."""
        if family is Family.SHIPMENT:
            return self._shipment_event(event_name)
        if family is Family.DOCUMENTS:
            return self._documents_event(event_name)
        return self._order_event(event_name, single_delivery=family is Family.SINGLE_DELIVERY)

    def stream(self, selection: Selection, count: int) -> Iterator[SampleEvent]:
        """``count`` events; every pair of ``selection`` once per cycle, in a shuffled order."""
        cycle: list[tuple[Family, str]] = []
        for _ in range(count):
            if not cycle:
                cycle = list(selection)
                self._rng.shuffle(cycle)
            family, name = cycle.pop()
            yield self.event(family, name)

    # -- helpers ----------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _tick(self) -> str:
        self._clock += timedelta(milliseconds=self._rng.randint(5, 1500))
        return _iso(self._clock)

    def _meta(self, trace_id: str, user_id: str, company_id: str, created: str) -> Json:
        return {
            "messageId": str(uuid.uuid4()),
            "source": {"traceId": trace_id, "userId": user_id, "companyId": company_id},
            "createdDateTime": created,
        }

    def _by_buyer(self, event_name: str) -> bool:
        return event_name.endswith("ByBuyer")

    # -- orders -----------------------------------------------------------------------------

    def _new_order(self, single_delivery: bool) -> _Order:
        rng = self._rng
        order_id = self._uuid()
        self._po_counter += 1
        today = self._clock.date()
        lines: list[_Line] = []
        for n in range(1, rng.randint(1, 4) + 1):
            item = rng.choice(_ITEMS)
            position = f"{n:04d}"
            first = today + timedelta(days=rng.randint(14, 60))
            parts = 1 if single_delivery else rng.choice((1, 1, 2, 3))
            schedule = [
                _Delivery(f"{k:02d}", first + timedelta(days=30 * (k - 1)), rng.choice((10, 25, 50, 60, 100, 250)))
                for k in range(1, parts + 1)
            ]
            net = round(rng.uniform(0.5, 400.0), 2)
            gross = round(net / 0.9, 2) if rng.random() < 0.3 else None
            lines.append(
                _Line(
                    line_id=f"{order_id}-{position}",
                    position=position,
                    item=item,
                    schedule=schedule,
                    net_price=net,
                    gross_price=gross,
                    sales_order_position=str(10 * n),
                )
            )
        order = _Order(
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

    def _pick_order(self, single_delivery: bool | None = None) -> _Order:
        if single_delivery is None:
            pool = self._orders[False] + self._orders[True]
            single_delivery = False
        else:
            pool = self._orders[single_delivery]
        # Sometimes a fresh order, as if it had been issued before this run.
        if not pool or self._rng.random() < 0.1:
            return self._new_order(single_delivery)
        return self._rng.choice(pool)

    def _order_event(self, event_name: str, *, single_delivery: bool) -> SampleEvent:
        if event_name == "OrderIssuedByBuyer":
            order = self._new_order(single_delivery)
        else:
            order = self._pick_order(single_delivery)
        now = self._tick()
        order.version += 1
        order.last_updated_at = now
        if event_name in _WHOLE_ORDER:
            affected = list(order.lines)
        else:
            k = self._rng.randint(1, len(order.lines))
            affected = sorted(self._rng.sample(order.lines, k), key=lambda ln: ln.position)
        for line in affected:
            self._apply(event_name, line)
            line.last_updated_at = now
        by_buyer = self._by_buyer(event_name)
        meta = self._meta(
            order.trace_id,
            order.buyer_user_id if by_buyer else order.supplier_user_id,
            order.buyer_company_id if by_buyer else order.supplier_company_id,
            created=_iso(self._clock + timedelta(milliseconds=self._rng.randint(20, 300))),
        )
        family = Family.SINGLE_DELIVERY if single_delivery else Family.ORDER
        lines = [self._order_line(event_name, order, ln, single_delivery) for ln in affected]
        body: Json = {
            "orderId": order.order_id,
            "buyerOrder": self._buyer_order(order, event_name),
            "supplierOrder": self._supplier_order(order, event_name),
            "indicators": {"deliveryOverdue": False},
            "status": self._order_status(order),
            "version": order.version,
            "eventDates": {},
            "meta": meta,
            "lastUpdatedAt": now,
            "portalUrl": f"https://portal.accp.tradecloud1.com/order/{order.order_id}",
            "lines": lines,
        }
        data = {"eventName": event_name, family.envelope_key: body, "meta": meta}
        return SampleEvent(
            family=family,
            event_name=event_name,
            data=data,
            message_id=meta["messageId"],
            order_id=order.order_id,
            purchase_order_number=order.purchase_order_number,
            last_updated_at=now,
        )

    def _apply(self, event_name: str, line: _Line) -> None:
        state = _LINE_STATE.get(event_name)
        if state is None:
            return
        process, in_progress, logistics = state
        if process is not None:
            line.process_status = process
            line.in_progress_status = in_progress
        if logistics is not None:
            line.logistics_status = logistics
        rng = self._rng
        if event_name == "OrderChangesProposalApprovedByBuyer" or event_name.startswith(
            "OrderLinesShipmentRescheduleApproved"
        ):
            for d in line.schedule:
                d.when += timedelta(days=14)
        elif event_name in ("OrderLinesUpdatedByBuyer", "OrderLinesUpdatedBySupplier"):
            line.schedule[-1].quantity += rng.choice((5, 10, 20))
        elif event_name == "OrderLinesDeliveryHistorySetByBuyer":
            line.delivered = [_Delivery("01", d.when, d.quantity) for d in line.schedule]
        elif event_name == "OrderLinesDeliveryHistoryAppendedByBuyer":
            d = line.schedule[min(len(line.delivered), len(line.schedule) - 1)]
            line.delivered.append(_Delivery(f"{len(line.delivered) + 1:02d}", d.when, d.quantity))
        if logistics in ("Open", "Produced", "ReadyToShip", "Shipped", "Delivered"):
            for d in line.schedule:
                d.status = logistics

    def _order_status(self, order: _Order) -> Json:
        process = min((ln.process_status for ln in order.lines), key=_PROCESS_RANK.index)
        logistics = min((ln.logistics_status for ln in order.lines), key=_LOGISTICS_RANK.index)
        return {"processStatus": process, "logisticsStatus": logistics}

    def _contact(self, user_id: str, side: str) -> Json:
        return {"userId": user_id, "email": f"{side}.{user_id[:8]}@example-{side}.com"}

    def _buyer_order(self, order: _Order, event_name: str) -> Json:
        if event_name == "OrderContactReassignedByBuyer":
            order.buyer_user_id = self._rng.choice(self._buyer_users)
        return {
            "companyId": order.buyer_company_id,
            "purchaseOrderNumber": order.purchase_order_number,
            "supplierAccountNumber": "SUP-4711",
            "description": f"Purchase order {order.purchase_order_number}",
            "contact": self._contact(order.buyer_user_id, "buyer"),
            "properties": [{"key": "costCenter", "value": "CC-220"}],
            "notes": [],
            "labels": [],
            "documents": [],
            "orderType": "Purchase",
        }

    def _supplier_order(self, order: _Order, event_name: str) -> Json:
        if event_name == "OrderContactReassignedBySupplier":
            order.supplier_user_id = self._rng.choice(self._supplier_users)
        return {
            "companyId": order.supplier_company_id,
            "buyerAccountNumber": "CUST-0815",
            "description": "",
            "contact": self._contact(order.supplier_user_id, "supplier"),
            "properties": [],
            "notes": [],
            "documents": [],
        }

    def _delivery(self, d: _Delivery, *, with_status: bool, shift: int = 0) -> Json:
        out: Json = {
            "position": d.position,
            "date": (d.when + timedelta(days=shift)).isoformat(),
            "quantity": d.quantity,
        }
        if with_status:
            out["status"] = d.status
            out["etd"] = (d.when + timedelta(days=shift - 2)).isoformat()
            out["eta"] = (d.when + timedelta(days=shift)).isoformat()
        return out

    def _request(self, line: _Line, reason: str) -> Json:
        return {
            "deliverySchedule": [self._delivery(d, with_status=False, shift=14) for d in line.schedule],
            "prices": _prices(round(line.net_price * 1.04, 2)),
            "reason": reason,
            "status": "Open",
        }

    def _order_line(self, event_name: str, order: _Order, line: _Line, single_delivery: bool) -> Json:
        number, name, supplier_number, cn_code, weight = line.item
        status: Json = {"processStatus": line.process_status, "logisticsStatus": line.logistics_status}
        if line.in_progress_status:
            status["inProgressStatus"] = line.in_progress_status
        buyer_line: Json = {
            "position": line.position,
            "description": name,
            "item": {
                "number": number,
                "revision": "A",
                "name": name,
                "purchaseUnitOfMeasureIso": "PCE",
                "supplierItemNumber": supplier_number,
            },
            "deliverySchedule": [self._delivery(d, with_status=False) for d in line.schedule],
            "prices": _prices(line.net_price, line.gross_price),
            "indicators": {"noDeliveryExpected": False, "delivered": line.logistics_status == "Delivered"},
            "properties": [],
            "notes": [],
            "labels": [],
            "documents": [],
        }
        if line.delivered:
            buyer_line["deliveryHistory"] = [
                {"position": d.position, "date": d.when.isoformat(), "quantity": d.quantity} for d in line.delivered
            ]
        supplier_line: Json = {
            "salesOrderNumber": order.sales_order_number,
            "salesOrderPosition": line.sales_order_position,
            "description": "",
            "properties": [],
            "notes": [],
            "documents": [],
        }
        request: Json | None = None
        if line.in_progress_status == "OpenSupplierProposal":
            request = self._request(line, "Raw material lead time")
            supplier_line["requests"] = {"proposal": request}
        elif line.in_progress_status == "OpenSupplierReopenRequest":
            request = self._request(line, "Production capacity changed")
            supplier_line["requests"] = {"reopenRequest": request}
        elif line.in_progress_status == "OpenBuyerReopenRequest":
            request = self._request(line, "Demand moved")
            buyer_line["requests"] = {"reopenRequest": request}
        prices = _prices(line.net_price, line.gross_price)
        prices_incl = request["prices"] if request else prices
        out: Json = {
            "id": line.line_id,
            "lineType": "Item",
            "buyerLine": buyer_line,
            "supplierLine": supplier_line,
        }
        if line.process_status in ("Confirmed", "Completed") or line.in_progress_status:
            out["confirmedLine"] = {
                "deliverySchedule": [self._delivery(d, with_status=False) for d in line.schedule],
                "prices": prices,
            }
        if single_delivery:
            d = line.schedule[0]
            current = self._delivery(d, with_status=True)
            del current["position"]
            incl = dict(current)
            if request:
                incl.update(date=request["deliverySchedule"][0]["date"])
            out["statusLine"] = {
                "scheduledDelivery": current,
                "scheduledDeliveryInclRequests": incl,
                "prices": prices,
                "pricesInclRequests": prices_incl,
            }
        else:
            out["deliverySchedule"] = [self._delivery(d, with_status=True) for d in line.schedule]
            out["deliveryScheduleIncludingRequests"] = (
                [self._delivery(d, with_status=True, shift=14) for d in line.schedule]
                if request
                else out["deliverySchedule"]
            )
            out["prices"] = prices
            out["pricesIncludingRequests"] = prices_incl
        out["indicators"] = {"deliveryOverdue": False}
        out["status"] = status
        out["eventDates"] = {}
        if event_name.startswith("OrderLinesItemDetailsChanged") or event_name == "OrderLinesUpdatedBySupplier":
            out["mergedItemDetails"] = {
                "countryOfOriginCodeIso2": "DE",
                "combinedNomenclatureCode": cn_code,
                "netWeight": weight,
                "netWeightUnitOfMeasureIso": "KGM",
                "batchNumber": f"B{self._rng.randrange(10_000, 99_999)}",
            }
        out["lastUpdatedAt"] = line.last_updated_at
        return out

    # -- order documents --------------------------------------------------------------------

    def _document(self, code: str, doc_type: str) -> Json:
        return {
            "code": code,
            "revision": "1",
            "name": f"{code.lower()}.pdf",
            "description": doc_type,
            "type": doc_type,
            "objectId": self._uuid(),
        }

    def _documents_event(self, event_name: str) -> SampleEvent:
        order = self._pick_order()
        now = self._tick()
        order.last_updated_at = now
        by_buyer = self._by_buyer(event_name)
        side = "buyerOrder" if by_buyer else "supplierOrder"
        line_side = "buyerLine" if by_buyer else "supplierLine"
        n = self._rng.randrange(1000, 9999)
        header_doc = self._document(f"DOC-{n}", "General" if by_buyer else "Invoice")
        line = self._rng.choice(order.lines)
        line_doc = self._document(f"DRW-{n}-{line.position}", "Drawing" if by_buyer else "Certificate")
        meta = self._meta(
            order.trace_id,
            order.buyer_user_id if by_buyer else order.supplier_user_id,
            order.buyer_company_id if by_buyer else order.supplier_company_id,
            created=now,
        )
        body: Json = {
            "orderId": order.order_id,
            "buyerOrder": {
                "companyId": order.buyer_company_id,
                "purchaseOrderNumber": order.purchase_order_number,
                "supplierAccountNumber": "SUP-4711",
            },
            "supplierOrder": {
                "companyId": order.supplier_company_id,
                "buyerAccountNumber": "CUST-0815",
            },
            "lines": [
                {
                    "id": line.line_id,
                    "buyerLine": {"position": line.position},
                    "supplierLine": {
                        "salesOrderNumber": order.sales_order_number,
                        "salesOrderPosition": line.sales_order_position,
                    },
                }
            ],
            "meta": meta,
            "lastUpdatedAt": now,
        }
        body[side]["documents"] = [header_doc]
        body["lines"][0][line_side]["documents"] = [line_doc]
        data = {"eventName": event_name, "orderDocumentsEvent": body, "meta": meta}
        return SampleEvent(
            family=Family.DOCUMENTS,
            event_name=event_name,
            data=data,
            message_id=meta["messageId"],
            order_id=order.order_id,
            purchase_order_number=order.purchase_order_number,
            last_updated_at=now,
        )

    # -- shipments --------------------------------------------------------------------------

    def _new_shipment(self, now: str) -> _Shipment:
        rng = self._rng
        order = self._pick_order()
        self._sn_counter += 1
        number = f"SN-{self._clock:%Y%m%d}-{self._sn_counter:04d}"
        lines: list[_ShipmentLine] = []
        for i, line in enumerate(order.lines[: rng.randint(1, len(order.lines))], start=1):
            d = line.schedule[0]
            lines.append(_ShipmentLine(order, line, d, max(1, d.quantity - rng.choice((0, 0, 5))), str(i), now))
        shipment = _Shipment(
            shipment_id=f"{order.supplier_company_id}-{number}",
            number=number,
            advice_number=f"DA-{self._clock:%Y%m%d}-{self._sn_counter:04d}",
            supplier_company_id=order.supplier_company_id,
            buyer_company_id=order.buyer_company_id,
            supplier_user_id=order.supplier_user_id,
            trace_id=self._uuid(),
            lines=lines,
            departure=f"87{rng.randrange(10**10, 10**11)}",
            city=rng.choice(_CITIES),
            tracking_number=f"1Z{rng.randrange(10**15, 10**16)}",
        )
        self._shipments.append(shipment)
        if len(self._shipments) > self._in_flight:
            self._shipments.pop(0)
        return shipment

    def _shipment_event(self, event_name: str) -> SampleEvent:
        now = self._tick()
        if event_name == "ShipmentIssuedBySupplier" or not self._shipments or self._rng.random() < 0.1:
            shipment = self._new_shipment(now)
        else:
            shipment = self._rng.choice(self._shipments)
        shipment.last_updated_at = now
        if event_name in ("ShipmentIssuedBySupplier", "ShipmentReissuedBySupplier"):
            shipment.status, shipment.reason = "Issued", None
            for sl in shipment.lines:
                sl.last_updated_at = now
        elif event_name == "ShipmentApprovedByBuyer":
            shipment.status, shipment.reason = "Approved", None
        elif event_name == "ShipmentRejectedByBuyer":
            shipment.status, shipment.reason = "Rejected", "Quantities do not match the order"
        elif event_name == "ShipmentHeaderUpdatedBySupplier":
            shipment.tracking_number = f"1Z{self._rng.randrange(10**15, 10**16)}"
        elif event_name.startswith("ShipmentDocumentAttached"):
            n = len(shipment.supplier_documents) + len(shipment.buyer_documents) + 1
            doc = self._document(f"SD-{shipment.number}-{n}", "Packing List")
            doc["meta"] = {"lastUpdatedAt": now}
            target = shipment.buyer_documents if self._by_buyer(event_name) else shipment.supplier_documents
            target.append(doc)
        by_buyer = self._by_buyer(event_name)
        first = shipment.lines[0].order
        meta = self._meta(
            shipment.trace_id,
            first.buyer_user_id if by_buyer else shipment.supplier_user_id,
            shipment.buyer_company_id if by_buyer else shipment.supplier_company_id,
            created=_iso(self._clock + timedelta(milliseconds=self._rng.randint(20, 300))),
        )
        body = self._shipment_body(shipment)
        data = {"eventName": event_name, "shipment": body, "meta": meta}
        return SampleEvent(
            family=Family.SHIPMENT,
            event_name=event_name,
            data=data,
            message_id=meta["messageId"],
            order_id=first.order_id,
            shipment_id=shipment.shipment_id,
            purchase_order_number=first.purchase_order_number,
            shipment_number=shipment.number,
            last_updated_at=now,
        )

    def _shipment_line(self, shipment: _Shipment, sl: _ShipmentLine) -> Json:
        number, name, supplier_number, _, _ = sl.line.item
        return {
            "purchaseOrderNumber": sl.order.purchase_order_number,
            "purchaseOrderLinePosition": sl.line.position,
            "deliverySchedulePosition": sl.delivery.position,
            "item": {
                "buyerItemNumber": number,
                "buyerItemRevision": "A",
                "buyerItemName": name,
                "supplierItemNumber": supplier_number,
                "supplierItemName": name,
                "purchaseUnitOfMeasureIso": "PCE",
            },
            "supplierLine": {
                "despatchAdviceNumber": shipment.advice_number,
                "despatchAdviceLinePosition": sl.advice_position,
                "despatchQuantity": sl.quantity,
                "backorderQuantity": sl.delivery.quantity - sl.quantity,
            },
            "meta": {"lastUpdatedAt": sl.last_updated_at},
        }

    def _shipment_body(self, shipment: _Shipment) -> Json:
        lines = [self._shipment_line(shipment, sl) for sl in shipment.lines]
        departure_day = self._clock.date()
        city, country, postal = shipment.city
        status: Json = {"processStatus": shipment.status}
        if shipment.reason:
            status["processStatusReason"] = shipment.reason
        return {
            "id": shipment.shipment_id,
            "identifiers": {
                "billOfLadingNumber": f"BOL-{shipment.number[-4:]}",
                "carrierShipmentNumber": f"CSN-{shipment.number[-4:]}",
                "trackingNumber": shipment.tracking_number,
            },
            "transportMode": "Road transport",
            "supplierShipment": {
                "companyId": shipment.supplier_company_id,
                "supplierParty": {
                    "id": shipment.departure,
                    "idScheme": "GLN",
                    "names": ["Example Supplier GmbH"],
                },
                "buyerAccountNumber": "CUST-0815",
                "shipmentNumber": shipment.number,
                "invoiceNumbers": [f"INV-{shipment.number[-4:]}"],
                "documents": list(shipment.supplier_documents),
                "contacts": [self._contact(shipment.supplier_user_id, "supplier")],
            },
            "buyerShipment": {
                "companyId": shipment.buyer_company_id,
                "supplierAccountNumber": "SUP-4711",
                "documents": list(shipment.buyer_documents),
                "contacts": [],
                "purchaseOrderTerms": {
                    "incotermsCode": "DAP",
                    "incoterms": f"{city} warehouse",
                    "paymentTermsCode": "30D",
                    "paymentTerms": "30 days net",
                },
            },
            "loadCarriers": [
                {
                    "packageSSCC": f"00{shipment.departure}{shipment.number[-4:]}",
                    "packageType": "PX",
                    "lines": lines[:1],
                }
            ],
            "lines": lines[1:],
            "locations": {
                "departure": {
                    "location": {
                        "locationType": "AgreedPlace",
                        "id": shipment.departure,
                        "idScheme": "GLN",
                        "names": ["Supplier plant"],
                        "addressLines": ["Industriestrasse 5"],
                        "postalCode": "10115",
                        "city": "Berlin",
                        "countryCodeIso": "DE",
                    },
                    "etdDate": departure_day.isoformat(),
                },
                "destinations": [
                    {
                        "location": {
                            "locationType": "FinalDestination",
                            "id": "8790000000001",
                            "idScheme": "GLN",
                            "names": ["Buyer warehouse", "Dock 4"],
                            "addressLines": ["Havenweg 12"],
                            "postalCode": postal,
                            "city": city,
                            "countryCodeIso": country,
                        },
                        "etaStartDate": (departure_day + timedelta(days=2)).isoformat(),
                        "etaStartTime": "08:00:00",
                        "etaEndDate": (departure_day + timedelta(days=2)).isoformat(),
                        "etaEndTime": "12:00:00",
                    }
                ],
            },
            "status": status,
            "meta": {
                "lastUpdatedAt": shipment.last_updated_at,
                "supplierErpMeta": {
                    "despatchAdviceErpIssueDateTime": self._clock.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            },
        }
