"""How long parsing a webhook body takes, per body and per 4 KiB (run: python bench/contract_parse.py).

Compares the ways to turn the JSON body of contract example 9.1 into typed data:
pydantic ``model_validate_json`` (what ``parse_webhook`` uses), ``orjson.loads`` then
``model_validate``, msgspec typed decoding into equivalent ``Struct``s (optional: only when
msgspec is installed; it cannot keep unknown fields, which the contract requires), plus the
raw-parse floors, the full ``parse_webhook`` call for JSON and for tXML, and the hash used as
dedupe key when a body has no message id.
"""

# No ``from __future__ import annotations``: msgspec resolves the annotations of the Structs
# defined inside a function only when they are real objects.
import hashlib
import json
import sys
import timeit
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tcwebhook.contract.models import OrderWebhook, ShipmentWebhook
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.contract.txml import data_to_xml

DATA = Path(__file__).resolve().parent.parent / "tests" / "contract" / "data"
KIB4 = 4096


def _best_us(fn: Callable[[], Any], repeat: int = 7) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def _msgspec_decoder() -> Callable[[bytes], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None

    class S(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
        pass

    class Amount(S):
        value: Decimal | None = None
        currency_iso: str | None = None

    class Price(S):
        price_in_transaction_currency: Amount | None = None
        price_in_base_currency: Amount | None = None

    class Prices(S):
        gross_price: Price | None = None
        discount_percentage: Decimal | None = None
        net_price: Price | None = None
        price_unit_of_measure_iso: str | None = None
        price_unit_quantity: Decimal | None = None

    class DeliveryLine(S):
        position: str | None = None
        date: str | None = None
        quantity: Decimal | None = None
        status: str | None = None
        etd: str | None = None
        eta: str | None = None

    class Item(S):
        number: str | None = None
        revision: str | None = None
        name: str | None = None
        purchase_unit_of_measure_iso: str | None = None
        supplier_item_number: str | None = None

    class Property(S):
        key: str | None = None
        value: str | None = None

    class Document(S):
        code: str | None = None
        name: str | None = None
        object_id: str | None = None
        url: str | None = None

    class Contact(S):
        email: str | None = None

    class Terms(S):
        contract_number: str | None = None
        contract_position: str | None = None

    class BuyerLineIndicators(S):
        no_delivery_expected: bool | None = None
        delivered: bool | None = None

    class BuyerLine(S):
        position: str | None = None
        description: str | None = None
        item: Item | None = None
        delivery_schedule: list[DeliveryLine] | None = None
        prices: Prices | None = None
        terms: Terms | None = None
        indicators: BuyerLineIndicators | None = None
        properties: list[Property] | None = None
        notes: list[str] | None = None
        labels: list[str] | None = None
        documents: list[Document] | None = None

    class SupplierLine(S):
        sales_order_number: str | None = None
        sales_order_position: str | None = None
        description: str | None = None
        properties: list[Property] | None = None
        notes: list[str] | None = None
        documents: list[Document] | None = None

    class ConfirmedLine(S):
        delivery_schedule: list[DeliveryLine] | None = None
        prices: Prices | None = None

    class Indicators(S):
        delivery_overdue: bool | None = None

    class Status(S):
        process_status: str | None = None
        in_progress_status: str | None = None
        logistics_status: str | None = None

    class ItemDetails(S):
        country_of_origin_code_iso2: str | None = None
        combined_nomenclature_code: str | None = None
        net_weight: Decimal | None = None
        net_weight_unit_of_measure_iso: str | None = None

    class Line(S):
        id: str | None = None
        line_type: str | None = None
        buyer_line: BuyerLine | None = None
        supplier_line: SupplierLine | None = None
        confirmed_line: ConfirmedLine | None = None
        delivery_schedule: list[DeliveryLine] | None = None
        delivery_schedule_including_requests: list[DeliveryLine] | None = None
        prices: Prices | None = None
        prices_including_requests: Prices | None = None
        indicators: Indicators | None = None
        status: Status | None = None
        event_dates: dict[str, Any] | None = None
        merged_item_details: ItemDetails | None = None
        last_updated_at: str | None = None

    class Order(S):
        company_id: str | None = None
        purchase_order_number: str | None = None
        supplier_account_number: str | None = None
        buyer_account_number: str | None = None
        description: str | None = None
        contact: Contact | None = None
        properties: list[Property] | None = None
        notes: list[str] | None = None
        labels: list[str] | None = None
        documents: list[Document] | None = None
        order_type: str | None = None

    class Source(S):
        trace_id: str | None = None
        user_id: str | None = None
        company_id: str | None = None

    class Meta(S):
        message_id: str | None = None
        source: Source | None = None
        created_date_time: str | None = None

    class OrderEvent(S):
        order_id: str | None = None
        buyer_order: Order | None = None
        supplier_order: Order | None = None
        indicators: Indicators | None = None
        status: Status | None = None
        version: int | None = None
        event_dates: dict[str, Any] | None = None
        meta: Meta | None = None
        last_updated_at: str | None = None
        lines: list[Line] | None = None

    class Webhook(S):
        event_name: str
        order_event: OrderEvent | None = None
        meta: Meta | None = None

    decoder = msgspec.json.Decoder(Webhook)
    return decoder.decode


def main() -> int:
    data = json.loads((DATA / "order_event_accepted.json").read_text())
    body = orjson.dumps(data)
    xml = data_to_xml(data)
    shipment = orjson.dumps(json.loads((DATA / "shipment_issued.json").read_text()))
    size = len(body)

    rows: list[tuple[str, float, int]] = [
        ("orjson.loads (raw parse, untyped)", _best_us(lambda: orjson.loads(body)), size),
        ("pydantic model_validate_json", _best_us(lambda: OrderWebhook.model_validate_json(body)), size),
        ("orjson.loads + pydantic model_validate",
         _best_us(lambda: OrderWebhook.model_validate(orjson.loads(body))), size),
    ]
    decode = _msgspec_decoder()
    if decode is not None:
        import msgspec

        assert decode(body).order_event.lines[0].buyer_line.position == "0001"
        rows.insert(1, ("msgspec.json.decode (raw parse, untyped)",
                        _best_us(lambda: msgspec.json.decode(body)), size))
        rows.append(("msgspec typed Structs (drops unknown fields)", _best_us(lambda: decode(body)), size))
    rows += [
        ("parse_webhook JSON (what the receiver calls)",
         _best_us(lambda: parse_webhook("orders", body, "application/json")), size),
        ("parse_webhook JSON, shipment example 9.3",
         _best_us(lambda: parse_webhook("shipments", shipment, "application/json")), len(shipment)),
        ("ShipmentWebhook model_validate_json, 9.3",
         _best_us(lambda: ShipmentWebhook.model_validate_json(shipment)), len(shipment)),
        ("parse_webhook tXML (same event as XML)",
         _best_us(lambda: parse_webhook("orders", xml, "application/xml")), len(xml)),
        ("sha256 of the body (dedupe key fallback)", _best_us(lambda: hashlib.sha256(body).hexdigest()),
         size),
    ]

    print(f"python {sys.version.split()[0]}; body: contract example 9.1, {size} bytes JSON, "
          f"{len(xml)} bytes tXML")
    print(f"{'method':<48} {'us/body':>9} {'us/4KiB':>9} {'bodies/s':>10}")
    for name, us, nbytes in rows:
        print(f"{name:<48} {us:>9.1f} {us * KIB4 / nbytes:>9.1f} {1e6 / us:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
