"""The request budget under real load: a `serve` enriching a burst of webhooks while its background
reconciliation polls page after page; the fake Tradecloud API never sees more than 10 requests in
any second."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import ServerFactory

from .fake_api import PASSWORD, USERNAME, FakeServer, FakeTradecloud
from .test_rate import most_in_one_second

ORDERS = 30


def extra(fake_server: FakeServer, outbox: Path) -> str:
    return (
        f'[tradecloud]\napi_base = "{fake_server.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
        f'ca_bundle = "{fake_server.ca_path}"\ntimeout = 10\nmax_retries = 2\nmax_requests_per_second = 10\n'
        '[reconcile]\ninterval = 1\naction = "report"\npage_size = 1\ngrace = \"2h\"\nsince = \"1h\"\n'
        "[delivery]\npoll_interval = 0.05\nconcurrency = 16\n"
        f'[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "{outbox}"\nenrich = true\n'
    )


class TestBudgetUnderLoad:
    """Enrichment and reconciliation share one budget of 10 requests per second."""

    def test_concurrent_enrich_and_reconcile(
        self, server_factory: ServerFactory, fake_server: FakeServer, fake_api: FakeTradecloud, tmp_path: Path
    ) -> None:
        orders = [fake_api.update_order({"id": f"ord-{n}", "lines": [{"id": "l1"}]}) for n in range(ORDERS)]
        outbox = tmp_path / "outbox"
        server = server_factory.start("rate", extra=extra(fake_server, outbox))

        def post(order: dict[str, object]) -> int:
            body = fake_api.order_webhook(order)
            body["meta"]["messageId"] = str(uuid.uuid4())
            with server.client() as c:
                return c.post(server.url_orders, json=body, headers=server.bearer()).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, orders)) == {202}
        deadline = time.monotonic() + 60
        while len(list(outbox.glob("*.full-order.json"))) < ORDERS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(outbox.glob("*.full-order.json"))) == ORDERS

        enrich = fake_api.calls_to("/v2/order/", "GET")
        polls = fake_api.calls_to("/v2/order-search/poll")
        assert len(enrich) == ORDERS
        first, last = enrich[0].at, enrich[-1].at
        during = [c for c in polls if first <= c.at <= last]
        assert during, "reconciliation polled while the webhooks were enriched"
        api = [c.at for c in fake_api.calls if c.path.startswith("/v2/")]
        busiest = most_in_one_second(api)
        print(f"API requests: {len(api)}, polls: {len(polls)} ({len(during)} while enriching), "
              f"busiest second: {busiest}")
        assert busiest <= 10
        assert busiest >= 8  # the budget was used, not idle
        assert all(c.status != 429 for c in fake_api.calls)
