"""The console's order page (from the order book), reached from an event and from search, and the
per-sink preview of an event."""

from __future__ import annotations

import pytest
from tests.orderbook.sequences import ORDER_ID, PO, SEQUENCE, new_event

from .conftest import VIEWER, ClientFactory, Seeded

pytestmark = pytest.mark.anyio


class TestOrderPage:
    """Header, lines with schedule and price, status, the timeline; linked from events and search."""

    async def test_reached_from_the_event_and_search(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        ids = [(await seeded.inbox.store(new_event(b))).event_id for b in SEQUENCE]
        client, _ = await client_factory.logged_in(VIEWER)
        event_page = await client.get(f"/events/{ids[1]}")
        assert event_page.status_code == 200
        assert f'href="/orders/{ORDER_ID}"' in event_page.text
        search = await client.get("/events", params={"q": PO})
        assert f'href="/orders/{ORDER_ID}"' in search.text
        page = await client.get(f"/orders/{ORDER_ID}")
        assert page.status_code == 200
        text = page.text
        assert PO in text and "Confirmed" in text and "Rejected" in text
        assert "2026-07-08" in text and "1234.5678" in text  # the moved date, the exact price
        for event_id in ids:
            assert f'href="/events/{event_id}"' in text
        assert (await client.get("/orders/nope")).status_code == 404

    async def test_preview_per_sink(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        event_id = (await seeded.inbox.store(new_event(SEQUENCE[0]))).event_id
        client, _ = await client_factory.logged_in(VIEWER)
        event_page = await client.get(f"/events/{event_id}")
        assert f'href="/events/{event_id}/preview/erp"' in event_page.text
        preview = await client.get(f"/events/{event_id}/preview/erp")
        assert preview.status_code == 200 and "OrderIssuedByBuyer" in preview.text
        assert (await client.get(f"/events/{event_id}/preview/other")).status_code == 404
