"""Shipment event bodies (``shipment``): shipments that point at the lines of orders in flight."""

from __future__ import annotations

from datetime import timedelta

from tcwebhook.simulator.samples.base import FactoryBase
from tcwebhook.simulator.samples.families import Family, Json, SampleEvent
from tcwebhook.simulator.samples.states import CITIES, Shipment, ShipmentLine, iso_time


class ShipmentBodies(FactoryBase):
    """Builds shipment events: a new shipment of order lines, then its progress."""

    def _new_shipment(self, now: str) -> Shipment:
        rng = self._rng
        order = self._pick_order()
        self._sn_counter += 1
        number = f"SN-{self._clock:%Y%m%d}-{self._sn_counter:04d}"
        lines: list[ShipmentLine] = []
        for i, line in enumerate(order.lines[: rng.randint(1, len(order.lines))], start=1):
            d = line.schedule[0]
            lines.append(ShipmentLine(order, line, d, max(1, d.quantity - rng.choice((0, 0, 5))), str(i), now))
        shipment = Shipment(
            shipment_id=f"{order.supplier_company_id}-{number}",
            number=number,
            advice_number=f"DA-{self._clock:%Y%m%d}-{self._sn_counter:04d}",
            supplier_company_id=order.supplier_company_id,
            buyer_company_id=order.buyer_company_id,
            supplier_user_id=order.supplier_user_id,
            trace_id=self._uuid(),
            lines=lines,
            departure=f"87{rng.randrange(10**10, 10**11)}",
            city=rng.choice(CITIES),
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
            created=iso_time(self._clock + timedelta(milliseconds=self._rng.randint(20, 300))),
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

    def _shipment_line(self, shipment: Shipment, sl: ShipmentLine) -> Json:
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

    def _shipment_body(self, shipment: Shipment) -> Json:
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
