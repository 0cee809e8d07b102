"""The company's webhook settings in Tradecloud (§1.4; needs a user with the admin role).

``POST /order-webhook-connector/company/{id}/settings/orderEvents`` and ``…/orderDocumentsEvents``
set the order webhooks, ``GET …/settings`` returns both; ``GET``/``POST
/shipment-webhook-connector/company/{id}/settings`` read and set the shipment webhook. This module
builds the wanted settings from the configuration (URL from ``public_hostname``, port and routes;
credentials from ``[auth]``), compares them with what Tradecloud has, and masks secrets for display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tcwebhook.config import Settings
from tcwebhook.contract.names import (
    OPT_IN_ORDER_EVENT_NAMES,
    ORDER_DOCUMENTS_EVENT_NAMES,
    ORDER_EVENT_NAMES,
    SHIPMENT_EVENT_NAMES,
    SUBSCRIPTION_NAMES,
)
from tcwebhook.errors import StartupError

if TYPE_CHECKING:
    from tcwebhook.tradecloud_api.client import TradecloudClient

ORDER_EVENTS = "orderEvents"
ORDER_DOCUMENTS_EVENTS = "orderDocumentsEvents"
SHIPMENT = "shipment"
SECTIONS = (ORDER_EVENTS, ORDER_DOCUMENTS_EVENTS, SHIPMENT)
_DOCUMENTED = {
    ORDER_EVENTS: ORDER_EVENT_NAMES,
    ORDER_DOCUMENTS_EVENTS: ORDER_DOCUMENTS_EVENT_NAMES,
    SHIPMENT: SHIPMENT_EVENT_NAMES,
}
Section = dict[str, Any]


def public_base(settings: Settings) -> str:
    host = settings.server.public_hostname
    if not host:
        raise StartupError("connect needs [server] public_hostname: the name Tradecloud calls (and the certificate's).")
    port = settings.server.port
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def webhook_url(settings: Settings, section: str) -> str:
    route = settings.routes.shipments if section == SHIPMENT else settings.routes.orders
    return public_base(settings) + route


def sections(settings: Settings) -> tuple[str, ...]:
    wanted = [ORDER_EVENTS]
    if settings.connect.order_documents:
        wanted.append(ORDER_DOCUMENTS_EVENTS)
    if settings.connect.shipments:
        wanted.append(SHIPMENT)
    return tuple(wanted)


def credentials(settings: Settings, bearer: str | None = None) -> Section:
    """The first bearer token (or ``bearer``), else the first Basic user, as Tradecloud takes them."""
    token = bearer or (settings.auth.bearer_tokens[0].get_secret_value() if settings.auth.bearer_tokens else None)
    if token:
        return {"bearerToken": token}
    if settings.auth.basic:
        first = settings.auth.basic[0]
        return {"basicAuthCredentials": {"username": first.username, "password": first.password.get_secret_value()}}
    raise StartupError(
        "connect needs a static credential in [auth] (bearer_tokens or [[auth.basic]]); "
        "OAuth client credentials are entered in the Tradecloud portal."
    )


def event_names(settings: Settings, section: str) -> list[str]:
    """The names ``connect`` subscribes for ``section``, as the settings API spells them."""
    documented = _DOCUMENTED[section]
    configured = settings.connect.enabled_event_names
    if not configured:
        return sorted({SUBSCRIPTION_NAMES.get(n, n) for n in documented})
    # A configured name goes to the webhook whose documented list holds it; the opt-in names and
    # unknown ones (new ones Tradecloud added since) go to the order webhook, which has by far the most.
    known = set().union(*_DOCUMENTED.values())
    chosen = {
        SUBSCRIPTION_NAMES.get(n, n)
        for n in configured
        if n in documented or (section == ORDER_EVENTS and (n in OPT_IN_ORDER_EVENT_NAMES or n not in known))
    }
    return sorted(chosen)


def desired(settings: Settings, *, bearer: str | None = None) -> dict[str, Section]:
    """What ``connect`` sets, per section (``orderEvents``, ``orderDocumentsEvents``, ``shipment``)."""
    creds = credentials(settings, bearer)
    wanted: dict[str, Section] = {}
    for section in sections(settings):
        body: Section = {"method": "POST", "webhookUrl": webhook_url(settings, section), **creds}
        if section != SHIPMENT:
            body["format"] = "tXML" if settings.connect.format == "txml" else "JSON"
        if section == ORDER_EVENTS:
            body["singleDeliveryPerOrderLine"] = settings.connect.single_delivery
        body["enabledEventNames"] = event_names(settings, section)
        wanted[section] = body
    return wanted


def _mask_secret(value: object) -> object:
    if not isinstance(value, str) or not value:
        return value
    return value[:4] + "…" if len(value) >= 16 else "****"


def mask(data: object) -> object:
    """A copy with bearer tokens cut to their first characters and passwords hidden."""
    if isinstance(data, Mapping):
        out: dict[str, object] = {}
        for key, value in data.items():
            if key in ("bearerToken", "token", "clientSecret"):
                out[key] = _mask_secret(value)
            elif key == "password":
                out[key] = "********" if value else value
            else:
                out[key] = mask(value)
        return out
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data


def changes(current: Mapping[str, Section], wanted: Mapping[str, Section]) -> list[str]:
    """One line per differing field, secrets masked: ``orderEvents.webhookUrl: 'a' → 'b'``."""
    lines: list[str] = []
    for section, body in wanted.items():
        have = current.get(section) or {}
        for key, value in body.items():
            old = have.get(key)
            if key == "enabledEventNames" and isinstance(old, list) and sorted(old) == sorted(value):
                continue
            if old != value:
                if key == "enabledEventNames":
                    added = sorted(set(value) - set(old or []))
                    removed = sorted(set(old or []) - set(value))
                    lines.append(f"{section}.{key}: +{len(added)} -{len(removed)} ({len(value)} names)")
                else:
                    lines.append(f"{section}.{key}: {mask({key: old})[key]!r} → {mask({key: value})[key]!r}")  # type: ignore[index]
    return lines


class WebhookSettingsApi:
    """Reads and sets the company's webhook settings through the connector APIs."""

    def __init__(self, client: TradecloudClient, company_id: str) -> None:
        self._client = client
        company = quote(company_id, safe="")
        self._orders = f"/order-webhook-connector/company/{company}/settings"
        self._shipments = f"/shipment-webhook-connector/company/{company}/settings"

    async def current(self) -> dict[str, Section]:
        orders = await self._client.get_json(self._orders, "order webhook settings")
        shipment = await self._client.get_json(self._shipments, "shipment webhook settings")
        found: dict[str, Section] = {}
        for section in (ORDER_EVENTS, ORDER_DOCUMENTS_EVENTS):
            value = orders.get(section)
            if isinstance(value, dict):
                found[section] = value
        if shipment:
            found[SHIPMENT] = shipment
        return found

    async def apply(self, section: str, body: Section) -> None:
        path = self._shipments if section == SHIPMENT else f"{self._orders}/{section}"
        await self._client.post_json(path, body, f"{section} webhook settings")
