"""Hostile text on its way to the operator: CLI tables and panels, and the console log format.

A trading partner chooses purchase order numbers, event names and bodies; anyone can choose a
request path. None of it may act on the operator's terminal (escape sequences) or break a Rich
table (``[/]`` is a markup error), in ``events list/show/dead`` and ``quarantine list/show``.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.reliability.conftest import order_event, read_events, read_quarantine, wait_until
from tests.support.servers import CLI, ServerFactory

pytestmark = pytest.mark.reliability

# Clear screen, set the window title, a colour, a bidi override and Rich markup (closing tag).
HOSTILE = "PO-[/]-[bold]x\x1b[2J\x1b]0;pwned\x07\x1b[31m\u202eevil\x9b"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "400", "TERM": "xterm", "PATH": "/usr/bin:/bin", "FORCE_COLOR": "1"},
        check=False,
    )


def _assert_inert(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "MarkupError" not in done.stderr
    shown = done.stdout
    # Rich colours its own output (FORCE_COLOR): only its SGR codes may carry an ESC byte.
    for control in RAW_CONTROLS:
        stripped = shown
        if control == "\x1b":
            import re

            stripped = re.sub(r"\x1b\[[0-9;]*m", "", shown)
        assert control not in stripped, (control, shown[:2000])
    assert "\\x1b[2J" in shown  # made visible, not dropped


class TestCliTables:
    """events list/show/dead and quarantine list/show print hostile values as inert text."""

    def test_events_and_quarantine(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("cli")
        body = order_event(str(uuid.uuid4()), 1)
        body["orderEvent"]["buyerOrder"]["purchaseOrderNumber"] = HOSTILE
        raw_body = b'{"eventName": "' + HOSTILE.encode() + b'", "orderEvent": {}}'
        with server.client() as client:
            r = client.post(server.url_orders, json=body, headers=server.bearer())
            assert r.status_code == 202, r.text
            event_id = r.json()["eventId"]
            r = client.post(
                server.url_orders,
                content=raw_body,
                headers={**server.bearer(), "content-type": "application/json"},
            )
            assert r.status_code == 400, r.text
        assert server.config_path is not None
        config = server.config_path
        assert [e.purchase_order_number for e in read_events(config)] == [HOSTILE]
        quarantined = read_quarantine(config)
        assert len(quarantined) == 1

        _assert_inert(_cli(config, "events", "list"))
        _assert_inert(_cli(config, "events", "show", event_id))
        listed = _cli(config, "quarantine", "list")
        assert listed.returncode == 0, listed.stderr
        shown = _cli(config, "quarantine", "show", quarantined[0].id)
        _assert_inert(shown)
        # --json stays exact: scripts get the value as stored.
        data = json.loads(_cli(config, "events", "show", event_id, "--json").stdout)
        assert data["purchase_order_number"] == HOSTILE


class TestConsoleLog:
    """The console log format (``tcwebhook dev``) shows escape bytes of a request path escaped."""

    def test_request_path_escaped(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("console", env={"TCWEBHOOK_LOGGING__FORMAT": "console"})
        with server.client() as client:
            r = client.get(server.base_url + "/%1B%5B2J%1B%5D0%3Bpwned%07/x", headers=server.bearer())
            assert r.status_code == 404
            r = client.get(server.url_orders + "/%1B%5B31m", headers=server.bearer())
            assert r.status_code == 400
        assert wait_until(lambda: server.logs().count("request") >= 2, 5)
        logs = server.logs()
        assert "\x1b" not in logs and "\x07" not in logs
        assert "\\x1b[2J" in logs
