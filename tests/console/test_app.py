"""The console in-process: sessions, CSRF, roles, pages and actions on a real SQLite inbox."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from tcwebhook.contract.drift import Finding
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox.base import AttemptResult, DeliveryStatus, EventFilter, NewEvent

from .conftest import OPERATOR, VIEWER, ClientFactory, Seeded, csrf_of, login, order_event

pytestmark = pytest.mark.anyio


class TestLogin:
    """The login form, the session cookie, logout, and the throttle on failed logins."""

    async def test_pages_need_a_session(self, client_factory: ClientFactory) -> None:
        client = client_factory.new()
        for path in ("/", "/events", "/dead", "/quarantine"):
            r = await client.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/login"

    async def test_form_fields_and_headers(self, client_factory: ClientFactory) -> None:
        r = await client_factory.new().get("/login")
        assert 'name="username"' in r.text and 'name="password"' in r.text
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert "<script" not in r.text

    async def test_session_cookie_flags(self, client_factory: ClientFactory) -> None:
        client = client_factory.new()
        r = await login(client, *OPERATOR)
        assert r.status_code == 303
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "tcwebhook_session=" in v)
        flags = cookie.lower()
        assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags

    async def test_wrong_password_is_logged_and_throttled(self, client_factory: ClientFactory) -> None:
        client = client_factory.new()
        with capture_logs() as logs:
            for _ in range(5):
                r = await login(client, OPERATOR[0], "wrong")
                assert r.status_code == 401
            r = await login(client, *OPERATOR)  # even the right password waits now
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        failed = [e for e in logs if e["event"] == "console_login_failed"]
        assert len(failed) == 5 and failed[0]["username"] == OPERATOR[0]
        assert all("wrong" not in str(e) for e in logs)
        assert any(e["event"] == "console_login_throttled" for e in logs)

    async def test_login_without_form_token_is_refused(self, client_factory: ClientFactory) -> None:
        client = client_factory.new()
        r = await client.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1]})
        assert r.status_code == 403

    async def test_logout_ends_the_session(self, client_factory: ClientFactory) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        cookie = client.cookies.get("tcwebhook_session")
        r = await client.post("/logout", data={"csrf_token": csrf})
        assert r.status_code == 303
        other = client_factory.new()
        other.cookies.set("tcwebhook_session", cookie, domain="console.test")
        assert (await other.get("/")).status_code == 303

    async def test_idle_session_expires(self, client_factory: ClientFactory, tmp_path: Path) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        console = client_factory.app.app.state.console  # type: ignore[attr-defined]
        idle = console.settings.console.session_idle_timeout + 1
        with sqlite3.connect(tmp_path / "inbox.db") as conn:  # the session was last used long ago
            assert conn.execute("UPDATE console_sessions SET last_seen = last_seen - ?", (idle,)).rowcount == 1
        assert (await client.get("/")).status_code == 303


class TestPages:
    """Overview, events with filters and keyset pages, one event, dead letters, quarantine."""

    async def test_overview(self, client_factory: ClientFactory) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        r = await client.get("/")
        assert r.status_code == 200
        for word in ("pending", "delivered", "dead", "superseded", "quarantined", "erp", "<svg", "days left", "up"):
            assert word in r.text, word

    async def test_search_by_po_number_and_message_id(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        r = await client.get("/events", params={"q": "PO-200"})
        assert seeded.dead_id in r.text and seeded.delivered_id not in r.text
        r = await client.get("/events", params={"q": "00000000-0000-4000-8000-000000000001"})
        assert seeded.delivered_id in r.text and seeded.dead_id not in r.text
        r = await client.get("/events", params={"q": "order-3"})
        assert seeded.pending_id in r.text

    async def test_filters(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        r = await client.get("/events", params={"status": "dead"})
        assert seeded.dead_id in r.text and seeded.pending_id not in r.text
        r = await client.get("/events", params={"sink": "erp", "status": "pending"})
        assert seeded.pending_id in r.text and seeded.dead_id not in r.text
        r = await client.get("/events", params={"kind": "shipment"})
        assert "No events." in r.text
        r = await client.get("/events", params={"since": "1h", "event": "Order*"})
        assert seeded.dead_id in r.text
        r = await client.get("/events", params={"until": "1h"})
        assert "No events." in r.text
        r = await client.get("/events", params={"since": "yesterday-ish"})
        assert "neither ISO 8601" in r.text

    async def test_keyset_pages(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        stored = await seeded.inbox.get_event(seeded.pending_id)
        r = await client.get("/events", params={"before": stored.seq})
        assert seeded.pending_id not in r.text and seeded.delivered_id in r.text

    async def test_event_page(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        r = await client.get(f"/events/{seeded.dead_id}")
        assert r.status_code == 200
        assert "PO-200" in r.text and "ERP said 422" in r.text and "permanent" in r.text
        assert "&#34;purchaseOrderNumber&#34;: &#34;PO-200&#34;" in r.text  # pretty-printed, escaped
        assert "[redacted]" in r.text
        body = await client.get(f"/events/{seeded.dead_id}/body")
        stored = await seeded.inbox.get_event(seeded.dead_id)
        assert body.content == stored.body and "attachment" in body.headers["content-disposition"]
        assert (await client.get("/events/no-such-id")).status_code == 404

    async def test_event_by_prefix_and_styled_404(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        ids = [seeded.delivered_id, seeded.dead_id, seeded.pending_id]
        dead = seeded.dead_id
        prefix = next(dead[:n] for n in range(8, 37) if sum(i.startswith(dead[:n]) for i in ids) == 1)
        r = await client.get(f"/events/{prefix}")
        assert r.status_code == 303 and r.headers["location"] == f"/events/{seeded.dead_id}"
        assert (await client.get(f"/events/{seeded.dead_id.upper()}")).headers["location"].endswith(seeded.dead_id)
        missing = await client.get("/no/such/page")
        assert missing.status_code == 404 and 'class="problem"' in missing.text and "<nav>" in missing.text

    async def test_dead_letters_and_quarantine(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(VIEWER)
        r = await client.get("/dead", params={"sink": "erp"})
        assert seeded.dead_id in r.text and "ERP said 422" in r.text
        r = await client.get("/quarantine")
        assert seeded.quarantine_id in r.text and "no eventName" in r.text
        r = await client.get(f"/quarantine/{seeded.quarantine_id}")
        assert "&#34;nope&#34;: 1" in r.text

    async def test_contract_drift(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        """What the models did not know, with its events linked; sender-chosen text escaped."""
        client, _ = await client_factory.logged_in(VIEWER)
        assert "Nothing unknown was seen." in (await client.get("/drift")).text
        event = replace(order_event(90, "PO-900"), drift=(Finding("field", "orderEvent.<b>x</b>"),))
        stored = await seeded.inbox.store(event)
        r = await client.get("/drift", params={"days": "1"})
        assert r.status_code == 200
        assert "unknown field" in r.text and "orderEvent.&lt;b&gt;x&lt;/b&gt;" in r.text
        assert f'href="/events/{stored.event_id}"' in r.text
        assert (await client.get("/drift", params={"days": "x"})).status_code == 200

    async def test_unrecognised_event(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        """An event of kind unknown, held: listed under its status, explained on its page, and read
        again by the Replay button (its body an order this version knows)."""
        body = orjson.dumps({"eventName": "OrderIssuedByBuyer", "meta": {"messageId": "m-u"},
                             "orderEvent": {"orderId": "o-u", "buyerOrder": {"purchaseOrderNumber": "PO-U"}}})
        stored = await seeded.inbox.store(NewEvent(kind=EventKind.UNKNOWN, event_name="OrderIssuedByBuyer",
                                                   dedupe_key="m-u", content_type="application/json", body=body,
                                                   book=None))
        (claim,) = [c for c in await seeded.inbox.claim_due(owner="t", sinks=["erp"], limit=10, lease=30,
                                                             stale_kinds=frozenset())
                    if c.event.event_id == stored.event_id]
        await seeded.inbox.finish(claim, AttemptResult(DeliveryStatus.UNRECOGNISED, None, time.time()))
        client, csrf = await client_factory.logged_in(OPERATOR)
        listed = await client.get("/events", params={"status": "unrecognised"})
        assert stored.event_id in listed.text and seeded.dead_id not in listed.text
        page = await client.get(f"/events/{stored.event_id}")
        assert "kind unknown" in page.text and "pill status-unrecognised" in page.text
        overview = await client.get("/")
        assert "status-unrecognised" in overview.text
        r = await client.post("/events/replay", data={"csrf_token": csrf, "event_id": stored.event_id})
        assert r.status_code == 303
        event = await seeded.inbox.get_event(stored.event_id)
        assert (event.kind, event.order_id, event.status) == (EventKind.ORDER, "o-u", "pending")


class TestActions:
    """Replay and reprocess: operators only, POST with the session's CSRF token."""

    async def test_viewer_sees_no_buttons_and_gets_403(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(VIEWER)
        for path in ("/events", f"/events/{seeded.dead_id}", "/dead?sink=erp", f"/quarantine/{seeded.quarantine_id}"):
            text = (await client.get(path)).text
            assert ">Replay<" not in text and ">Reprocess<" not in text, path
        r = await client.post("/events/replay", data={"csrf_token": csrf, "event_id": seeded.dead_id})
        assert r.status_code == 403
        r = await client.post("/dead/replay", data={"csrf_token": csrf, "sink": "erp"})
        assert r.status_code == 403
        r = await client.post(f"/quarantine/{seeded.quarantine_id}/reprocess", data={"csrf_token": csrf})
        assert r.status_code == 403
        assert (await seeded.inbox.get_event(seeded.dead_id)).status == "dead"

    async def test_csrf_token_required(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, _ = await client_factory.logged_in(OPERATOR)
        r = await client.post("/events/replay", data={"event_id": seeded.dead_id})
        assert r.status_code == 403
        r = await client.post("/events/replay", data={"event_id": seeded.dead_id, "csrf_token": "forged"})
        assert r.status_code == 403
        assert (await seeded.inbox.get_event(seeded.dead_id)).status == "dead"

    async def test_cross_origin_post_refused(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        r = await client.post(
            "/events/replay",
            data={"event_id": seeded.dead_id, "csrf_token": csrf},
            headers={"origin": "https://evil.example"},
        )
        assert r.status_code == 403

    async def test_replay_one(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        assert ">Replay<" in (await client.get(f"/events/{seeded.dead_id}")).text
        r = await client.post(
            "/events/replay",
            data={"event_id": seeded.dead_id, "csrf_token": csrf, "back": f"/events/{seeded.dead_id}"},
            headers={"origin": "https://console.test"},
        )
        assert r.status_code == 303 and r.headers["location"].startswith(f"/events/{seeded.dead_id}?done=")
        assert (await seeded.inbox.get_event(seeded.dead_id)).status == "pending"
        assert seeded.requeued

    async def test_replay_all_dead_of_a_sink(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        r = await client.post("/dead/replay", data={"sink": "erp", "csrf_token": csrf})
        assert r.status_code == 303
        dead = await seeded.inbox.list_events(EventFilter(status="dead"))
        assert dead == []

    async def test_back_never_leaves_the_console(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        r = await client.post(
            "/events/replay", data={"event_id": seeded.dead_id, "csrf_token": csrf, "back": "//evil.example/"}
        )
        assert r.headers["location"].startswith("/events?")

    async def test_reprocess_still_refused(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        client, csrf = await client_factory.logged_in(OPERATOR)
        assert ">Reprocess<" in (await client.get(f"/quarantine/{seeded.quarantine_id}")).text
        r = await client.post(f"/quarantine/{seeded.quarantine_id}/reprocess", data={"csrf_token": csrf})
        assert r.status_code == 303 and "done=still_refused" in r.headers["location"]

    async def test_reprocess_stores_a_fixed_body(self, client_factory: ClientFactory, seeded: Seeded) -> None:
        body = b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"q-1","lines":[]}}'
        qid = await seeded.inbox.quarantine(
            route="orders", content_type="application/json", body=body, headers={}, reason="old bug", status_code=400
        )
        client, csrf = await client_factory.logged_in(OPERATOR)
        r = await client.post(f"/quarantine/{qid}/reprocess", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith("/events/")
        page = await client.get(r.headers["location"])
        assert "q-1" in page.text


def test_csrf_helper() -> None:
    assert csrf_of('<input type="hidden" name="csrf_token" value="abc">') == "abc"
