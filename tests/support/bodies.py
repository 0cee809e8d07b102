"""Webhook bodies the tests send: small valid order and shipment events with fresh ids."""

from __future__ import annotations

import uuid
from typing import Any


def order_body(event_name: str = "OrderIssuedByBuyer", key: str = "orderEvent", **extra: Any) -> dict[str, Any]:
    return {
        "eventName": event_name,
        key: {
            "orderId": f"order-{uuid.uuid4()}",
            "buyerOrder": {"purchaseOrderNumber": "PO-000123", "companyId": str(uuid.uuid4())},
            "lastUpdatedAt": "2025-05-02T08:15:29.987Z",
            "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
        },
        "meta": {"messageId": str(uuid.uuid4()), "createdDateTime": "2025-05-02T08:15:30.123Z"},
        **extra,
    }


def shipment_body(event_name: str = "ShipmentIssuedBySupplier") -> dict[str, Any]:
    return {
        "eventName": event_name,
        "shipment": {
            "id": f"{uuid.uuid4()}-SN-1",
            "supplierShipment": {"shipmentNumber": "SN-1"},
            "lines": [
                {
                    "purchaseOrderNumber": "PO-1",
                    "purchaseOrderLinePosition": "0001",
                    "supplierLine": {
                        "despatchAdviceNumber": "DA-1",
                        "despatchAdviceLinePosition": "1",
                        "despatchQuantity": 5,
                    },
                }
            ],
            "status": {"processStatus": "Issued"},
            "meta": {"lastUpdatedAt": "2025-06-10T06:40:12.000Z"},
        },
        "meta": {"messageId": str(uuid.uuid4())},
    }


def order_event(order_id: str, seq: int, event_name: str = "OrderLinesConfirmedBySupplier") -> dict[str, Any]:
    """A small valid order event; ``seq`` orders the events of one order (lastUpdatedAt grows)."""
    return {
        "eventName": event_name,
        "orderEvent": {
            "orderId": order_id,
            "buyerOrder": {"purchaseOrderNumber": f"PO-{order_id[:8]}", "companyId": str(uuid.uuid4())},
            "lastUpdatedAt": f"2025-05-02T08:{seq // 60:02d}:{seq % 60:02d}.000Z",
            "lines": [{"id": "l1", "buyerLine": {"position": "0001"}}],
        },
        "meta": {"messageId": str(uuid.uuid4()), "createdDateTime": "2025-05-02T08:15:30.123Z"},
    }
