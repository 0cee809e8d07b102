"""`tcwebhook serve` on PostgreSQL: two receivers on one database, and the database going away."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.support.bodies import order_body
from tests.support.inbox import inbox_events
from tests.support.polling import eventually
from tests.support.postgres import PgCluster, new_cluster
from tests.support.servers import RunningServer, ServerFactory


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of this test's own, to stop and start."""
    cluster = new_cluster()
    yield cluster
    cluster.destroy()


def post(client: httpx.Client, server: RunningServer, body: dict[str, object]) -> httpx.Response:
    return client.post(
        server.url_orders,
        content=json.dumps(body),
        headers={**server.bearer(), "content-type": "application/json"},
    )


class TestTwoReceivers:
    """Two `serve` processes on one database store a messageId once; the loser answers 200."""

    def test_same_message_at_both_at_once(self, server_factory: ServerFactory, pg_url: str) -> None:
        store = f'[store]\nurl = "{pg_url}"\n'
        one = server_factory.start("one", extra=store)
        two = server_factory.start("two", extra=store)
        bodies = [order_body() for _ in range(30)]
        codes: dict[int, list[int]] = {i: [] for i in range(len(bodies))}

        def send(server: RunningServer) -> None:
            with server.client() as client:
                for i, body in enumerate(bodies):
                    codes[i].append(post(client, server, body).status_code)

        threads = [threading.Thread(target=send, args=(s,)) for s in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(sorted(c) == [200, 202] for c in codes.values()), codes
        stored = [e.message_id for e in inbox_events(one)]
        assert sorted(stored) == sorted(b["meta"]["messageId"] for b in bodies)  # type: ignore[index]


class TestDatabaseTrouble:
    """PostgreSQL down: 503 with Retry-After (never 500), /healthz says so, and it recovers alone."""

    def test_down_then_back(self, server_factory: ServerFactory, own_cluster: PgCluster) -> None:
        url = own_cluster.url(own_cluster.create_database())
        server = server_factory.start(
            "pg", extra=f'[store]\nurl = "{url}"\nconnect_timeout = 2\nstatement_timeout = 3\n'
        )
        with server.client() as client:
            assert post(client, server, order_body()).status_code == 202
            own_cluster.stop()
            waiting = order_body()
            started = time.monotonic()
            refused = post(client, server, waiting)
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
            assert time.monotonic() - started < 10
            health = client.get(server.base_url + "/healthz")
            assert health.status_code == 503
            assert health.headers["retry-after"]
            own_cluster.start()
            # The sender resends until it hears 2xx, as Tradecloud does.
            def resent() -> bool:
                answer = post(client, server, waiting)
                assert answer.status_code in (202, 503), answer.text  # never a 4xx or 500 meanwhile
                return answer.status_code == 202

            eventually(resent, 30, interval=0.2, what="a 202 once PostgreSQL is back")
            assert client.get(server.base_url + "/healthz").status_code == 200
        assert server.proc.poll() is None
        assert '"status": 500' not in server.logs() and '"status":500' not in server.logs()
        stored = {e.message_id for e in inbox_events(server)}
        assert waiting["meta"]["messageId"] in stored  # type: ignore[index]
        assert "pg-secret" not in server.logs()
