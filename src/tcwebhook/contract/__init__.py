"""The Tradecloud webhook contract: typed models, tXML, body parsing and the OpenAPI document.

Importing the package is cheap (``kinds`` only); the models load on first use of a name
below, so code that only needs ``EventKind`` never pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcwebhook.contract.kinds import EventKind, routing_key

if TYPE_CHECKING:
    from tcwebhook.contract.models import (
        FetchNotification,
        OrderDocumentsEvent,
        OrderEvent,
        OrderWebhook,
        Shipment,
        ShipmentWebhook,
        SimpleOrderEvent,
        SingleDeliveryOrderEvent,
    )
    from tcwebhook.contract.openapi import build_openapi, openapi_json
    from tcwebhook.contract.parse import ParsedWebhook, media_format, parse_stored, parse_webhook
    from tcwebhook.contract.txml import data_to_xml, xml_to_data

_LAZY = {
    "FetchNotification": "models",
    "OrderDocumentsEvent": "models",
    "OrderEvent": "models",
    "OrderWebhook": "models",
    "Shipment": "models",
    "ShipmentWebhook": "models",
    "SimpleOrderEvent": "models",
    "SingleDeliveryOrderEvent": "models",
    "build_openapi": "openapi",
    "openapi_json": "openapi",
    "ParsedWebhook": "parse",
    "media_format": "parse",
    "parse_stored": "parse",
    "parse_webhook": "parse",
    "data_to_xml": "txml",
    "xml_to_data": "txml",
}

__all__ = [
    "EventKind",
    "FetchNotification",
    "OrderDocumentsEvent",
    "OrderEvent",
    "OrderWebhook",
    "ParsedWebhook",
    "Shipment",
    "ShipmentWebhook",
    "SimpleOrderEvent",
    "SingleDeliveryOrderEvent",
    "build_openapi",
    "data_to_xml",
    "media_format",
    "openapi_json",
    "parse_stored",
    "parse_webhook",
    "routing_key",
    "xml_to_data",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
