"""Hostile and broken requests, sent as raw bytes over TLS (an HTTP client would tidy them up).

Every case gets its documented answer (README "Answers"; slow bodies 503; slow headers and plain
HTTP: the connection closes with no HTTP answer; TLS 1.0/1.1: the handshake fails), the server
stays up, its memory stays bounded, and no event is stored for any of them.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from tests.reliability.conftest import RawAnswer, read_answer, read_events, rss_mb, send_raw, tls_connect
from tests.support.servers import TOKEN, RunningServer, ServerFactory

pytestmark = pytest.mark.reliability

REQUEST_TIMEOUT = 2.0  # [server] request_timeout of the server under test: slow cases stay short
MAX_BODY = 1024 * 1024  # [server] max_body_bytes
# Bounded, not small: a 1 MiB body of 300,000 invalid array items costs ~100 MiB while it is
# validated (see docs/reliability.md); what must not happen is growth without bound.
RSS_LIMIT_MB = 256.0
RSS_CREEP_LIMIT_MB = 30.0

ORDERS = "/tradecloud/orders"
SHIPMENTS = "/tradecloud/shipments"
AUTH = f"Bearer {TOKEN}"
CLOSED = "closed"  # no HTTP answer at all, the connection is closed
HANDSHAKE_FAILS = "handshake fails"


def request(
    method: str = "POST",
    path: str = ORDERS,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    auth: str | None = AUTH,
    extra: list[str] | None = None,
    length: int | None = None,
    close: bool = True,
) -> bytes:
    """An HTTP/1.1 request as bytes; anything may be broken on purpose by the caller."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if method in ("POST", "PUT", "PATCH") or body:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += extra or []
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def xml(body: bytes, content_type: str = "application/xml") -> bytes:
    return request(body=body, content_type=content_type)


def order_json(**override: object) -> bytes:
    data: dict[str, object] = {
        "eventName": "OrderIssuedByBuyer",
        "orderEvent": {"orderId": "hostile-1", "buyerOrder": {"purchaseOrderNumber": "PO-1"}, "lines": []},
        "meta": {"messageId": "7d3c1a52-0000-4000-8000-000000000001"},
    }
    data.update(override)
    return json.dumps(data).encode()


VALID = order_json()
XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>'
BILLION_LAUGHS = XML_HEAD + (
    b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b"<!ENTITY lol%d \"%s\">" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    )
    + b"]><OrderEvent><eventName>&lol9;</eventName></OrderEvent>"
)
XXE_FILE = XML_HEAD + (
    b'<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<OrderEvent><eventName>&xxe;</eventName><orderEvent><orderId>x</orderId></orderEvent></OrderEvent>"
)
XXE_PARAMETER = XML_HEAD + (
    b'<!DOCTYPE e [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]><OrderEvent/>'
)
XML_EXTERNAL_DTD = XML_HEAD + b'<!DOCTYPE e SYSTEM "file:///etc/passwd"><OrderEvent/>'
QUADRATIC = XML_HEAD + (
    b'<!DOCTYPE e [<!ENTITY a "' + b"A" * 50_000 + b'">]><OrderEvent><eventName>'
    + b"&a;" * 5000 + b"</eventName></OrderEvent>"
)

POISON_JSON = (
    b'{"eventName":"OrderIssuedByBuyer","orderEvent":{"orderId":"poison-1","lines":[{"id":"1",'
    b'"deliverySchedule":[{"position":"1","quantity":%s}]}]},"meta":{"messageId":"7d3c1a52-0000-4000-8000-0000000000p1"}}'
)
POISON_XML = XML_HEAD + (
    b"<R><eventName>OrderIssuedByBuyer</eventName><orderEvent><orderId>poison-2</orderId><line><id>1</id>"
    b"<deliveryScheduleLine><position>1</position><quantity>%s</quantity></deliveryScheduleLine></line>"
    b"</orderEvent></R>"
)

ATTRIBUTES_XML = XML_HEAD + (
    b"<R><eventName>OrderIssuedByBuyer</eventName><orderEvent><orderId %s>attributes-1</orderId>"
    b"<buyerOrder><purchaseOrderNumber>PO-1</purchaseOrderNumber></buyerOrder>%s</orderEvent>"
    b"<meta><messageId>7d3c1a52-0000-4000-8000-0000000000a1</messageId></meta></R>"
)
# 1,700 lines of 60 attributes each: 102,000 in all, none over the per-element cap.
ATTRIBUTE_LINES = (
    b"<line " + b" ".join(b'%c%c=""' % (97 + i // 26, 97 + i % 26) for i in range(60)) + b"><id>1</id></line>"
) * 1_700


@dataclass(frozen=True)
class Case:
    """One hostile request and what the documentation says must happen."""

    id: str
    expect: frozenset[int | str]
    chunks: tuple[bytes, ...] = ()
    pause: float = 0.0  # seconds between chunks (slow clients)
    tls: str = "default"  # "default", "none" (plain TCP), "tls1.0", "tls1.1", "cbc-only"
    timeout: float = REQUEST_TIMEOUT + 4
    idle_connections: int = 0


def case(id: str, expect: int | str | set[int | str], *chunks: bytes, **kw: object) -> Case:
    wanted = frozenset(expect) if isinstance(expect, set) else frozenset({expect})
    return Case(id, wanted, tuple(chunks), **kw)  # type: ignore[arg-type]


CORPUS: tuple[Case, ...] = (
    # -- authentication ----------------------------------------------------------------------
    case("auth-missing", 401, request(body=VALID, auth=None)),
    case("auth-wrong-token", 401, request(body=VALID, auth="Bearer not-the-token")),
    case("auth-empty-bearer", 401, request(body=VALID, auth="Bearer ")),
    case("auth-scheme-only", 401, request(body=VALID, auth="Bearer")),
    case("auth-unknown-scheme", 401, request(body=VALID, auth=f"Token {TOKEN}")),
    case("auth-basic-not-base64", 401, request(body=VALID, auth="Basic %%%not-base64%%%")),
    case("auth-basic-no-colon", 401, request(body=VALID, auth="Basic " + base64.b64encode(b"tradecloud").decode())),
    case("auth-basic-wrong-password", 401,
         request(body=VALID, auth="Basic " + base64.b64encode(b"tradecloud:wrong").decode())),
    case("auth-duplicated-header", 401, request(body=VALID, extra=[f"Authorization: {AUTH}"])),
    case("auth-duplicated-mixed", 401, request(body=VALID, extra=["Authorization: Bearer wrong"])),
    case("auth-huge-token", 401, request(body=VALID, auth="Bearer " + "A" * 60_000)),
    case("auth-token-with-nul", {400, 401}, request(body=VALID, auth=f"Bearer {TOKEN}\x00")),
    case("metrics-without-auth", 401, request("GET", "/metrics", content_type=None, auth=None)),
    # -- content types -----------------------------------------------------------------------
    case("ctype-missing", 415, request(body=VALID, content_type=None)),
    case("ctype-text-plain", 415, request(body=VALID, content_type="text/plain")),
    case("ctype-form", 415, request(body=b"eventName=X", content_type="application/x-www-form-urlencoded")),
    case("ctype-multipart", 415, request(body=VALID, content_type="multipart/form-data; boundary=x")),
    case("ctype-latin1-charset", 415, request(body=VALID, content_type="application/json; charset=iso-8859-1")),
    case("ctype-jsonp", 415, request(body=VALID, content_type="application/javascript")),
    case("ctype-empty", 415, request(body=VALID, content_type="")),
    # -- malformed and truncated JSON --------------------------------------------------------
    case("json-empty-body", 400, request(body=b"")),
    case("json-truncated", 400, request(body=VALID[: len(VALID) // 2])),
    case("json-single-brace", 400, request(body=b"{")),
    case("json-trailing-garbage", 400, request(body=VALID + b" trailing")),
    case("json-single-quotes", 400, request(body=VALID.replace(b'"', b"'"))),
    case("json-array", 400, request(body=b"[]")),
    case("json-null", 400, request(body=b"null")),
    case("json-number", 400, request(body=b"12345")),
    case("json-nan", 400, request(body=b"NaN")),
    case("json-no-event-name", 400, request(body=b'{"orderEvent": {"orderId": "x"}}')),
    case("json-event-name-number", 400, request(body=order_json(eventName=12))),
    case("json-two-event-objects", 400,
         request(body=order_json(singleDeliveryOrderEvent={"orderId": "y", "lines": []}))),
    case("json-shipment-to-orders", 400,
         request(body=b'{"eventName":"ShipmentIssuedBySupplier","shipment":{"id":"s1","lines":[]}}')),
    case("json-order-id-object", 400, request(body=order_json(orderEvent={"orderId": {"$gt": ""}, "lines": []}))),
    case("json-deep-arrays", 400, request(body=b'{"eventName":"X","orderEvent":' + b"[" * 99_999 + b"]" * 99_999)),
    case("json-deep-objects", 400, request(body=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)),
    case("json-huge-string", 400, request(body=b'{"eventName":"' + b"A" * 900_000 + b'"}')),
    case("json-huge-array", 400,
         request(body=b'{"eventName":"X","orderEvent":{"orderId":"o","lines":[' + b"1," * 300_000 + b"1]}}")),
    case("json-many-keys", 400, request(body=b"{" + b",".join(b'"k%d":0' % i for i in range(60_000)) + b"}")),
    case("json-huge-number", 400, request(body=b'{"eventName":"X","orderEvent":{"orderId":"o","lines":9e9999}}')),
    # Numbers that decimal.Decimal cannot hold, or that would be written back as a gigantic int.
    case("json-number-invalid-operation", 400,
         request(body=POISON_JSON % b"12345678901234567.1e-99999999999999999999")),
    case("xml-number-invalid-operation", 400,
         xml(POISON_XML % b"12345678901234567.1e-99999999999999999999")),
    case("xml-number-huge-exponent", 400, xml(POISON_XML % b"1e400000000")),
    # A valid tXML event but for its (ignored) attributes: too many are refused like too many elements.
    case("xml-many-attributes-on-one-element", 400,
         xml(ATTRIBUTES_XML % (b" ".join(b'a%d=""' % i for i in range(50_000)), b""))),
    case("xml-many-attributes-in-all", 400, xml(ATTRIBUTES_XML % (b"", ATTRIBUTE_LINES))),
    case("json-invalid-utf8", 400, request(body=b'{"eventName":"\xff\xfe\xfd","orderEvent":{"orderId":"x"}}')),
    case("json-utf16", 400, request(body=VALID.decode().encode("utf-16"))),
    case("json-lone-surrogate", 400, request(body=b'{"eventName":"\\ud800","orderEvent":{"orderId":1}}')),
    case("json-nul-bytes", 400, request(body=b"\x00" * 1000)),
    case("json-bom-garbage", 400, request(body=b"\xef\xbb\xbf\xef\xbb\xbf{}")),
    # -- XML ---------------------------------------------------------------------------------
    case("xml-malformed", 400, xml(XML_HEAD + b"<OrderEvent><a></OrderEvent>")),
    case("xml-truncated", 400, xml(XML_HEAD + b"<OrderEvent><eventName>Order")),
    case("xml-billion-laughs", 400, request(body=BILLION_LAUGHS, content_type="application/xml")),
    case("xml-quadratic-blowup", 400, request(body=QUADRATIC, content_type="application/xml")),
    case("xml-xxe-local-file", 400, request(body=XXE_FILE, content_type="application/xml")),
    case("xml-xxe-parameter-entity", 400, request(body=XXE_PARAMETER, content_type="text/xml")),
    case("xml-external-dtd", 400, request(body=XML_EXTERNAL_DTD, content_type="application/xml")),
    case("xml-deep-nesting", 400,
         request(body=XML_HEAD + b"<OrderEvent>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</OrderEvent>",
                 content_type="application/xml")),
    case("xml-latin1-declared", {400, 415},
         xml(b'<?xml version="1.0" encoding="ISO-8859-1"?><OrderEvent><eventName>\xe9</eventName></OrderEvent>')),
    case("xml-sent-as-json", 400, request(body=XML_HEAD + b"<OrderEvent/>", content_type="application/json")),
    # -- size --------------------------------------------------------------------------------
    case("size-content-length-over-limit", 413, request(body=b"", length=MAX_BODY + 1)),
    case("size-chunked-over-limit", 413,
         request(body=b"", content_type="application/json", close=True, length=None).replace(
             b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n")
         + b"".join(b"%x\r\n%s\r\n" % (65536, b"A" * 65536) for _ in range(MAX_BODY // 65536 + 2)) + b"0\r\n\r\n"),
    # -- HTTP framing ------------------------------------------------------------------------
    case("http-header-without-colon", 400, request(body=VALID, extra=["ThisHeaderHasNoColon"])),
    case("http-obs-fold", 400, request(body=VALID, extra=["X-Folded: a", " continued"])),
    case("http-space-before-colon", 400, request(body=VALID, extra=["X-Bad : value"])),
    case("http-nul-in-header", 400, request(body=VALID, extra=["X-Nul: a\x00b"])),
    case("http-cl-and-te", 400, request(body=VALID, extra=["Transfer-Encoding: chunked"])),
    case("http-two-content-lengths", 400, request(body=VALID, extra=[f"Content-Length: {len(VALID) + 5}"])),
    case("http-negative-content-length", 400, request(body=b"", length=-5)),
    case("http-bad-chunk-size", 400,
         request(body=b"", length=None).replace(b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n")
         + b"zz\r\nabc\r\n0\r\n\r\n"),
    case("http-unknown-method", {400, 405}, request("FOO", body=VALID)),
    case("http-09-request", {400, 404, CLOSED}, b"GET /\r\n\r\n"),
    case("http2-preface", {400, CLOSED}, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    case("http-garbage", {400, CLOSED}, bytes(range(256)) * 4),
    # -- methods and paths -------------------------------------------------------------------
    case("method-put", 405, request("PUT", body=VALID)),
    case("method-delete", 405, request("DELETE", content_type=None)),
    case("method-patch", 405, request("PATCH", body=VALID)),
    case("method-trace", 405, request("TRACE", content_type=None)),
    case("method-post-to-id", 405, request("POST", ORDERS + "/some-order", body=VALID)),
    case("path-unknown", 404, request("GET", "/admin", content_type=None)),
    case("path-double-slash", 404, request("POST", "/" + ORDERS, body=VALID)),
    case("path-case", 404, request("POST", ORDERS.upper(), body=VALID)),
    case("path-nul-encoded", 404, request("POST", ORDERS + "%00", body=VALID)),
    case("path-traversal", 400, request("GET", ORDERS + "/../../../etc/passwd", content_type=None)),
    case("path-traversal-encoded", 400, request("GET", ORDERS + "/..%2F..%2Fetc%2Fpasswd", content_type=None)),
    case("path-very-long", {400, 404, 414}, request("GET", "/" + "a" * 100_000, content_type=None)),
    case("path-raw-non-ascii", {400, 404}, request("GET", "/tradecloud/\xff\xfe", content_type=None)),
    case("get-empty-order-id", 400, request("GET", ORDERS + "?orderId=", content_type=None)),
    case("get-no-id", 400, request("GET", ORDERS, content_type=None)),
    case("get-id-too-long", 400, request("GET", ORDERS + "?orderId=" + "a" * 300, content_type=None)),
    # Any printable id is Tradecloud's (a PO number may hold "<script>"); a control character is not.
    case("get-id-control", 400, request("GET", ORDERS + "/%1B%5B2J", content_type=None)),
    case("get-shipment-no-id", 400, request("GET", SHIPMENTS + "?orderId=x", content_type=None)),
    # -- slow and silent clients -------------------------------------------------------------
    case("slow-headers", CLOSED, *[c.encode() for c in "POST /tradecloud/orders HTTP/1.1\r\nHost: x\r\n"],
         pause=0.1, timeout=8),
    case("slow-body", 503, request(body=VALID)[: -len(VALID)], *[VALID[i : i + 20] for i in range(0, len(VALID), 20)],
         pause=0.4),
    case("stalled-body", 503, request(body=b"", length=4000) + b'{"eventName":'),
    case("idle-after-handshake", CLOSED),
    case("many-idle-connections", CLOSED, idle_connections=200),
    # -- transport ---------------------------------------------------------------------------
    case("plain-http-to-tls-port", CLOSED, request(body=VALID), tls="none"),
    case("tcp-connect-no-hello", CLOSED, tls="none"),
    case("tls-1.0", HANDSHAKE_FAILS, tls="tls1.0"),
    case("tls-1.1", HANDSHAKE_FAILS, tls="tls1.1"),
    case("tls-1.2-cbc-only", HANDSHAKE_FAILS, tls="cbc-only"),
)


def _legacy_tls(port: int, ca: Path, version: str) -> str:
    """Attempt a handshake the server must refuse; returns what happened."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.check_hostname = False
    if version == "cbc-only":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA")
    else:
        # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level even as a client.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        tls = ssl.TLSVersion.TLSv1 if version == "tls1.0" else ssl.TLSVersion.TLSv1_1
        ctx.minimum_version = ctx.maximum_version = tls
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls_sock:
                return f"accepted {tls_sock.version()} {tls_sock.cipher()}"
        except ssl.SSLError as exc:
            return f"refused: {exc.reason}"
        except ConnectionError as exc:
            return f"refused: {exc!r}"


def _plain(port: int, data: bytes, timeout: float) -> RawAnswer:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if data:
            sock.sendall(data)
        return read_answer(sock, timeout)


def _idle(server: RunningServer, count: int, timeout: float) -> list[RawAnswer]:
    socks = [tls_connect(server.port, server.ca_path) for _ in range(count)]
    try:
        return [read_answer(s, timeout) for s in socks]
    finally:
        for s in socks:
            s.close()


def _run(server: RunningServer, c: Case) -> str | int | None:
    """The observed outcome: a status code, CLOSED, HANDSHAKE_FAILS, or a description."""
    if c.tls in ("tls1.0", "tls1.1", "cbc-only"):
        outcome = _legacy_tls(server.port, server.ca_path, c.tls)
        return HANDSHAKE_FAILS if outcome.startswith("refused") else outcome
    if c.tls == "none":
        answer = _plain(server.port, b"".join(c.chunks), c.timeout)
    elif c.idle_connections:
        answers = _idle(server, c.idle_connections, c.timeout)
        open_ones = [a for a in answers if not a.closed or a.data]
        return CLOSED if not open_ones else f"{len(open_ones)} idle connections not closed"
    elif not c.chunks:
        answer = _idle(server, 1, c.timeout)[0]
    else:
        answer = send_raw(server.port, server.ca_path, c.chunks, pause=c.pause, timeout=c.timeout)
    if answer.status is not None:
        return answer.status
    if answer.closed and not answer.data.startswith(b"HTTP/"):
        return CLOSED
    return f"no answer, connection open ({answer.error}, {answer.data[:60]!r})"


@dataclass
class Hostile:
    server: RunningServer
    baseline_rss: float


@pytest.fixture(scope="module")
def hostile(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """One server for the whole corpus, with short slow-client limits."""
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("hostile"))
    env = {
        "TCWEBHOOK_SERVER__REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "TCWEBHOOK_SERVER__TLS_HANDSHAKE_TIMEOUT": str(REQUEST_TIMEOUT),
        "TCWEBHOOK_SERVER__MAX_BODY_BYTES": str(MAX_BODY),
        # Every case comes from 127.0.0.1; the per-address cap has tests of its own (test_connections.py).
        "TCWEBHOOK_SERVER__MAX_CONNECTIONS_PER_IP": "0",
    }
    server = factory.start("hostile", env=env)
    try:
        yield Hostile(server, rss_mb(server.proc.pid))
    finally:
        factory.stop_all()


def _event_count(server: RunningServer) -> int:
    assert server.config_path is not None
    return len(read_events(server.config_path))


class TestHostileInput:
    """A corpus of broken and hostile requests: documented status, no crash, bounded memory, nothing stored."""

    def test_corpus_is_large_enough(self) -> None:
        assert len(CORPUS) >= 50
        assert len({c.id for c in CORPUS}) == len(CORPUS)

    @pytest.mark.parametrize("c", CORPUS, ids=[c.id for c in CORPUS])
    def test_case(self, c: Case, hostile: Hostile) -> None:
        server = hostile.server
        before = _event_count(server)
        outcome = _run(server, c)
        assert outcome in c.expect, f"{c.id}: got {outcome!r}, documented {sorted(map(str, c.expect))}"
        assert server.proc.poll() is None, f"the server died on {c.id}:\n{server.logs()[-3000:]}"
        rss = rss_mb(server.proc.pid)
        assert rss < RSS_LIMIT_MB, f"RSS {rss:.0f} MiB after {c.id} (started at {hostile.baseline_rss:.0f})"
        assert _event_count(server) == before, f"{c.id} stored an event"

    def test_memory_does_not_creep(self, hostile: Hostile) -> None:
        """The costliest body of the corpus, again and again: memory levels off."""
        worst = next(c for c in CORPUS if c.id == "json-huge-array")
        sizes = []
        for _ in range(5):
            assert _run(hostile.server, worst) == 400
            sizes.append(rss_mb(hostile.server.proc.pid))
        assert max(sizes) < RSS_LIMIT_MB, sizes
        assert sizes[-1] - sizes[0] < RSS_CREEP_LIMIT_MB, f"RSS keeps growing: {sizes}"

    def test_still_serving_afterwards(self, hostile: Hostile) -> None:
        server = hostile.server
        with server.client() as client:
            r = client.post(
                server.url_orders, content=VALID, headers={**server.bearer(), "content-type": "application/json"}
            )
        assert r.status_code in (200, 202), r.text

