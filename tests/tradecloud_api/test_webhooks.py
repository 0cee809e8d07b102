"""The webhook settings ``connect`` builds from the configuration, compares and masks."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tcwebhook.config import AuthSettings, BasicCredential, ConnectSettings, ServerSettings, Settings
from tcwebhook.errors import StartupError
from tcwebhook.tradecloud_api.webhooks import changes, desired, mask


def settings(**connect: object) -> Settings:
    return Settings(
        server=ServerSettings(public_hostname="hooks.example.com", port=443),
        auth=AuthSettings(basic=(BasicCredential(username="tc", password=SecretStr("basic-password-123")),)),
        connect=ConnectSettings.model_validate(connect),
    )


class TestDesired:
    """URL, credentials, format, delivery mode and event names from the config."""

    def test_basic_txml_single_delivery_and_chosen_names(self) -> None:
        wanted = desired(
            settings(
                format="txml",
                single_delivery=True,
                shipments=False,
                enabled_event_names=["OrderIssuedByBuyer", "OrderDocumentsAttachedBySupplier", "SomethingNew"],
            )
        )
        assert set(wanted) == {"orderEvents", "orderDocumentsEvents"}
        orders = wanted["orderEvents"]
        assert orders["webhookUrl"] == "https://hooks.example.com/tradecloud/orders"
        assert orders["basicAuthCredentials"] == {"username": "tc", "password": "basic-password-123"}
        assert orders["format"] == "tXML" and orders["singleDeliveryPerOrderLine"] is True
        assert orders["enabledEventNames"] == ["OrderIssuedByBuyer", "SomethingNew"]
        assert wanted["orderDocumentsEvents"]["enabledEventNames"] == ["OrderDocumentsAttachedBySupplier"]
        assert "singleDeliveryPerOrderLine" not in wanted["orderDocumentsEvents"]

    def test_item_details_subscribed_by_the_name_the_settings_api_takes(self) -> None:
        """By default every documented name, the item-details event under its long name only."""
        names = desired(settings())["orderEvents"]["enabledEventNames"]
        assert "OrderLinesItemDetailsChangedBySupplier" in names
        assert "OrderLinesItemDetailsChanged" not in names
        assert not set(names) & {"OrderSynced", "OrderCustomLabelsUpdatedByBuyer", "OrderCustomLabelsUpdatedBySupplier"}
        chosen = desired(settings(enabled_event_names=["OrderLinesItemDetailsChanged"]))["orderEvents"]
        assert chosen["enabledEventNames"] == ["OrderLinesItemDetailsChangedBySupplier"]

    def test_opt_in_names_go_to_the_order_webhook(self) -> None:
        opt_in = ["OrderCustomLabelsUpdatedByBuyer", "OrderCustomLabelsUpdatedBySupplier", "OrderSynced"]
        wanted = desired(settings(order_documents=True, enabled_event_names=[*opt_in, "ShipmentIssuedBySupplier"]))
        assert wanted["orderEvents"]["enabledEventNames"] == sorted(opt_in)
        assert wanted["orderDocumentsEvents"]["enabledEventNames"] == []
        assert wanted["shipment"]["enabledEventNames"] == ["ShipmentIssuedBySupplier"]

    def test_needs_public_hostname_and_static_credentials(self) -> None:
        with pytest.raises(StartupError, match="public_hostname"):
            desired(Settings(auth=AuthSettings(bearer_tokens=(SecretStr("t" * 32),))))
        with pytest.raises(StartupError, match="static credential"):
            desired(Settings(server=ServerSettings(public_hostname="h.example")))


class TestDisplay:
    """Secrets never appear in full in --show or --dry-run output."""

    def test_mask_and_changes(self) -> None:
        token = "s3cret-token-0123456789abcdef"
        current = {"orderEvents": {"bearerToken": token, "basicAuthCredentials": {"username": "u", "password": "p"}}}
        assert mask(current) == {
            "orderEvents": {"bearerToken": "s3cr…", "basicAuthCredentials": {"username": "u", "password": "********"}}
        }
        lines = changes(current, {"orderEvents": {"bearerToken": "n" * 40, "webhookUrl": "https://h/x"}})
        assert lines == ["orderEvents.bearerToken: 's3cr…' → 'nnnn…'", "orderEvents.webhookUrl: None → 'https://h/x'"]
        assert all(token not in line for line in lines)
