"""The rows of the CSV format (and of templates): one per delivery-schedule line of each order
line, one per shipment line; header fields are repeated on every row.

The column names and their order are part of the contract with ERP imports: add new columns at
the end, never rename or reorder one (README, "CSV columns").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Data = Mapping[str, Any]
Row = dict[str, Any]

ORDER_COLUMNS: tuple[str, ...] = (
    "event_name",
    "event_id",
    "order_id",
    "purchase_order_number",
    "order_type",
    "supplier_account_number",
    "buyer_account_number",
    "sales_order_number",
    "order_process_status",
    "order_logistics_status",
    "order_version",
    "order_last_updated_at",
    "line_id",
    "line_position",
    "sales_order_position",
    "line_type",
    "item_number",
    "item_revision",
    "item_name",
    "supplier_item_number",
    "unit",
    "line_process_status",
    "line_in_progress_status",
    "line_logistics_status",
    "delivery_overdue",
    "line_last_updated_at",
    "schedule_position",
    "delivery_date",
    "quantity",
    "delivery_status",
    "etd",
    "eta",
    "net_price",
    "gross_price",
    "discount_percentage",
    "currency",
    "price_unit",
    "price_unit_quantity",
)
"""Columns of an order row."""

SHIPMENT_COLUMNS: tuple[str, ...] = (
    "event_name",
    "event_id",
    "shipment_id",
    "shipment_number",
    "shipment_process_status",
    "transport_mode",
    "buyer_account_number",
    "supplier_account_number",
    "tracking_number",
    "departure_etd",
    "destination_eta",
    "shipment_last_updated_at",
    "load_carrier",
    "purchase_order_number",
    "line_position",
    "schedule_position",
    "item_number",
    "supplier_item_number",
    "unit",
    "quantity",
    "backorder_quantity",
    "despatch_advice_number",
)
"""Columns of a shipment row."""


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, [], {}):
            return value
    return None


def _schedule(line: Data) -> list[Data]:
    """The line's current schedule without open requests (§3.3), or its single delivery (§3.4)."""
    single = _first(_get(line, "statusLine", "scheduledDelivery"), line.get("scheduledDelivery"))
    if isinstance(single, Mapping):
        return [single]
    schedule = _first(
        line.get("deliverySchedule"),
        _get(line, "confirmedLine", "deliverySchedule"),
        _get(line, "buyerLine", "deliverySchedule"),
    )
    return list(schedule) if isinstance(schedule, list) else []


def _prices(line: Data) -> Data:
    prices = _first(
        _get(line, "statusLine", "prices"),
        line.get("prices"),
        _get(line, "confirmedLine", "prices"),
        _get(line, "buyerLine", "prices"),
    )
    return prices if isinstance(prices, Mapping) else {}


def _line_position(line: Data) -> Any:
    return _first(_get(line, "buyerLine", "position"), line.get("position"))


def order_rows(order: Data, *, event_name: str, event_id: str) -> Iterator[Row]:
    """The rows of one order object (an ``orderEvent`` or a book's order), lines in position order."""
    header: Row = {
        "event_name": event_name,
        "event_id": event_id,
        "order_id": order.get("orderId"),
        "purchase_order_number": _first(
            _get(order, "buyerOrder", "purchaseOrderNumber"), _get(order, "order", "purchaseOrderNumber")
        ),
        "order_type": _get(order, "buyerOrder", "orderType"),
        "supplier_account_number": _first(
            _get(order, "buyerOrder", "supplierAccountNumber"), _get(order, "order", "supplierAccountNumber")
        ),
        "buyer_account_number": _get(order, "supplierOrder", "buyerAccountNumber"),
        "sales_order_number": _get(order, "supplierOrder", "salesOrderNumber"),
        "order_process_status": _get(order, "status", "processStatus"),
        "order_logistics_status": _get(order, "status", "logisticsStatus"),
        "order_version": order.get("version"),
        "order_last_updated_at": order.get("lastUpdatedAt"),
    }
    for line in order.get("lines") or ():
        prices = _prices(line)
        net = _get(prices, "netPrice", "priceInTransactionCurrency")
        gross = _get(prices, "grossPrice", "priceInTransactionCurrency")
        item = _get(line, "buyerLine", "item") or {}
        line_row: Row = {
            **header,
            "line_id": line.get("id"),
            "line_position": _line_position(line),
            "sales_order_position": _get(line, "supplierLine", "salesOrderPosition"),
            "line_type": line.get("lineType"),
            "item_number": _get(item, "number"),
            "item_revision": _get(item, "revision"),
            "item_name": _get(item, "name"),
            "supplier_item_number": _get(item, "supplierItemNumber"),
            "unit": _get(item, "purchaseUnitOfMeasureIso"),
            "line_process_status": _get(line, "status", "processStatus"),
            "line_in_progress_status": _get(line, "status", "inProgressStatus"),
            "line_logistics_status": _get(line, "status", "logisticsStatus"),
            "delivery_overdue": _get(line, "indicators", "deliveryOverdue"),
            "line_last_updated_at": line.get("lastUpdatedAt"),
            "net_price": _get(net, "value"),
            "gross_price": _get(gross, "value"),
            "discount_percentage": prices.get("discountPercentage"),
            "currency": _first(_get(net, "currencyIso"), _get(gross, "currencyIso")),
            "price_unit": prices.get("priceUnitOfMeasureIso"),
            "price_unit_quantity": prices.get("priceUnitQuantity"),
        }
        schedule = _schedule(line) or [{}]
        for delivery in schedule:
            yield {
                **line_row,
                "schedule_position": delivery.get("position"),
                "delivery_date": delivery.get("date"),
                "quantity": delivery.get("quantity"),
                "delivery_status": delivery.get("status"),
                "etd": delivery.get("etd"),
                "eta": delivery.get("eta"),
            }


def shipment_rows(shipment: Data, *, event_name: str, event_id: str) -> Iterator[Row]:
    """The rows of one shipment: its loose lines, then the lines of each load carrier."""
    locations = shipment.get("locations") or {}
    destinations = locations.get("destinations") or []
    destination = _first(destinations[0] if destinations else None, locations.get("destination")) or {}
    header: Row = {
        "event_name": event_name,
        "event_id": event_id,
        "shipment_id": shipment.get("id"),
        "shipment_number": _get(shipment, "supplierShipment", "shipmentNumber"),
        "shipment_process_status": _first(_get(shipment, "status", "processStatus"), shipment.get("processStatus")),
        "transport_mode": shipment.get("transportMode"),
        "buyer_account_number": _get(shipment, "supplierShipment", "buyerAccountNumber"),
        "supplier_account_number": _get(shipment, "buyerShipment", "supplierAccountNumber"),
        "tracking_number": _first(_get(shipment, "identifiers", "trackingNumber"), shipment.get("trackingNumber")),
        "departure_etd": _get(locations, "departure", "etdDate"),
        "destination_eta": _first(destination.get("etaStartDate"), destination.get("scheduledStartDate")),
        "shipment_last_updated_at": _get(shipment, "meta", "lastUpdatedAt"),
    }
    carriers: list[tuple[Any, Data]] = [(None, line) for line in shipment.get("lines") or ()]
    for carrier in shipment.get("loadCarriers") or ():
        name = _first(carrier.get("containerNumber"), carrier.get("packageSSCC"))
        carriers.extend((name, line) for line in carrier.get("lines") or ())
    for carrier_name, line in carriers:
        item = line.get("item") or {}
        supplier = line.get("supplierLine") or {}
        yield {
            **header,
            "load_carrier": carrier_name,
            "purchase_order_number": line.get("purchaseOrderNumber"),
            "line_position": line.get("purchaseOrderLinePosition"),
            "schedule_position": line.get("deliverySchedulePosition"),
            "item_number": item.get("buyerItemNumber"),
            "supplier_item_number": item.get("supplierItemNumber"),
            "unit": item.get("purchaseUnitOfMeasureIso"),
            "quantity": supplier.get("despatchQuantity"),
            "backorder_quantity": supplier.get("backorderQuantity"),
            "despatch_advice_number": supplier.get("despatchAdviceNumber"),
        }
