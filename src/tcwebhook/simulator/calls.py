"""Webhook calls as the sender makes them: method, URL, body and content type."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

import httpx
import orjson

from tcwebhook.contract.txml import data_to_xml
from tcwebhook.simulator.samples import Family, SampleEvent

JSON_TYPE = "application/json"
XML_TYPE = "application/xml"

IdPlacement = Literal["path", "query"]


class BodyFormat(StrEnum):
    """The webhook setting ``format``: JSON or tXML."""

    JSON = "json"
    TXML = "txml"


# tXML roots are not documented for webhooks (contract §6); receivers ignore the root name.
TXML_ROOTS = {
    Family.ORDER: "OrderEvent",
    Family.SINGLE_DELIVERY: "SingleDeliveryOrderEvent",
    Family.DOCUMENTS: "OrderDocumentsEvent",
    Family.SHIPMENT: "ShipmentEvent",
}


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook call; ``label`` names it in progress lines (event name or file name)."""

    label: str
    method: str
    url: str
    body: bytes | None = None
    content_type: str | None = None
    message_id: str | None = None
    duplicate: bool = False


def encode(event: SampleEvent, fmt: BodyFormat) -> tuple[bytes, str]:
    """The body bytes and content type of ``event`` in ``fmt``."""
    if fmt is BodyFormat.TXML:
        return data_to_xml(event.data, root=TXML_ROOTS[event.family]), XML_TYPE
    return orjson.dumps(event.data), JSON_TYPE


def default_events(url: str, shipment_url: str | None = None) -> str:
    """The ``--events`` value when none is given: what the URL(s) can receive.

    Tradecloud configures the order and the shipment webhook separately, so one URL gets one
    of them: shipment events when its path mentions shipments, else the order webhook's
    families; every family once a separate shipment URL is given.
    """
    if shipment_url:
        return "mix"
    if "shipment" in httpx.URL(url).path.lower():
        return Family.SHIPMENT.value
    return ",".join((Family.ORDER, Family.SINGLE_DELIVERY, Family.DOCUMENTS))


def get_url(base: str, event: SampleEvent, id_in: IdPlacement) -> str:
    """The historic GET notification URL: the id as the last path segment or as a query."""
    if id_in == "query":
        param = "shipmentId" if event.family is Family.SHIPMENT else "orderId"
        return str(httpx.URL(base).copy_add_param(param, event.object_id))
    url = httpx.URL(base)
    path = url.path.rstrip("/") + "/" + event.object_id
    return str(url.copy_with(path=path))


def plan_requests(
    events: Iterator[SampleEvent],
    count: int,
    *,
    url: str,
    shipment_url: str | None = None,
    fmt: BodyFormat = BodyFormat.JSON,
    get: bool = False,
    id_in: IdPlacement = "path",
    duplicate_rate: float = 0.0,
    rng: random.Random | None = None,
) -> Iterator[WebhookRequest]:
    """``count`` calls built lazily from ``events``; some may repeat an earlier call byte for
    byte (a redelivery with the same ``messageId``) when ``duplicate_rate`` > 0."""
    rng = rng or random.Random()
    recent: deque[WebhookRequest] = deque(maxlen=100)
    for _ in range(count):
        if recent and duplicate_rate > 0 and rng.random() < duplicate_rate:
            original = rng.choice(recent)
            yield WebhookRequest(
                label=original.label,
                method=original.method,
                url=original.url,
                body=original.body,
                content_type=original.content_type,
                message_id=original.message_id,
                duplicate=True,
            )
            continue
        event = next(events)
        target = shipment_url if event.family is Family.SHIPMENT and shipment_url else url
        if get:
            request = WebhookRequest(
                label=event.event_name,
                method="GET",
                url=get_url(target, event, id_in),
                message_id=event.message_id,
            )
        else:
            body, content_type = encode(event, fmt)
            request = WebhookRequest(
                label=event.event_name,
                method="POST",
                url=target,
                body=body,
                content_type=content_type,
                message_id=event.message_id,
            )
        recent.append(request)
        yield request


def sniff_content_type(body: bytes) -> str:
    """XML when the first non-blank byte is ``<``, else JSON."""
    return XML_TYPE if body.lstrip()[:1] == b"<" else JSON_TYPE


def file_requests(path: Path, count: int, *, url: str, content_type: str | None = None) -> Iterator[WebhookRequest]:
    """The same file body ``count`` times (the receiver sees redeliveries after the first)."""
    body = path.read_bytes()
    ctype = content_type or sniff_content_type(body)
    for n in range(count):
        yield WebhookRequest(label=path.name, method="POST", url=url, body=body, content_type=ctype, duplicate=n > 0)
