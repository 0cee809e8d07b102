"""The console in a real browser: Debian's headless Chromium driven by Selenium over HTTPS.

One ``tcwebhook serve`` with the console on, an HTTP sink to a loopback ERP that refuses (422)
until it "recovers", and events posted to the webhook. The screenshots of the overview and an
event page are written to docs/ (``docs/console.md`` shows them).
"""

from __future__ import annotations

import http.server
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from tests.support.bodies import shipment_body
from tests.support.polling import NotInTime, eventually
from tests.support.servers import RunningServer, ServerFactory

from .conftest import OPERATOR, VIEWER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"
# The screenshots go to docs/ only when asked (TCWEBHOOK_SCREENSHOTS=docs): a test run leaves
# the tracked files alone.
SCREENSHOTS_ENV = "TCWEBHOOK_SCREENSHOTS"
WAIT = 20.0

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="chromium and chromium-driver are needed"
)


@dataclass
class Erp:
    """A loopback ERP endpoint: 422 (refused for good) for bodies naming a ``refused`` string."""

    refused: set[str] = field(default_factory=set)
    received: list[bytes] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> str:
        erp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = 422 if any(r.encode() in body for r in list(erp.refused)) else 200
                if status == 200:
                    erp.received.append(body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/erp"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Stack:
    server: RunningServer
    erp: Erp
    console_url: str


@pytest.fixture(scope="module")
def stack(test_ca: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    erp = Erp()
    url = erp.start()
    extra = (
        "[delivery]\npoll_interval = 0.1\ninitial_delay = 0.1\nmax_delay = 0.5\n"
        f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{url}"\ntimeout = 5\n'
        '[console]\nenabled = true\nport = 0\n'
        f'[[console.users]]\nusername = "{OPERATOR[0]}"\npassword = "{OPERATOR[1]}"\nrole = "operator"\n'
        f'[[console.users]]\nusername = "{VIEWER[0]}"\npassword = "{VIEWER[1]}"\nrole = "viewer"\n'
    )
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("console"))  # type: ignore[arg-type]
    directory = factory.base / "server"
    config, webhook_port = factory.write_config(directory, extra)
    # A certificate with a realistic lifetime, so the overview's "days left" reads like production.
    leaf = test_ca.issue_cert(  # type: ignore[attr-defined]
        "localhost", "127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=75)
    )
    leaf.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(directory / "key.pem"))
    (directory / "key.pem").chmod(0o600)
    server = factory.start_with(config, webhook_port, directory)
    try:
        yield Stack(server, erp, f"https://localhost:{server.console_port()}")
    finally:
        factory.stop_all()
        erp.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    return DOCS if os.environ.get(SCREENSHOTS_ENV) == "docs" else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    # The server's certificate comes from the test CA: the browser is told to accept it.
    options.accept_insecure_certs = True
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def post_order(server: RunningServer, po: str) -> str:
    order_id = f"order-{uuid.uuid4()}"
    body = {
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {"orderId": order_id, "buyerOrder": {"purchaseOrderNumber": po}, "lines": []},
        "meta": {"messageId": str(uuid.uuid4())},
    }
    with server.client() as client:
        headers = {**server.bearer(), "content-type": "application/json"}
        r = client.post(server.url_orders, content=orjson.dumps(body), headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["eventId"])


def post_shipments(server: RunningServer, count: int) -> None:
    with server.client() as client:
        for _ in range(count):
            r = client.post(server.url_shipments, json=shipment_body(), headers=server.bearer())
            assert r.status_code == 202, r.text


def post_invalid(server: RunningServer) -> None:
    """A body without eventName: refused with 400 and kept in the quarantine."""
    with server.client() as client:
        r = client.post(server.url_orders, json={"orderEvent": {}}, headers=server.bearer())
    assert r.status_code == 400, r.text


def status_of(server: RunningServer, event_id: str) -> str:
    with sqlite3.connect(server.db_path) as conn:
        row = conn.execute("SELECT status FROM events WHERE event_id = ?", (event_id,)).fetchone()
    return str(row[0]) if row else ""


def wait_for(predicate: object, timeout: float = WAIT) -> bool:
    try:
        return bool(eventually(predicate, timeout, interval=0.1))  # type: ignore[arg-type]
    except NotInTime:
        return False


def log_in(driver: object, stack: Stack, who: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By

    d = driver
    d.delete_all_cookies()  # type: ignore[attr-defined]
    d.get(stack.console_url + "/login")  # type: ignore[attr-defined]
    d.find_element(By.NAME, "username").send_keys(who[0])  # type: ignore[attr-defined]
    d.find_element(By.NAME, "password").send_keys(who[1])  # type: ignore[attr-defined]
    d.find_element(By.CSS_SELECTOR, "form.login button").click()  # type: ignore[attr-defined]
    assert wait_for(lambda: "Overview" in d.title), d.page_source  # type: ignore[attr-defined]


def cookies_of(driver: object) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}  # type: ignore[attr-defined]


def csrf_in(driver: object) -> str:
    from selenium.webdriver.common.by import By

    field_ = driver.find_element(By.CSS_SELECTOR, "form.who input[name=csrf_token]")  # type: ignore[attr-defined]
    return str(field_.get_attribute("value"))


class TestConsoleInBrowser:
    """An operator finds a dead event by its PO number, reads it, replays it; a viewer cannot."""

    def test_operator_finds_and_replays_a_dead_event(self, stack: Stack, browser: object, shots: Path) -> None:
        from selenium.webdriver.common.by import By

        d = browser
        po = f"PO-{uuid.uuid4().hex[:8].upper()}"
        stack.erp.refused.add(po)  # the ERP refuses this purchase order (422) until it is fixed
        for i in range(8):
            post_order(stack.server, f"PO-2025-{1000 + i}")
        post_shipments(stack.server, 3)
        event_id = post_order(stack.server, po)
        post_invalid(stack.server)
        assert wait_for(lambda: status_of(stack.server, event_id) == "dead"), status_of(stack.server, event_id)

        log_in(d, stack, OPERATOR)
        d.save_screenshot(str(shots / "console-overview.png"))  # type: ignore[attr-defined]

        d.get(stack.console_url + "/events")  # type: ignore[attr-defined]
        search = d.find_element(By.NAME, "q")  # type: ignore[attr-defined]
        search.send_keys(po)
        search.submit()
        # The list before the search holds the event too: wait for the searched page itself.
        assert wait_for(lambda: "q=" in d.current_url and event_id in d.page_source)  # type: ignore[attr-defined]
        rows = d.find_elements(By.CSS_SELECTOR, "table.events tbody tr")  # type: ignore[attr-defined]
        assert len(rows) == 1
        d.find_element(By.LINK_TEXT, event_id).click()  # type: ignore[attr-defined]
        assert wait_for(lambda: "Deliveries" in d.page_source)  # type: ignore[attr-defined]
        body = d.find_element(By.CSS_SELECTOR, "pre.body").text  # type: ignore[attr-defined]
        assert f'"purchaseOrderNumber": "{po}"' in body
        timeline = d.find_element(By.CSS_SELECTOR, "ol.timeline").text  # type: ignore[attr-defined]
        assert "permanent" in timeline and "422" in timeline
        d.set_window_size(1360, 1700)  # type: ignore[attr-defined]
        d.save_screenshot(str(shots / "console-event.png"))  # type: ignore[attr-defined]
        d.set_window_size(1360, 1000)  # type: ignore[attr-defined]

        stack.erp.refused.clear()  # the ERP was fixed
        d.find_element(By.XPATH, "//button[normalize-space()='Replay']").click()  # type: ignore[attr-defined]
        assert wait_for(lambda: "Replayed" in d.page_source)  # type: ignore[attr-defined]

        def delivered() -> bool:
            d.refresh()  # type: ignore[attr-defined]
            pill = d.find_element(By.CSS_SELECTOR, "h1 .pill").text  # type: ignore[attr-defined]
            return bool(pill == "delivered")

        assert wait_for(delivered), d.page_source  # type: ignore[attr-defined]
        assert any(po.encode() in b for b in stack.erp.received)

        # A POST without the CSRF token is refused, even with the operator's session.
        cookies = cookies_of(d)
        with httpx.Client(verify=stack.server.ssl_context(), cookies=cookies, timeout=10) as client:
            r = client.post(stack.console_url + "/events/replay", data={"event_id": event_id})
        assert r.status_code == 403

    def test_viewer_has_no_replay_button_and_a_forged_post_is_refused(self, stack: Stack, browser: object) -> None:
        from selenium.webdriver.common.by import By

        d = browser
        event_id = post_order(stack.server, f"PO-{uuid.uuid4().hex[:8].upper()}")
        log_in(d, stack, VIEWER)
        d.get(f"{stack.console_url}/events/{event_id}")  # type: ignore[attr-defined]
        assert wait_for(lambda: "Deliveries" in d.page_source)  # type: ignore[attr-defined]
        assert d.find_elements(By.XPATH, "//button[normalize-space()='Replay']") == []  # type: ignore[attr-defined]
        d.get(stack.console_url + "/events")  # type: ignore[attr-defined]
        assert d.find_elements(By.XPATH, "//button[normalize-space()='Replay']") == []  # type: ignore[attr-defined]
        # The viewer's own browser session, with its valid CSRF token, POSTs a replay anyway.
        cookies, csrf = cookies_of(d), csrf_in(d)
        with httpx.Client(verify=stack.server.ssl_context(), cookies=cookies, timeout=10) as client:
            r = client.post(stack.console_url + "/events/replay", data={"event_id": event_id, "csrf_token": csrf})
        assert r.status_code == 403
        assert "viewer" in r.text


class TestConsoleLayout:
    """The chart has axes and bars at any count, lists show per-sink state and totals, Replay stays in
    reach past 50 rows, the dead-letter page lists events, 404s are styled, 420 px screens fit."""

    def test_chart_lists_and_small_screen(self, stack: Stack, browser: object, shots: Path) -> None:
        from selenium.webdriver.common.by import By

        d = browser
        post_shipments(stack.server, 55)
        po = f"PO-{uuid.uuid4().hex[:8].upper()}"
        stack.erp.refused.add(po)
        dead_id = post_order(stack.server, po)
        assert wait_for(lambda: status_of(stack.server, dead_id) == "dead")
        log_in(d, stack, OPERATOR)

        # The chart: a count axis with labels, hour marks, and every bar at least 2 units tall and wide.
        labels = [t.text for t in d.find_elements(By.CSS_SELECTOR, ".chart text.tick")]  # type: ignore[attr-defined]
        assert "0" in labels and len(labels) >= 3, labels
        bars = d.find_elements(By.CSS_SELECTOR, ".chart rect.bar")  # type: ignore[attr-defined]
        assert bars
        for bar in bars:
            assert float(bar.get_attribute("height")) >= 2 and float(bar.get_attribute("width")) >= 2
            assert bar.size["height"] >= 1 and bar.size["width"] >= 1
        assert d.find_elements(By.CSS_SELECTOR, ".chart line.grid")  # type: ignore[attr-defined]
        d.save_screenshot(str(shots / "console-overview.png"))  # type: ignore[attr-defined]

        # Auto-refresh is a link that adds a meta refresh, and another that takes it away.
        d.find_element(By.LINK_TEXT, "auto-refresh").click()  # type: ignore[attr-defined]
        assert wait_for(lambda: "refresh=30" in d.current_url)  # type: ignore[attr-defined]
        metas = d.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]")  # type: ignore[attr-defined]
        assert [m.get_attribute("content") for m in metas] == ["30"]
        d.find_element(By.LINK_TEXT, "stop").click()  # type: ignore[attr-defined]
        assert wait_for(lambda: not d.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]"))  # type: ignore[attr-defined]

        # Events: a total, a per-sink column, and the Replay button visible at the bottom of the list.
        d.get(stack.console_url + "/events")  # type: ignore[attr-defined]
        heading = d.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
        assert "matching" in heading
        total = int(heading.split()[1].replace(",", "").rstrip("+"))
        assert total >= 56
        assert d.find_elements(By.CSS_SELECTOR, "td.sinks .pill")  # type: ignore[attr-defined]
        assert "erp dead" in d.page_source or "erp delivered" in d.page_source  # type: ignore[attr-defined]
        boxes = d.find_elements(By.CSS_SELECTOR, "input[name=event_id]")  # type: ignore[attr-defined]
        assert len(boxes) == 50
        d.execute_script("arguments[0].scrollIntoView({block: 'end'})", boxes[-1])  # type: ignore[attr-defined]
        replay = d.find_element(By.XPATH, "//button[normalize-space()='Replay']")  # type: ignore[attr-defined]
        visible = d.execute_script(  # type: ignore[attr-defined]
            "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight;", replay
        )
        assert visible
        d.save_screenshot(str(shots / "console-events.png"))  # type: ignore[attr-defined]

        # Dead letters: the events themselves, without choosing a sink first.
        d.get(stack.console_url + "/dead")  # type: ignore[attr-defined]
        assert wait_for(lambda: dead_id in d.page_source)  # type: ignore[attr-defined]
        assert "Events with a dead delivery" in d.page_source  # type: ignore[attr-defined]

        # A styled 404 with the navigation.
        d.get(stack.console_url + "/no/such/page")  # type: ignore[attr-defined]
        assert d.find_element(By.CSS_SELECTOR, ".problem .code").text == "404"  # type: ignore[attr-defined]
        assert d.find_elements(By.CSS_SELECTOR, "header nav a")  # type: ignore[attr-defined]
        assert "/static/console.css" in d.page_source  # type: ignore[attr-defined]
        d.save_screenshot(str(shots / "console-404.png"))  # type: ignore[attr-defined]

        # 420 px wide: the header and its navigation wrap instead of overflowing.
        d.set_window_size(420, 900)  # type: ignore[attr-defined]
        try:
            d.get(stack.console_url + "/")  # type: ignore[attr-defined]
            overflow = d.execute_script(  # type: ignore[attr-defined]
                "return document.querySelector('header').scrollWidth - document.documentElement.clientWidth;"
            )
            assert overflow <= 0
            page_overflow = d.execute_script(  # type: ignore[attr-defined]
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
            )
            assert page_overflow <= 0  # wide tables scroll inside their box, the page does not
            for link in d.find_elements(By.CSS_SELECTOR, "header nav a"):  # type: ignore[attr-defined]
                assert link.is_displayed()
                right = link.location["x"] + link.size["width"]
                assert right <= d.execute_script("return document.documentElement.clientWidth;")  # type: ignore[attr-defined]
            d.save_screenshot(str(shots / "console-narrow.png"))  # type: ignore[attr-defined]
        finally:
            d.set_window_size(1360, 1000)  # type: ignore[attr-defined]
        stack.erp.refused.clear()
