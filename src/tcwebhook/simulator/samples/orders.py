"""Order event bodies (``orderEvent`` and ``singleDeliveryOrderEvent``)."""

from __future__ import annotations

from datetime import timedelta

from tcwebhook.simulator.samples.base import FactoryBase
from tcwebhook.simulator.samples.families import Family, Json, SampleEvent
from tcwebhook.simulator.samples.states import (
    WHOLE_ORDER,
    Delivery,
    Line,
    Order,
    advance_line,
    iso_time,
    order_status,
    price_block,
)


class OrderBodies(FactoryBase):
    """Builds order events: a new or in-flight order, its affected lines moved along."""

    def _order_event(self, event_name: str, *, single_delivery: bool) -> SampleEvent:
        if event_name == "OrderIssuedByBuyer":
            order = self._new_order(single_delivery)
        else:
            order = self._pick_order(single_delivery)
        now = self._tick()
        order.version += 1
        order.last_updated_at = now
        if event_name in WHOLE_ORDER:
            affected = list(order.lines)
        else:
            k = self._rng.randint(1, len(order.lines))
            affected = sorted(self._rng.sample(order.lines, k), key=lambda ln: ln.position)
        for line in affected:
            advance_line(event_name, line, self._rng)
            line.last_updated_at = now
        by_buyer = self._by_buyer(event_name)
        meta = self._meta(
            order.trace_id,
            order.buyer_user_id if by_buyer else order.supplier_user_id,
            order.buyer_company_id if by_buyer else order.supplier_company_id,
            created=iso_time(self._clock + timedelta(milliseconds=self._rng.randint(20, 300))),
        )
        family = Family.SINGLE_DELIVERY if single_delivery else Family.ORDER
        lines = [self._order_line(event_name, order, ln, single_delivery) for ln in affected]
        body: Json = {
            "orderId": order.order_id,
            "buyerOrder": self._buyer_order(order, event_name),
            "supplierOrder": self._supplier_order(order, event_name),
            "indicators": {"deliveryOverdue": False},
            "status": order_status(order),
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

    def _buyer_order(self, order: Order, event_name: str) -> Json:
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

    def _supplier_order(self, order: Order, event_name: str) -> Json:
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

    def _delivery(self, d: Delivery, *, with_status: bool, shift: int = 0) -> Json:
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

    def _request(self, line: Line, reason: str) -> Json:
        return {
            "deliverySchedule": [self._delivery(d, with_status=False, shift=14) for d in line.schedule],
            "prices": price_block(round(line.net_price * 1.04, 2)),
            "reason": reason,
            "status": "Open",
        }

    def _order_line(self, event_name: str, order: Order, line: Line, single_delivery: bool) -> Json:
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
            "prices": price_block(line.net_price, line.gross_price),
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
        prices = price_block(line.net_price, line.gross_price)
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
