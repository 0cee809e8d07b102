"""Allow-listed senders and the PROXY protocol: decided on the client's address before the TLS handshake.

Loopback stands in for the internet: the server listens on 127.0.0.1 and the test connects from
other 127.0.0.0/8 source addresses, or writes PROXY protocol headers itself as a balancer would.
"""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from collections.abc import Callable

import pytest
from tests.reliability.clients import (
    closed_before_tls,
    order_body,
    post,
    proxy_v1,
    proxy_v2,
    request_from,
    tcp_from,
    tls_from,
)
from tests.reliability.conftest import wait_until
from tests.support.polling import eventually
from tests.support.servers import RunningServer, ServerFactory

from tcwebhook.config import load_settings
from tcwebhook.errors import StartupError
from tcwebhook.transport.addresses import PRESETS, V2_SIGNATURE, client_address, contains, parse_networks

pytestmark = pytest.mark.reliability


def _valid() -> bytes:
    return post(order_body(f"adm-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())))


def _metrics(server: RunningServer, source: str, proxy_header: bytes = b"") -> str:
    data = request_from(
        server.port,
        server.ca_path,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + server.token.encode() + b"\r\n"
        b"Connection: close\r\n\r\n",
        source=source,
        proxy_header=proxy_header,
    ).data
    return data.decode("latin-1")


def _refused(text: str, reason: str) -> float:
    found = re.search(rf'^tcwebhook_connections_refused_total{{reason="{reason}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _wait_ready(server: RunningServer, source: str, proxy_header: bytes = b"") -> None:
    def healthy() -> bool:
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited:\n{server.logs()}")
        try:
            answer = request_from(
                server.port,
                server.ca_path,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                source=source,
                proxy_header=proxy_header,
                timeout=2,
            )
        except OSError:
            return False
        return answer.status == 200

    eventually(healthy, 30, interval=0.1, what=f"/healthz from {source} (log: {server.log_path})")


def _request_peers(server: RunningServer) -> list[str]:
    peers = []
    for raw in server.logs().splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("event") == "request":
            peers.append(str(entry.get("peer")))
    return peers


class TestAllowFrom:
    """[server] allow_from: other addresses are closed before the handshake and counted."""

    def test_allow_list(self, server_factory: ServerFactory) -> None:
        env = {"TCWEBHOOK_SERVER__ALLOW_FROM": '["127.0.0.2/32"]'}
        server = server_factory.start("allow", env=env, wait=False)
        _wait_ready(server, "127.0.0.2")
        closed, seconds = closed_before_tls(server.port, server.ca_path, "127.0.0.1")
        assert closed and seconds < 1.0, seconds
        assert closed_before_tls(server.port, server.ca_path, "127.0.0.3")[0]
        assert request_from(server.port, server.ca_path, _valid(), source="127.0.0.2").status == 202
        assert _refused(_metrics(server, "127.0.0.2"), "allow_from") == 2

    def test_presets_and_bad_entries(self) -> None:
        entries = ["tradecloud-production", "tradecloud-acceptance", "10.0.0.0/8"]
        networks = parse_networks(entries, "allow_from", presets=True)
        for address in ("35.204.224.107", "34.90.20.233", "35.204.36.162", "10.1.2.3", "::ffff:35.204.36.162"):
            assert contains(networks, client_address(address)), address
        assert not contains(networks, client_address("35.204.224.108"))
        assert set(PRESETS) == {"tradecloud-production", "tradecloud-acceptance"}
        with pytest.raises(StartupError, match="allow_from"):
            load_settings(None, **{"server.allow_from": ["tradecloud-prod"]})
        with pytest.raises(StartupError, match="host bits"):
            load_settings(None, **{"server.allow_from": ["10.0.0.1/8"]})
        with pytest.raises(StartupError, match="trusted_proxies"):
            load_settings(None, **{"server.proxy_protocol": True})
        acme = {"server.allow_from": ["tradecloud-production"], "tls.acme": True, "server.public_hostname": "x.example"}
        with pytest.raises(StartupError, match="http-01"):
            load_settings(None, **acme)  # the CA's tls-alpn-01 validation would be closed before TLS
        assert load_settings(None, **acme, **{"tls.acme_challenge": "http-01"}).server.allow_from

    def test_check_config_refuses_a_bad_entry(self, server_factory: ServerFactory) -> None:
        server = server_factory.start("badallow", env={"TCWEBHOOK_SERVER__ALLOW_FROM": '["nonsense"]'}, wait=False)
        assert server.proc.wait(30) == 3
        assert "allow_from" in server.logs()


PROXY_ENV = {
    "TCWEBHOOK_SERVER__PROXY_PROTOCOL": "true",
    "TCWEBHOOK_SERVER__TRUSTED_PROXIES": '["127.0.0.1/32"]',
    "TCWEBHOOK_SERVER__ALLOW_FROM": '["203.0.113.0/24"]',
    "TCWEBHOOK_SERVER__MAX_CONNECTIONS_PER_IP": "2",
    "TCWEBHOOK_SERVER__TLS_HANDSHAKE_TIMEOUT": "2",
    "TCWEBHOOK_AUTH__FAILURE_LIMIT": "2",
}
HEALTH_CHECK = proxy_v2("127.0.0.1", local=True)  # the balancer's own connection


@pytest.fixture
def proxied(server_factory: ServerFactory) -> RunningServer:
    server = server_factory.start("proxied", env=PROXY_ENV, wait=False)
    _wait_ready(server, "127.0.0.1", HEALTH_CHECK)
    return server


class TestProxyProtocol:
    """Behind a balancer: v1/v2 headers give the sender, seen by the allow-list, the limits and the logs."""

    @pytest.mark.parametrize("header", [proxy_v1, proxy_v2], ids=["v1", "v2"])
    def test_sender_from_header(self, proxied: RunningServer, header: Callable[[str], bytes]) -> None:
        answer = request_from(proxied.port, proxied.ca_path, _valid(), proxy_header=header("203.0.113.7"))
        assert answer.status == 202, answer
        assert wait_until(lambda: "203.0.113.7" in _request_peers(proxied), 5), _request_peers(proxied)

    def test_ipv6_sender_outside_the_allow_list(self, proxied: RunningServer) -> None:
        assert closed_before_tls(proxied.port, proxied.ca_path, proxy_header=proxy_v2("2001:db8::1", "2001:db8::2"))[0]

    def test_allow_list_sees_the_sender(self, proxied: RunningServer) -> None:
        assert closed_before_tls(proxied.port, proxied.ca_path, proxy_header=proxy_v1("198.51.100.1"))[0]
        assert closed_before_tls(proxied.port, proxied.ca_path, proxy_header=proxy_v2("198.51.100.1"))[0]

    def test_untrusted_peer_closed(self, proxied: RunningServer) -> None:
        # A valid header, but from an address that is not a trusted proxy: anyone could write one.
        closed = closed_before_tls(proxied.port, proxied.ca_path, "127.0.0.2", proxy_v1("203.0.113.7"))
        assert closed[0], proxied.logs()[-3000:]

    @pytest.mark.parametrize(
        "header",
        [b"", b"PROXY TCP4 203.0.113.7\r\n", b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n", b"GET / HTTP/1.1\r\n\r\n"],
        ids=["none", "truncated", "bad-address", "http"],
    )
    def test_bad_headers_closed(self, proxied: RunningServer, header: bytes) -> None:
        assert closed_before_tls(proxied.port, proxied.ca_path, proxy_header=header)[0]

    def test_header_that_never_ends_times_out(self, proxied: RunningServer) -> None:
        with tcp_from(proxied.port) as sock:
            started = time.monotonic()
            sock.sendall(b"PROXY TCP4 203.0")  # and then nothing: no end of line, no ClientHello
            sock.settimeout(10)
            assert sock.recv(100) == b""
            seconds = time.monotonic() - started
        assert 1.5 < seconds < 4, seconds  # [server] tls_handshake_timeout = 2 covers the header too

    @pytest.mark.parametrize(
        "header",
        [
            b"PROXY UNKNOWN\r\n",
            HEALTH_CHECK,
            V2_SIGNATURE + bytes([0x21, 0x00]) + struct.pack("!H", 0),  # PROXY, unspecified family
        ],
        ids=["v1-unknown", "v2-local", "v2-unspec"],
    )
    def test_sender_unknown_is_a_health_check_only(self, proxied: RunningServer, header: bytes) -> None:
        """No sender named: the allow-list cannot check it, so only /healthz is answered."""
        health = request_from(proxied.port, proxied.ca_path, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                              proxy_header=header)
        assert health.status == 200, health
        webhook = request_from(proxied.port, proxied.ca_path, _valid(), proxy_header=header)
        assert webhook.status == 403, webhook
        metrics = request_from(
            proxied.port, proxied.ca_path,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + proxied.token.encode() + b"\r\n\r\n",
            proxy_header=header,
        )
        assert metrics.status == 403, metrics

    def test_limits_see_the_sender(self, proxied: RunningServer) -> None:
        first = proxy_v1("203.0.113.9")
        held = [tls_from(proxied.port, proxied.ca_path, proxy_header=first) for _ in range(2)]
        try:
            assert closed_before_tls(proxied.port, proxied.ca_path, proxy_header=first)[0]  # per address
            other = request_from(proxied.port, proxied.ca_path, _valid(), proxy_header=proxy_v1("203.0.113.10"))
            assert other.status == 202
        finally:
            for sock in held:
                sock.close()
        wrong = post(order_body("x", str(uuid.uuid4())), auth="Bearer wrong-token-0123456789")
        statuses = [
            request_from(proxied.port, proxied.ca_path, wrong, proxy_header=proxy_v2("203.0.113.11")).status
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        assert request_from(proxied.port, proxied.ca_path, wrong, proxy_header=proxy_v2("203.0.113.12")).status == 401
        text = _metrics(proxied, "127.0.0.1", proxy_v1("203.0.113.13"))
        assert _refused(text, "per_ip") == 1
