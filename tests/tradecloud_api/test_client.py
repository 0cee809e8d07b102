"""The Tradecloud API client against the fake API over real TLS on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import structlog
from tests.ids import ID_SAMPLES, SDK_ORDER_ID
from tests.support.servers import refused_port

from tcwebhook.backoff import Backoff
from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.identifiers import api_segment
from tcwebhook.errors import StartupError, TradecloudApiError, TradecloudNotFound
from tcwebhook.tradecloud_api import TradecloudClient
from tcwebhook.tradecloud_api.client import retry_after_seconds

from .conftest import FAST
from .fake_api import PASSWORD, FakeTradecloud

pytestmark = pytest.mark.anyio

ORDER = {"id": "ord-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"}, "lines": [{"id": "l1"}]}


class Clock:
    """A wall clock the test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def client(settings: TradecloudSettings, **kwargs: object) -> TradecloudClient:
    return TradecloudClient(settings, backoff=FAST, **kwargs)  # type: ignore[arg-type]


class TestLogin:
    """Login with Basic, bearer use, and a clear refusal for bad credentials."""

    async def test_login_then_bearer(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        async with client(tc_settings) as tc:
            assert await tc.get_order("ord-1") == ORDER
            assert await tc.get_order("ord-1") == ORDER
        [login] = fake_api.calls_to("/v2/authentication/login")
        assert login.headers["authorization"].startswith("Basic ")
        orders = fake_api.calls_to("/v2/order/")
        assert [c.headers["authorization"] for c in orders] == [f"Bearer {fake_api.issued_access[0]}"] * 2

    async def test_bad_password_is_a_clear_error(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.password = "something-else"
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudApiError, match=r"login rejected: check \[tradecloud\]") as info:
                await tc.get_order("ord-1")
        assert PASSWORD not in str(info.value)
        assert len(fake_api.calls_to("/v2/authentication/login")) == 1  # a 401 is not retried

    async def test_missing_credentials_fail_at_start(self, tc_settings: TradecloudSettings) -> None:
        with pytest.raises(StartupError, match="username/password"):
            TradecloudClient(tc_settings.model_copy(update={"password": None}))

    async def test_unusable_ca_bundle_fails_at_start(self, tc_settings: TradecloudSettings, tmp_path: Path) -> None:
        bad = tmp_path / "ca.pem"
        bad.write_text("not a certificate")
        with pytest.raises(StartupError, match="ca_bundle"):
            TradecloudClient(tc_settings.model_copy(update={"ca_bundle": bad}))

    async def test_untrusted_server_is_refused(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        settings = tc_settings.model_copy(update={"ca_bundle": None, "max_retries": 1})
        async with client(settings) as tc:
            with pytest.raises(TradecloudApiError, match="ConnectError after 2 attempts"):
                await tc.get_order("ord-1")
        assert fake_api.calls_to("/v2/") == []


class TestTokenLifecycle:
    """Proactive refresh, re-login on 401, logout on close."""

    async def test_refresh_after_interval_sends_only_refresh_token(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        clock = Clock()
        async with client(tc_settings, clock=clock) as tc:
            await tc.get_order("ord-1")
            clock.now += tc_settings.refresh_interval + 1
            await tc.get_order("ord-1")
            assert tc.tokens.refreshes == 1 and tc.tokens.logins == 1
        [refresh] = fake_api.calls_to("/v2/authentication/refresh")
        assert refresh.headers["refresh-token"] == fake_api.issued_refresh[0]
        assert "authorization" not in refresh.headers
        orders = fake_api.calls_to("/v2/order/")
        assert orders[1].headers["authorization"] == f"Bearer {fake_api.issued_access[1]}"
        [logout] = fake_api.calls_to("/v2/authentication/logout")
        assert logout.headers["refresh-token"] == fake_api.issued_refresh[1]
        assert "authorization" not in logout.headers and logout.status == 200
        assert fake_api.issued_refresh[1] not in fake_api.refresh_tokens  # really logged out

    async def test_refresh_shortly_before_access_expiry(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.access_ttl = 300.0  # shorter than the 9-minute interval
        clock = Clock()
        async with client(tc_settings, clock=clock) as tc:
            await tc.get_order("ord-1")
            clock.now += 250  # within the last tenth of the lifetime... not yet
            await tc.get_order("ord-1")
            assert tc.tokens.refreshes == 0
            clock.now += 25  # 25 s before exp: inside the 30 s margin
            await tc.get_order("ord-1")
            assert tc.tokens.refreshes == 1

    async def test_rejected_refresh_falls_back_to_login(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        clock = Clock()
        async with client(tc_settings, clock=clock) as tc:
            await tc.get_order("ord-1")
            fake_api.refresh_tokens.clear()  # refresh token expired or used elsewhere
            clock.now += tc_settings.refresh_interval + 1
            assert await tc.get_order("ord-1") == ORDER
            assert tc.tokens.logins == 2
        assert [c.status for c in fake_api.calls_to("/v2/authentication/refresh")] == [401]

    async def test_expired_refresh_token_means_login(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.refresh_ttl = 100.0
        clock = Clock()
        async with client(tc_settings, clock=clock) as tc:
            await tc.get_order("ord-1")
            clock.now += tc_settings.refresh_interval + 1
            assert await tc.get_order("ord-1") == ORDER
            assert (tc.tokens.logins, tc.tokens.refreshes) == (2, 0)
        assert fake_api.calls_to("/v2/authentication/refresh") == []

    async def test_failed_refresh_keeps_a_valid_token(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        clock = Clock()
        async with client(tc_settings, clock=clock) as tc:
            await tc.get_order("ord-1")
            fake_api.fail("/v2/authentication/refresh", 503)
            clock.now += tc_settings.refresh_interval + 1
            assert await tc.get_order("ord-1") == ORDER  # old token still good: no wait, no login
            assert tc.tokens.logins == 1
            await tc.get_order("ord-1")  # the retry of the refresh waits a while
            assert tc.tokens.refreshes == 0
            clock.now += 31
            await tc.get_order("ord-1")
            assert tc.tokens.refreshes == 1

    async def test_401_mid_session_relogs_in_and_retries_once(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        async with client(tc_settings) as tc:
            await tc.get_order("ord-1")
            fake_api.revoke_access_tokens()
            assert await tc.get_order("ord-1") == ORDER
            assert tc.tokens.logins == 2
        paths = [(c.method, c.path, c.status) for c in fake_api.calls]
        assert paths == [
            ("GET", "/v2/authentication/login", 200),
            ("GET", "/v2/order/ord-1", 200),
            ("GET", "/v2/order/ord-1", 401),
            ("POST", "/v2/authentication/logout", 200),
            ("GET", "/v2/authentication/login", 200),
            ("GET", "/v2/order/ord-1", 200),
            ("POST", "/v2/authentication/logout", 200),
        ]

    async def test_expired_token_on_concurrent_calls_means_one_relogin(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        async with client(tc_settings) as tc:
            await tc.get_order("ord-1")
            fake_api.expire_access_tokens()
            results = await asyncio.gather(*(tc.get_order("ord-1") for _ in range(8)))
            assert results == [ORDER] * 8
            assert tc.tokens.logins == 2

    async def test_persistent_401_is_an_error(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.fail("/v2/order/", 401, times=2)
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudApiError, match="401 even after a fresh login"):
                await tc.get_order("ord-1")


class TestRetries:
    """Outages are retried with back-off; the final answer decides."""

    async def test_503_burst_recovers(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 503, times=3)
        async with client(tc_settings) as tc:
            assert await tc.get_order("ord-1") == ORDER
        assert [c.status for c in fake_api.calls_to("/v2/order/")] == [503, 503, 503, 200]

    async def test_login_outage_recovers(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/authentication/login", 502, times=2)
        async with client(tc_settings) as tc:
            assert await tc.get_order("ord-1") == ORDER

    async def test_outage_longer_than_retries_is_an_error(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.fail("/v2/shipment/", 503, times=10)
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudApiError, match="HTTP 503 after 4 attempts") as info:
                await tc.get_shipment("s-1")
        assert not isinstance(info.value, TradecloudNotFound)
        assert len(fake_api.calls_to("/v2/shipment/")) == 4

    async def test_retry_after_is_honoured_within_the_cap(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 429, times=1, **{"Retry-After": "3600"})
        started = time.monotonic()
        async with client(tc_settings) as tc:
            assert await tc.get_order("ord-1") == ORDER
        assert time.monotonic() - started < 60  # capped by the back-off maximum, not the hour asked for

    async def test_no_wait_exceeds_the_cap(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        """Jitter and Retry-After both stay under the cap (jitter used to be added after it)."""
        fake_api.add_order(ORDER)
        fake_api.fail("/v2/order/", 503, times=3, **{"Retry-After": "3600"})
        fake_api.fail("/v2/shipment/", 503, times=3)
        jittery = Backoff(initial=0.04, multiplier=2.0, cap=0.05, jitter=1.0)
        with structlog.testing.capture_logs() as logs:
            async with TradecloudClient(tc_settings, backoff=jittery) as tc:
                assert await tc.get_order("ord-1") == ORDER
                with pytest.raises(TradecloudNotFound):
                    await tc.get_shipment("s-1")
        delays = [e["delay"] for e in logs if e["event"] == "tradecloud_retry"]
        assert len(delays) == 6 and max(delays) <= 0.05
        assert delays[:3] == [0.05] * 3  # Retry-After, honoured up to the cap

    async def test_slow_answer_times_out_and_is_retried(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_order(ORDER)
        fake_api.slow("/v2/order/", 1.5)
        settings = tc_settings.model_copy(update={"timeout": 0.5})
        async with client(settings) as tc:
            assert await tc.get_order("ord-1") == ORDER

    async def test_unreachable_api_is_an_error(self, tc_settings: TradecloudSettings) -> None:
        with refused_port() as port:
            settings = tc_settings.model_copy(update={"api_base": f"https://127.0.0.1:{port}/v2", "max_retries": 2})
            async with client(settings) as tc:
                with pytest.raises(TradecloudApiError, match="ConnectError after 3 attempts"):
                    await tc.get_order("ord-1")

    async def test_404_is_not_found_without_retry(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudNotFound, match="order not found"):
                await tc.get_order("nope")
        assert [c.status for c in fake_api.calls_to("/v2/order/")] == [404]

    @pytest.mark.parametrize("bad", ["", "\n", "a\x00b", "a\x7fb", "x" * 201])
    async def test_ids_that_cannot_name_an_object(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, bad: str
    ) -> None:
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudNotFound):
                await tc.get_shipment(bad)
        assert fake_api.calls_to("/v2/shipment") == []

    @pytest.mark.parametrize("object_id", ID_SAMPLES)
    async def test_any_printable_id_reaches_the_api_unchanged(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, object_id: str
    ) -> None:
        """Order, shipment and document ids of any printable characters: one percent-encoded segment."""
        fake_api.add_order({"id": object_id, "lines": []})
        fake_api.add_shipment({"id": object_id})
        fake_api.add_document(object_id, "a.pdf", b"%PDF", "application/pdf")
        async with client(tc_settings) as tc:
            assert (await tc.get_order(object_id))["id"] == object_id
            assert (await tc.get_shipment(object_id))["id"] == object_id
            assert (await tc.get_document_metadata(object_id)).filename == "a.pdf"
            assert await tc.download_document(object_id) == b"%PDF"
            await tc.resend_order(object_id)
            await tc.resend_shipment(object_id)
        segment = api_segment(object_id)
        assert segment == (quote(object_id, safe="") if object_id != ".." else "%2E%2E")
        api = ("/v2/order", "/v2/shipment", "/v2/object-storage")
        # (a call of an earlier test may still arrive: only this id's calls are compared)
        mine = [c for c in fake_api.calls if c.path.startswith(api) and f"/{segment}" in c.raw_path]
        assert [c.raw_path for c in mine] == [
            f"/v2/order/{segment}",
            f"/v2/shipment/{segment}",
            f"/v2/object-storage/document/{segment}/metadata",
            f"/v2/object-storage/document/{segment}/metadata",  # the download: metadata, then storage
            f"/v2/order/{segment}/buyer/resend",
            f"/v2/shipment/{segment}/resend",
        ]
        assert all(c.status == 200 for c in mine)

    async def test_resend_sends_an_empty_json_object(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        """POST /order/{id}/buyer/resend carries ``{}`` as application/json, as Tradecloud's SDK does."""
        fake_api.add_order({"id": SDK_ORDER_ID, "lines": []})
        async with client(tc_settings) as tc:
            await tc.resend_order(SDK_ORDER_ID)
        [call] = fake_api.calls_to("/v2/order/", "POST")
        assert call.status == 200
        assert call.headers["content-type"] == "application/json"
        assert call.body == b"{}"
        assert call.raw_path.endswith("-PO-05-%2351388860/buyer/resend")

    async def test_ids_are_sent_as_one_path_segment(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        shipment = {"id": "1f61e695-7545-5670-9384-58e8b1f263e6-SN:12+3"}
        fake_api.add_shipment(shipment)
        async with client(tc_settings) as tc:
            assert await tc.get_shipment(shipment["id"]) == shipment


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 0.0), ("-1", None), ("nan", None), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date already past: retry now
     ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0)],
)
def test_retry_after_header(header: str, seconds: float | None) -> None:
    """Retry-After as non-negative seconds or as an HTTP date."""
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": header}), now=lambda: now) == seconds
    assert retry_after_seconds(httpx.Response(503)) is None


class TestSecrets:
    """Neither password nor tokens appear in logs or errors."""

    async def test_nothing_secret_is_logged(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_order(ORDER)
        fake_api.add_document("doc-1", "a.pdf", b"%PDF", "application/pdf")
        clock = Clock()
        errors: list[str] = []
        with structlog.testing.capture_logs() as logs:
            async with client(tc_settings, clock=clock) as tc:
                await tc.get_order("ord-1")
                fake_api.fail("/v2/order/", 503, times=2)
                clock.now += tc_settings.refresh_interval + 1
                await tc.get_order("ord-1")
                fake_api.revoke_access_tokens()
                await tc.download_document("doc-1")
                fake_api.fail("/v2/shipment/", 500, times=10)
                with pytest.raises(TradecloudApiError) as info:
                    await tc.get_shipment("s")
                errors.append(str(info.value))
                errors.append(repr(tc.tokens._pair))
        text = repr(logs) + repr(errors)
        assert logs, "expected some log lines"
        secrets = [PASSWORD, *fake_api.issued_access, *fake_api.issued_refresh]
        assert len(secrets) >= 5
        for secret in secrets:
            assert secret not in text
        assert "X-Amz-Signature" not in text
