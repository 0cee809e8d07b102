"""What a sender learns from the answers: no ERP internals in sync mode, whole-string GET ids."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.reliability.conftest import FAST_DELIVERY, attempts_of, order_event, read_events
from tests.support.servers import RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

# What an ERP's error page tends to contain: hosts, users, tables.
ERP_INTERNALS = "ORA-01017 on db01.corp.internal as user erp_admin, table PO_HEADERS"


class _ChattyErp:
    """A loopback ERP endpoint that refuses (400) or fails (500) with its internals in the body."""

    def __init__(self) -> None:
        self.status = 400
        erp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = ERP_INTERNALS.encode()
                self.send_response(erp.status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/erp"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chatty_erp() -> Iterator[_ChattyErp]:
    erp = _ChattyErp()
    yield erp
    erp.close()


class TestSyncModeDetail:
    """``mode = "sync"`` answers with a fixed detail; the ERP's error stays in the inbox and logs."""

    def test_erp_error_text_not_sent(self, server_factory: ServerFactory, chatty_erp: _ChattyErp) -> None:
        extra = (
            FAST_DELIVERY
            + 'mode = "sync"\n'
            + f'[[sinks]]\nname = "erp"\ntype = "http"\nurl = "{chatty_erp.url}"\ntimeout = 2\n'
        )
        server = server_factory.start("sync", extra=extra)
        ids = []
        with server.client() as client:
            for status, expected in ((400, 400), (500, 503)):
                chatty_erp.status = status
                r = client.post(server.url_orders, json=order_event(str(uuid.uuid4()), 1), headers=server.bearer())
                assert r.status_code == expected, r.text
                assert "db01" not in r.text and "erp_admin" not in r.text and "ORA-" not in r.text
                assert r.json()["detail"]
                ids.append(r.json()["eventId"])
        assert server.config_path is not None
        attempts = attempts_of(server.config_path, ids)
        for event_id in ids:
            assert ERP_INTERNALS in (attempts[event_id][0].error or "")
        assert ERP_INTERNALS in server.logs()


class TestGetTriggerIds:
    """A GET trigger id must be a whole identifier: a trailing newline is refused, nothing stored."""

    @pytest.mark.parametrize(
        "suffix",
        ["/abc%0A", "/abc%0D%0A", "?orderId=abc%0A", "?orderId=abc%0A%0A", "/%0Aabc", "/abc%00"],
    )
    def test_trailing_newline_refused(self, live_server: RunningServer, suffix: str) -> None:
        assert live_server.config_path is not None
        before = len(read_events(live_server.config_path))
        with live_server.client() as client:
            r = client.get(live_server.url_orders + suffix, headers=live_server.bearer())
        assert r.status_code == 400, r.text
        assert len(read_events(live_server.config_path)) == before

    def test_plain_id_still_accepted(self, live_server: RunningServer) -> None:
        with live_server.client() as client:
            r = client.get(live_server.url_orders + "/abc-123", headers=live_server.bearer())
        assert r.status_code == 202, r.text
