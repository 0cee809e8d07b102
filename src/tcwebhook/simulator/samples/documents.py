"""Order document event bodies (``orderDocumentsEvent``)."""

from __future__ import annotations

from tcwebhook.simulator.samples.base import FactoryBase
from tcwebhook.simulator.samples.families import Family, Json, SampleEvent


class DocumentBodies(FactoryBase):
    """Builds order-documents events: a document on the order and one on a line."""

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
