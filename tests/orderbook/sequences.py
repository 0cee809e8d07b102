"""Event sequences of one order, built field by field so tests can check the book against them.

The story: the buyer issues order PO-7001 with two lines; the supplier confirms line 0001 with a
changed schedule; rejects line 0002; then moves the second delivery of line 0001 to a later date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tcwebhook.contract.kinds import EventKind
from tcwebhook.contract.txml import data_to_xml
from tcwebhook.inbox.base import NewEvent, StoredEvent

ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PO = "PO-7001"
L1, L2 = "line-aaaa-0001", "line-aaaa-0002"

T1 = "2026-03-02T09:00:00.000Z"
T2 = "2026-03-02T11:30:00.250Z"
T3 = "2026-03-03T08:00:00Z"
T4 = "2026-03-04T16:45:10.5+01:00"  # 15:45:10.5 UTC: zones differ, time decides


def _price(value: str, currency: str = "EUR") -> dict[str, Any]:
    return {
        "netPrice": {"priceInTransactionCurrency": {"value": value, "currencyIso": currency}},
        "priceUnitOfMeasureIso": "PCE",
        "priceUnitQuantity": 1,
    }


def _line(
    line_id: str, position: str, item: str, status: str, schedule: list[tuple[str, str, str]], price: str, at: str
) -> dict[str, Any]:
    return {
        "id": line_id,
        "lineType": "Item",
        "buyerLine": {
            "position": position,
            "item": {"number": item, "name": f"Item {item}", "purchaseUnitOfMeasureIso": "PCE"},
        },
        "supplierLine": {"salesOrderNumber": "SO-55", "salesOrderPosition": position[-2:]},
        "deliverySchedule": [
            {"position": pos, "date": date, "quantity": qty, "status": "Open"} for pos, date, qty in schedule
        ],
        "prices": _price(price),
        "indicators": {"deliveryOverdue": False},
        "status": {"processStatus": status, "logisticsStatus": "Open"},
        "lastUpdatedAt": at,
    }


def _order(name: str, version: int, at: str, status: str, lines: list[dict[str, Any]], msg: str) -> dict[str, Any]:
    return {
        "eventName": name,
        "orderEvent": {
            "orderId": ORDER_ID,
            "buyerOrder": {"purchaseOrderNumber": PO, "supplierAccountNumber": "SUP-4711", "orderType": "Purchase"},
            "supplierOrder": {"buyerAccountNumber": "CUST-0815", "salesOrderNumber": "SO-55"},
            "indicators": {"deliveryOverdue": False},
            "status": {"processStatus": status, "logisticsStatus": "Open"},
            "version": version,
            "lastUpdatedAt": at,
            "lines": lines,
        },
        "meta": {"messageId": msg},
    }


# Quantities and prices are JSON numbers in the bodies (written from these texts without rounding).
ISSUED = _order(
    "OrderIssuedByBuyer",
    1,
    T1,
    "Issued",
    [
        _line(L1, "0001", "HH-600", "Issued", [("01", "2026-06-02", "60"), ("02", "2026-07-01", "40")], "18.75", T1),
        _line(L2, "0002", "HX-10", "Issued", [("01", "2026-06-15", "10.5")], "1234.5678", T1),
    ],
    "11111111-0000-4000-8000-000000000001",
)
CONFIRMED = _order(
    "OrderLinesConfirmedBySupplier",
    2,
    T2,
    "InProgress",
    [_line(L1, "0001", "HH-600", "Confirmed", [("01", "2026-06-09", "50"), ("02", "2026-07-01", "50")], "18.75", T2)],
    "11111111-0000-4000-8000-000000000002",
)
REJECTED = _order(
    "OrderLinesRejectedBySupplier",
    3,
    T3,
    "InProgress",
    [_line(L2, "0002", "HX-10", "Rejected", [("01", "2026-06-15", "10.5")], "1234.5678", T3)],
    "11111111-0000-4000-8000-000000000003",
)
RESCHEDULED = _order(
    "OrderLinesDeliveryScheduleLogisticsUpdatedBySupplier",
    4,
    T4,
    "Confirmed",
    [_line(L1, "0001", "HH-600", "Confirmed", [("01", "2026-06-09", "50"), ("02", "2026-07-08", "50")], "18.75", T4)],
    "11111111-0000-4000-8000-000000000004",
)
SEQUENCE = (ISSUED, CONFIRMED, REJECTED, RESCHEDULED)


def json_body(data: dict[str, Any]) -> bytes:
    """JSON with the numeric texts above as JSON numbers (exact, not through float)."""
    text = json.dumps(data)
    for key in ("quantity", "value"):
        text = _unquote_numbers(text, key)
    return text.encode()


def _unquote_numbers(text: str, key: str) -> str:
    import re

    return re.sub(rf'"{key}": "(-?[0-9.]+)"', rf'"{key}": \1', text)


def xml_body(data: dict[str, Any]) -> bytes:
    return data_to_xml(data)


@dataclass(frozen=True)
class Expected:
    """What the book must say after the whole sequence, whatever the arrival order."""

    version: int = 4
    last_updated_at: str = T4
    status: str = "Confirmed"
    l1_status: str = "Confirmed"
    l1_schedule: tuple[tuple[str, str, str], ...] = (("01", "2026-06-09", "50"), ("02", "2026-07-08", "50"))
    l1_updated: str = T4
    l2_status: str = "Rejected"
    l2_schedule: tuple[tuple[str, str, str], ...] = (("01", "2026-06-15", "10.5"),)
    l2_updated: str = T3
    l2_price: str = "1234.5678"


def new_event(data: dict[str, Any], *, xml: bool = False) -> NewEvent:
    """The NewEvent the receiver would store for ``data`` (parsed like a webhook call)."""
    from tcwebhook.contract.parse import parse_webhook

    route = "shipments" if "shipment" in data else "orders"
    body = xml_body(data) if xml else json_body(data)
    content_type = "application/xml" if xml else "application/json"
    parsed = parse_webhook(route, body, content_type)
    return NewEvent.from_parsed(parsed, content_type=content_type, body=body, headers={})


def stored_event(data: dict[str, Any], *, xml: bool = False, seq: int = 1, event_id: str | None = None) -> StoredEvent:
    new = new_event(data, xml=xml)
    return StoredEvent(
        seq=seq,
        event_id=event_id or f"01EVENT{seq:019d}",
        received_at=datetime(2026, 3, 5, 12, 0, tzinfo=UTC) + timedelta(seconds=seq),
        kind=new.kind,
        event_name=new.event_name,
        dedupe_key=new.dedupe_key,
        content_type=new.content_type,
        body=new.body,
        key=new.key,
        order_id=new.order_id,
        shipment_id=new.shipment_id,
        purchase_order_number=new.purchase_order_number,
        shipment_number=new.shipment_number,
        message_id=new.message_id,
        last_updated_at=new.last_updated_at,
        headers={},
        status="pending",
    )


SHIPMENT_ID = "5d1f0000-aaaa-4bbb-8ccc-000000000001"


def shipment(name: str, at: str, status: str, quantity: str, msg: str) -> dict[str, Any]:
    return {
        "eventName": name,
        "shipment": {
            "id": SHIPMENT_ID,
            "transportMode": "Road",
            "supplierShipment": {"shipmentNumber": "SHP-77", "buyerAccountNumber": "CUST-0815"},
            "buyerShipment": {"supplierAccountNumber": "SUP-4711"},
            "status": {"processStatus": status},
            "loadCarriers": [
                {
                    "containerNumber": "MSKU1234567",
                    "lines": [
                        {
                            "purchaseOrderNumber": PO,
                            "purchaseOrderLinePosition": "0001",
                            "deliverySchedulePosition": "01",
                            "item": {"buyerItemNumber": "HH-600", "purchaseUnitOfMeasureIso": "PCE"},
                            "supplierLine": {"despatchQuantity": quantity, "despatchAdviceNumber": "DA-1"},
                        }
                    ],
                }
            ],
            "lines": [
                {
                    "purchaseOrderNumber": PO,
                    "purchaseOrderLinePosition": "0002",
                    "deliverySchedulePosition": "01",
                    "item": {"buyerItemNumber": "HX-10", "purchaseUnitOfMeasureIso": "PCE"},
                    "supplierLine": {"despatchQuantity": "10.5"},
                }
            ],
            "meta": {"messageId": msg, "lastUpdatedAt": at},
        },
    }


def with_event_id(event: StoredEvent, event_id: str) -> StoredEvent:
    return replace(event, event_id=event_id)


ALL_KINDS = (EventKind.ORDER, EventKind.SHIPMENT)
