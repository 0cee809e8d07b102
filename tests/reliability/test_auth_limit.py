"""Failed authentication is rate-limited per client address: 429 with Retry-After, never for good credentials."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from tests.reliability.clients import order_body, post, request_from
from tests.reliability.conftest import wait_until
from tests.support.servers import RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

LIMIT = 5
WINDOW = 3.0


def _valid() -> bytes:
    return post(order_body(f"limit-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())))


def _wrong() -> bytes:
    return post(order_body("limit-x", str(uuid.uuid4())), auth="Bearer wrong-token-0123456789")


def _header(data: bytes, name: bytes) -> bytes | None:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _auth_failed_lines(server: RunningServer, peer: str) -> list[dict[str, object]]:
    lines = []
    for raw in server.logs().splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("event") == "auth_failed" and entry.get("peer") == peer:
            lines.append(entry)
    return lines


class TestAuthFailureLimit:
    """Past [auth] failure_limit failures in failure_window seconds: 429 + Retry-After for that address only."""

    def test_limit(self, server_factory: ServerFactory) -> None:
        server = server_factory.start(
            "authlimit",
            env={
                "TCWEBHOOK_AUTH__FAILURE_LIMIT": str(LIMIT),
                "TCWEBHOOK_AUTH__FAILURE_WINDOW": str(WINDOW),
                "TCWEBHOOK_AUTH__FAILURE_LOG_WINDOW": str(WINDOW),
            },
        )
        port, ca = server.port, server.ca_path
        started = time.monotonic()
        statuses = [request_from(port, ca, _wrong()).status for _ in range(LIMIT)]
        assert statuses == [401] * LIMIT
        limited = request_from(port, ca, _wrong())
        assert limited.status == 429, limited
        retry_after = _header(limited.data, b"retry-after")
        assert retry_after is not None and 1 <= int(retry_after) <= WINDOW
        assert json.loads(limited.data.split(b"\r\n\r\n", 1)[1])["error"] == "too_many_failures"
        # Correct credentials from the limited address are never refused.
        assert request_from(port, ca, _valid()).status == 202
        assert request_from(port, ca, _wrong()).status == 429
        # Another address is not affected.
        assert request_from(port, ca, _wrong(), source="127.0.0.2").status == 401
        # One log line per address and window, as before the limit existed.
        assert len(_auth_failed_lines(server, "127.0.0.1")) == 1
        # After the window (it began at the first failure, a little after ``started``): 401 again.
        time.sleep(max(0.0, started + WINDOW - time.monotonic()))
        assert wait_until(lambda: request_from(port, ca, _wrong()).status == 401, 5, interval=0.3)
        assert len(_auth_failed_lines(server, "127.0.0.1")) == 2

    def test_metric(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("authmetric", env={"TCWEBHOOK_AUTH__FAILURE_LIMIT": "2"})
        for _ in range(4):
            request_from(server.port, server.ca_path, _wrong())
        with server.client() as client:
            text = client.get(server.base_url + "/metrics", headers=server.bearer()).text
        assert "tcwebhook_auth_rate_limited_total 2.0" in text
        assert "tcwebhook_auth_failures_total 2.0" in text
