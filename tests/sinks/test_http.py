from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.http import HttpSink

from .conftest import ErpServer, TlsErp, make_event

pytestmark = pytest.mark.anyio


class TestDelivered:
    """2xx answers deliver the original body with the identifying headers."""

    async def test_body_and_headers(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok", headers={"X-Source": "tradecloud"})
        event = make_event()
        try:
            await sink.deliver(event)
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert got.method == "POST"
        assert got.path == "/ok"
        assert got.body == event.body
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-tcwebhook-event-id"] == event.event_id
        assert got.headers["x-tcwebhook-event-name"] == "OrderLinesAcceptedBySupplier"
        assert got.headers["x-tcwebhook-key"] == "order:3b0c2a0e"
        assert got.headers["x-tcwebhook-kind"] == "order"
        assert got.headers["x-source"] == "tradecloud"
        assert "authorization" not in got.headers

    async def test_xml_keeps_its_content_type(self, erp: ErpServer) -> None:
        body = b'<?xml version="1.0"?><r><eventName>OrderLinesAcceptedBySupplier</eventName></r>'
        event = make_event(content_type="application/xml; charset=utf-8", body=body, key=None)
        sink = HttpSink("erp", erp.base_url + "/ok")
        try:
            await sink.deliver(Event.from_stored(event))
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert got.body == body
        assert got.headers["content-type"] == "application/xml; charset=utf-8"
        assert "x-tcwebhook-key" not in got.headers

    async def test_non_ascii_header_values_are_percent_encoded(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok")
        try:
            await sink.deliver(make_event(key="order:Bestellung-ä\r\nX-Evil: 1"))
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert got.headers["x-tcwebhook-key"] == "order:Bestellung-%C3%A4%0D%0AX-Evil: 1"
        assert "x-evil" not in got.headers

    async def test_bearer_auth(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok", bearer_token="erp-token-123456")
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        assert erp.app.received[-1].headers["authorization"] == "Bearer erp-token-123456"

    async def test_basic_auth(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok", basic_username="tc", basic_password="pa55-word")
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        expected = "Basic " + base64.b64encode(b"tc:pa55-word").decode()
        assert erp.app.received[-1].headers["authorization"] == expected

    async def test_stalled_body_after_2xx_is_still_delivered(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/stalled-body", timeout=0.3)
        event = make_event()
        try:
            await sink.deliver(event)  # returns: the 2xx status line is the ERP's answer
        finally:
            await sink.close()
        got = erp.app.received[-1]
        assert (got.method, got.path, got.body) == ("POST", "/stalled-body", event.body)
        assert not erp.app.release.is_set()  # delivered while the ERP's body was still stalled

    async def test_connection_is_kept_alive(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", erp.base_url + "/ok")
        try:
            for seq in range(3):
                await sink.deliver(make_event(seq=seq))
        finally:
            await sink.close()
        assert len({r.client_port for r in erp.app.received[-3:]}) == 1


class TestPermanent:
    """Configured permanent status codes dead-letter the event at once."""

    @pytest.mark.parametrize("code", [400, 404, 409, 422])
    async def test_default_codes(self, erp: ErpServer, code: int) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/status/{code}")
        try:
            with pytest.raises(PermanentError, match=f"^HTTP {code}: erp says {code}$"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_custom_codes(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/status/410", permanent_codes=(410,))
        try:
            with pytest.raises(PermanentError):
                await sink.deliver(make_event())
        finally:
            await sink.close()
        retrying = HttpSink("erp", f"{erp.base_url}/status/400", permanent_codes=(410,))
        try:
            with pytest.raises(TransientError):
                await retrying.deliver(make_event())
        finally:
            await retrying.close()

    async def test_message_is_short(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/big/422")
        try:
            with pytest.raises(PermanentError) as info:
                await sink.deliver(make_event())
        finally:
            await sink.close()
        assert str(info.value) == "HTTP 422: " + "x" * 200

    async def test_secrets_never_in_message(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/echo-auth/400", basic_username="tc", basic_password="pa55-word")
        try:
            with pytest.raises(PermanentError) as info:
                await sink.deliver(make_event())
        finally:
            await sink.close()
        encoded = base64.b64encode(b"tc:pa55-word").decode()
        assert encoded not in str(info.value)
        assert str(info.value) == "HTTP 400: bad auth Basic ***"


@pytest.fixture
def refused_url() -> Iterator[str]:
    # Bound but not listening: the kernel refuses connections, and nobody else can take the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/ok"


class TestTransient:
    """Server errors, redirects, timeouts and unreachable hosts are retried."""

    @pytest.mark.parametrize("code", [500, 502, 503, 401, 429])
    async def test_status(self, erp: ErpServer, code: int) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/status/{code}")
        try:
            with pytest.raises(TransientError, match=f"^HTTP {code}: erp says {code}$"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_redirect_not_followed(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/redirect")
        before = len(erp.app.received)
        try:
            with pytest.raises(TransientError, match=r"302 redirect to https://erp\.example/new"):
                await sink.deliver(make_event())
        finally:
            await sink.close()
        assert len(erp.app.received) == before + 1

    async def test_timeout(self, erp: ErpServer) -> None:
        sink = HttpSink("erp", f"{erp.base_url}/slow", timeout=0.3)
        try:
            with pytest.raises(TransientError, match=r"no response within 0.3 s"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_connection_refused(self, refused_url: str) -> None:
        sink = HttpSink("erp", refused_url, bearer_token="erp-token-123456")
        try:
            with pytest.raises(TransientError, match=r"^cannot reach 127.0.0.1:\d+ \(") as info:
                await sink.deliver(make_event())
        finally:
            await sink.close()
        assert "erp-token" not in str(info.value)


class TestTls:
    """Server certificates are verified against the system store, or ca_bundle when given."""

    async def test_ca_bundle_verifies(self, tls_erp: TlsErp) -> None:
        sink = HttpSink("erp", tls_erp.server.base_url + "/ok", ca_bundle=tls_erp.ca_pem)
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        assert tls_erp.server.app.received[-1].body == make_event().body

    async def test_unknown_ca_fails(self, tls_erp: TlsErp) -> None:
        sink = HttpSink("erp", tls_erp.server.base_url + "/ok")
        try:
            with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_wrong_host_name_fails(self, tls_erp: TlsErp) -> None:
        # The certificate names only "localhost".
        url = tls_erp.server.base_url.replace("localhost", "127.0.0.1") + "/ok"
        sink = HttpSink("erp", url, ca_bundle=tls_erp.ca_pem)
        try:
            with pytest.raises(TransientError, match=r"CERTIFICATE_VERIFY_FAILED.*mismatch"):
                await sink.deliver(make_event())
        finally:
            await sink.close()

    async def test_verify_off(self, tls_erp: TlsErp) -> None:
        sink = HttpSink("erp", tls_erp.server.base_url + "/ok", verify=False)
        event = make_event(event_id="01JEVENT0000000000000000VF")
        try:
            await sink.deliver(event)
        finally:
            await sink.close()
        got = tls_erp.server.app.received[-1]
        assert (got.method, got.path, got.body) == ("POST", "/ok", event.body)
        assert got.headers["x-tcwebhook-event-id"] == event.event_id


class TestConfiguration:
    """Unusable settings fail at start-up with one sentence."""

    def test_bearer_and_basic(self) -> None:
        with pytest.raises(StartupError, match="either bearer_token or basic"):
            HttpSink("erp", "http://x", bearer_token="t", basic_username="u", basic_password="p")

    def test_basic_needs_both(self) -> None:
        with pytest.raises(StartupError, match="needs both"):
            HttpSink("erp", "http://x", basic_username="u")

    @pytest.mark.parametrize("name", ["Content-Type", "X-Tcwebhook-Event-Id", "host"])
    def test_reserved_header(self, name: str) -> None:
        with pytest.raises(StartupError, match="set by the sink itself"):
            HttpSink("erp", "http://x", headers={name: "v"})

    def test_authorization_header_only_without_auth(self) -> None:
        HttpSink("erp", "http://x", headers={"Authorization": "ApiKey abc"})
        with pytest.raises(StartupError):
            HttpSink("erp", "http://x", headers={"Authorization": "x"}, bearer_token="t")

    def test_bad_ca_bundle(self, tmp_path: Path) -> None:
        bad = tmp_path / "ca.pem"
        bad.write_text("not a certificate")
        with pytest.raises(StartupError, match=r"Sink 'erp': ca_bundle .* holds no usable PEM certificate"):
            HttpSink("erp", "https://x", ca_bundle=bad)

    def test_bad_url(self) -> None:
        with pytest.raises(StartupError, match="url"):
            HttpSink("erp", "ftp://x/y")
