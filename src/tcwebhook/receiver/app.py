"""The webhook receiver as a plain ASGI application.

Status policy (Tradecloud retries only codes above 500): 202 once an event is durably stored,
200 for a duplicate already stored, 4xx only for requests that can never succeed, and 503 for
anything transient *or unforeseen* — a 500 would make Tradecloud drop the event for good. An
envelope whose event object this version does not know is such an event too (kind ``unknown``,
202), never a 400.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs

import orjson
import structlog
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tcwebhook.auth import Authenticator, AuthResult, FailureLimit, FailureLog, JwksUnavailable, redact_headers
from tcwebhook.auth.oauth import OAuthValidator, looks_like_jwt
from tcwebhook.config import AuthSettings, Settings
from tcwebhook.contract.identifiers import id_problem
from tcwebhook.contract.kinds import EventKind, routing_key
from tcwebhook.contract.names import ORDER_FETCH_EVENT, SHIPMENT_FETCH_EVENT
from tcwebhook.contract.parse import parse_webhook
from tcwebhook.dispatch.sync import SyncOutcome, SyncStatus
from tcwebhook.errors import BodyTooLarge, ContractError, StoreUnavailable
from tcwebhook.inbox.base import Intake, NewEvent, StoreResult
from tcwebhook.receiver.encoding import ACCEPT_ENCODING, UnsupportedContentEncoding, decode_body_off_loop
from tcwebhook.receiver.headers import content_headers
from tcwebhook.receiver.metrics import ReceiverMetrics
from tcwebhook.receiver.recent import RecentBodies
from tcwebhook.telemetry.tracing import Tracing, record_status

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Route = Literal["orders", "shipments"]

log = structlog.get_logger("tcwebhook.request")

RETRY_AFTER = b"5"
_JSON = b"application/json"
# Methods of the auxiliary endpoints; any other method on them is answered 405 with ``Allow``.
_AUX_METHODS: dict[str, tuple[str, ...]] = {
    "/healthz": ("GET", "HEAD"),
    "/openapi.json": ("GET", "HEAD"),
    "/metrics": ("GET",),
}
SYNC_REJECTED = "the receiving system refused this event; it is kept as dead-lettered"
SYNC_UNAVAILABLE = "the receiving system is unavailable, retry later"


class SyncDelivery(Protocol):
    """What the receiver needs from the dispatcher in ``[delivery] mode = "sync"``."""

    async def deliver_now(self, event_id: str) -> SyncOutcome: ...


class SlowRequest(Exception):
    """The body did not arrive within the request timeout."""


@dataclass(slots=True)
class Exchange:
    """What one request's handling tells the access log and the last-resort error guard."""

    responded: bool = False  # a response has started: the guard must not send a second one
    log: dict[str, object] = field(default_factory=dict)  # fields added to the "request" log line


class _Reply(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers = headers or []


class Receiver:
    def __init__(
        self,
        settings: Settings,
        inbox: Intake,
        *,
        sync_delivery: SyncDelivery | None = None,
        metrics: ReceiverMetrics | None = None,
        openapi: dict[str, Any] | None = None,
        on_stored: Callable[[StoreResult], None] | None = None,
        oauth: OAuthValidator | None = None,
        before_metrics: Callable[[], Awaitable[None]] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing.off()
        self.inbox = inbox
        self.sync_delivery = sync_delivery if settings.delivery.mode == "sync" else None
        self.metrics = metrics or ReceiverMetrics()
        self.auth = Authenticator(settings.auth)
        if oauth is None and settings.auth.oauth is not None:
            oauth = OAuthValidator(settings.auth.oauth)
        self.oauth = oauth
        self.failures = FailureLog(settings.auth.failure_log_window)
        self.failure_limit = FailureLimit(settings.auth.failure_limit, settings.auth.failure_window)
        self.on_stored = on_stored
        self.before_metrics = before_metrics  # refreshes gauges read from the store
        self._orders = settings.routes.orders
        self._shipments = settings.routes.shipments
        self._max_body = settings.server.max_body_bytes
        self._timeout = settings.server.request_timeout
        self.recent = RecentBodies(settings.server.recent_bodies, settings.store.retention)
        self._openapi = orjson.dumps(openapi) if openapi is not None else None
        # A concrete logger: the module's lazy proxy builds a new bound logger on every call.
        self._log = log.bind()

    def use_auth(self, settings: AuthSettings, oauth: OAuthValidator | None) -> None:
        """Accept these credentials from the next request on (SIGHUP); requests in flight are unaffected."""
        self.auth = Authenticator(settings)
        self.oauth = oauth
        if (settings.failure_limit, settings.failure_window) != (self.failure_limit.limit, self.failure_limit.window):
            self.failure_limit = FailureLimit(settings.failure_limit, settings.failure_window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        state = Exchange()
        status = 503
        route_label = "other"
        try:
            status, route_label = await self._dispatch(scope, receive, send, state)
        except Exception:  # the last guard: never let uvicorn answer 500
            log.exception("request_failed", path=scope.get("path"))
            status = 503
            if not state.responded:
                await _json(
                    send,
                    503,
                    {"error": "unavailable", "detail": "temporary failure, retry later"},
                    [(b"retry-after", RETRY_AFTER)],
                )
        elapsed = time.perf_counter() - started
        self.metrics.observe_request(route_label, status, elapsed)
        client = scope.get("client")
        self._log.info(
            "request",
            method=scope.get("method"),
            path=scope.get("path"),
            status=status,
            latency_ms=round(elapsed * 1000, 3),
            peer=client[0] if client else None,
            **state.log,
        )

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, state: Exchange) -> tuple[int, str]:
        path: str = scope["path"]
        method: str = scope["method"]
        route: Route | None = None
        path_id: str | None = None
        if path == self._orders:
            route = "orders"
        elif path == self._shipments:
            route = "shipments"
        elif path.startswith(self._orders + "/"):
            route, path_id = "orders", path[len(self._orders) + 1 :]
        elif path.startswith(self._shipments + "/"):
            route, path_id = "shipments", path[len(self._shipments) + 1 :]
        if path_id == "":
            path_id = None  # a pasted URL's trailing slash: the route itself

        if route is None:
            return await self._aux(path, method, scope, send, state), "other"
        if self.tracing.enabled:
            return await self._traced(route, path_id, scope, receive, send, state), route
        return await self._webhook(route, path_id, scope, receive, send, state), route

    async def _traced(
        self, route: Route, path_id: str | None, scope: Scope, receive: Receive, send: Send, state: Exchange
    ) -> int:
        # Only the trace headers: a span never carries credentials or the body.
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        method = scope["method"]
        with self.tracing.server_span(f"{method} {route}", carrier, {"http.request.method": method}) as span:
            status = await self._webhook(route, path_id, scope, receive, send, state)
            assert span is not None
            span.set_attribute("tcwebhook.route", route)
            record_status(span, status)
            for key, value in state.log.items():
                if isinstance(value, (str, bool, int, float)):
                    span.set_attribute(f"tcwebhook.{key}", value)
            # The access line is written after the span ends: it carries the ids itself.
            context = span.get_span_context()
            state.log["trace_id"] = format(context.trace_id, "032x")
            state.log["span_id"] = format(context.span_id, "016x")
            return status

    async def _webhook(
        self, route: Route, path_id: str | None, scope: Scope, receive: Receive, send: Send, state: Exchange
    ) -> int:
        method: str = scope["method"]
        try:
            _refuse_encoded_slash(scope, route)
            if path_id is not None and "/" in path_id:
                # An id is one path segment ("../.." neither): one holding '/' comes as a query.
                names = "orderId or legacyOrderId" if route == "orders" else "shipmentId"
                raise _Reply(400, "invalid_request",
                             f"the id in the path spans several segments; give an id that holds '/' as {names}")
            with self.tracing.span("auth"):
                await self._authenticate(scope)
            if path_id is None and method == "POST":
                status = await self._post(route, scope, receive, send, state)
            elif method == "GET":  # not HEAD: a trigger stores an event, HEAD must not
                status = await self._get_trigger(route, path_id, scope, send, state)
            else:
                allow = b"GET" if path_id is not None else b"GET, POST"
                raise _Reply(405, "method_not_allowed", f"use {allow.decode()}", [(b"allow", allow)])
        except _Reply as reply:
            state.responded = True
            await _json(send, reply.status, {"error": reply.error, "detail": reply.detail}, reply.headers)
            status = reply.status
        return status

    # -- auxiliary endpoints -------------------------------------------------------------------

    async def _aux(self, path: str, method: str, scope: Scope, send: Send, state: Exchange) -> int:
        state.responded = True
        allowed = _AUX_METHODS.get(path)
        if path == "/openapi.json" and self._openapi is None:
            allowed = None
        if allowed is not None and method not in allowed:
            allow = ", ".join(allowed)
            await _json(send, 405, {"error": "method_not_allowed", "detail": f"use {allow}"},
                        [(b"allow", allow.encode())])
            return 405
        if path == "/healthz":
            try:
                await self.inbox.ping()
            except Exception:
                await _json(send, 503, {"status": "unavailable"}, [(b"retry-after", RETRY_AFTER)])
                return 503
            await _json(send, 200, {"status": "ok"})
            return 200
        if path == "/openapi.json" and self._openapi is not None:
            await _raw(send, 200, self._openapi, _JSON)
            return 200
        if path == "/metrics":
            try:
                await self._authenticate(scope)
            except _Reply as reply:
                await _json(send, reply.status, {"error": reply.error, "detail": reply.detail}, reply.headers)
                return reply.status
            if self.before_metrics is not None:
                await self.before_metrics()
            await _raw(send, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode())
            return 200
        await _json(send, 404, {"error": "not_found", "detail": "no such endpoint"})
        return 404

    # -- authentication ------------------------------------------------------------------------

    async def _authenticate(self, scope: Scope) -> None:
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(values) > 1:
            result = self.auth.check(None)
            reason = "several Authorization headers"
        else:
            result = self.auth.check(values[0] if values else None)
            if not result.ok and self.oauth is not None and result.scheme == "bearer":
                result = await self._check_oauth(values[0])
            reason = result.error or ""
        if result.ok and len(values) == 1:
            return
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        self.failures.record(peer, reason)
        retry = self.failure_limit.failed(peer)
        if retry is not None:
            self.metrics.auth_limited.inc()
            raise _Reply(
                429,
                "too_many_failures",
                "too many failed authentication attempts from this address, retry later",
                [(b"retry-after", str(max(1, math.ceil(retry))).encode())],
            )
        self.metrics.auth_failures.inc()
        headers = [(b"www-authenticate", c) for c in self.auth.challenges(result)]
        detail = result.description or "valid Basic or Bearer credentials are required"
        raise _Reply(401, "unauthorized", detail, headers)

    async def _check_oauth(self, header: bytes) -> AuthResult:
        """A JWT-shaped bearer the static tokens refused, checked as an OAuth access token."""
        assert self.oauth is not None
        token = header.strip().partition(b" ")[2].strip()
        if not looks_like_jwt(token):
            return AuthResult(False, scheme="bearer", error="bearer token not accepted")
        try:
            return await self.oauth.check(token)
        except JwksUnavailable as exc:
            # The token may well be good: a 401 would make Tradecloud drop the event for good.
            log.warning("oauth_keys_unavailable", error=str(exc))
            retry = RETRY_AFTER if exc.retry_after is None else str(max(1, math.ceil(exc.retry_after))).encode()
            raise _Reply(
                503, "unavailable", "token keys temporarily unavailable, retry later", [(b"retry-after", retry)]
            ) from None

    # -- POST webhook --------------------------------------------------------------------------

    async def _post(self, route: Route, scope: Scope, receive: Receive, send: Send, state: Exchange) -> int:
        content_type, length, encoding = content_headers(scope["headers"])
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise _Reply(413, "too_large", f"body exceeds {self._max_body} bytes")
        try:
            body = await self._read_body(receive)
        except BodyTooLarge as exc:
            raise _Reply(413, "too_large", str(exc)) from None
        except SlowRequest:
            raise _Reply(
                503, "timeout", "request body too slow, retry later", [(b"retry-after", RETRY_AFTER)]
            ) from None
        digest = self.recent.digest(route, content_type, encoding, body) if self.recent.enabled else None
        if digest is not None and (known := self.recent.get(digest)) is not None:
            state.log = {"event_id": known.event_id, "kind": known.kind, "event_name": known.event_name,
                         "duplicate": True}
            self.metrics.count_event(known.kind, "duplicate")
            duplicate = StoreResult(known.event_id, known.seq, duplicate=True)
            return await self._acknowledge(duplicate, send, state, unknown=known.kind == EventKind.UNKNOWN.value)
        headers = redact_headers(scope["headers"])
        received = body
        try:
            body = await decode_body_off_loop(body, encoding, self._max_body)
            with self.tracing.span("parse"):
                parsed = parse_webhook(route, body, content_type)
        except ContractError as exc:
            # Kept as received (its coding is in the stored headers): a refused body is never
            # stored inflated, so a small compressed body cannot take the limit's room on disk.
            await self._quarantine(route, content_type, received, headers, exc)
            extra = [(b"accept-encoding", ACCEPT_ENCODING)] if isinstance(exc, UnsupportedContentEncoding) else []
            raise _Reply(exc.status_code, _error_name(exc.status_code), str(exc), extra) from None
        event = NewEvent.from_parsed(
            parsed, content_type=content_type or "application/json", body=body, headers=headers
        )
        result = await self._store(event)
        kind = parsed.kind.value  # an enum's value is a property lookup: read once
        if digest is not None:
            self.recent.put(digest, result.event_id, result.seq, kind, parsed.event_name)
        state.log = {
            "event_id": result.event_id,
            "kind": kind,
            "event_name": parsed.event_name,
            "duplicate": result.duplicate,
        }
        self.metrics.count_event(kind, "duplicate" if result.duplicate else "stored")
        if not result.duplicate:
            drift = parsed.drift  # found while storing; a duplicate's is never worked out
            if drift:
                self.metrics.count_drift(drift)
        return await self._acknowledge(result, send, state, unknown=parsed.kind is EventKind.UNKNOWN)

    async def _acknowledge(self, result: StoreResult, send: Send, state: Exchange, *, unknown: bool = False) -> int:
        if self.on_stored is not None and not result.duplicate:
            self.on_stored(result)
        if self.sync_delivery is not None:
            status = await self._deliver_sync(result, send, state, unknown=unknown)
            if status:
                return status
        status = 200 if result.duplicate else 202
        state.responded = True
        await _json(send, status, {"status": "duplicate" if result.duplicate else "stored", "eventId": result.event_id})
        return status

    async def _deliver_sync(self, result: StoreResult, send: Send, state: Exchange, *, unknown: bool) -> int:
        """The answer sent after delivering now; 0 when none was sent (answered as stored)."""
        assert self.sync_delivery is not None
        outcome = await self.sync_delivery.deliver_now(result.event_id)
        if outcome.status is SyncStatus.DELIVERED and unknown:
            return 0  # held as unrecognised where no sink accepts it: stored, not delivered to the ERP
        if outcome.status is SyncStatus.DELIVERED:
            state.responded = True
            await _json(send, 200, {"status": "delivered", "eventId": result.event_id})
            return 200
        # The sink's error names ERP hosts, users and tables: it stays in the inbox (attempts)
        # and in this log line; the sender gets a fixed sentence and the event id to quote.
        self._log.warning(
            "sync_delivery_failed",
            event_id=result.event_id,
            outcome=outcome.status.value,
            error=outcome.detail,
        )
        state.responded = True
        if outcome.status is SyncStatus.PERMANENT:
            body = {"error": "rejected_by_erp", "detail": SYNC_REJECTED, "eventId": result.event_id}
            await _json(send, 400, body)
            return 400
        body = {"error": "erp_unavailable", "detail": SYNC_UNAVAILABLE, "eventId": result.event_id}
        await _json(send, 503, body, [(b"retry-after", RETRY_AFTER)])
        return 503

    async def _store(self, event: NewEvent) -> StoreResult:
        if self.tracing.enabled:
            return await self._store_traced(event)
        try:
            return await self.inbox.store(event)
        except StoreUnavailable as exc:
            log.warning("store_unavailable", error=str(exc))
            raise _Reply(
                503, "unavailable", "event store temporarily unavailable, retry later", [(b"retry-after", RETRY_AFTER)]
            ) from None

    async def _store_traced(self, event: NewEvent) -> StoreResult:
        request = trace.get_current_span()
        for name, value in (("order_id", event.order_id), ("shipment_id", event.shipment_id),
                            ("message_id", event.message_id), ("kind", event.kind.value),
                            ("event_name", event.event_name)):
            if value:
                request.set_attribute(f"tcwebhook.{name}", value)
        with self.tracing.span("store"):
            # The delivery spans, perhaps in another process hours later, join this trace.
            event = dataclasses.replace(event, trace_context=self.tracing.traceparent())
            try:
                return await self.inbox.store(event)
            except StoreUnavailable as exc:
                log.warning("store_unavailable", error=str(exc))
                raise _Reply(
                    503, "unavailable", "event store temporarily unavailable, retry later",
                    [(b"retry-after", RETRY_AFTER)],
                ) from None

    async def _quarantine(
        self, route: Route, content_type: str | None, body: bytes, headers: dict[str, str], exc: ContractError
    ) -> None:
        try:
            qid = await self.inbox.quarantine(
                route=route,
                content_type=content_type or "",
                body=body,
                headers=headers,
                reason=str(exc),
                status_code=exc.status_code,
            )
        except StoreUnavailable:
            # Not kept means not safe to refuse for good: let the sender retry.
            raise _Reply(
                503, "unavailable", "event store temporarily unavailable, retry later", [(b"retry-after", RETRY_AFTER)]
            ) from None
        self.metrics.count_event("invalid", "quarantined")
        log.info("quarantined", quarantine_id=qid, route=route, reason=str(exc), status=exc.status_code)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self._timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SlowRequest
            try:
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                raise SlowRequest from None
            if message["type"] == "http.disconnect":
                raise SlowRequest
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self._max_body:
                    raise BodyTooLarge(f"body exceeds {self._max_body} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- GET webhook (trigger: the id only) ----------------------------------------------------

    async def _get_trigger(
        self, route: Route, path_id: str | None, scope: Scope, send: Send, state: Exchange
    ) -> int:
        try:
            # Form encoding, as every HTTP client writes it: ``+`` is a space, a plus is ``%2B``.
            query = parse_qs(scope.get("query_string", b"").decode("utf-8"), errors="strict")
        except UnicodeDecodeError:
            raise _Reply(400, "invalid_request", "the query string is not UTF-8") from None
        names = ("orderId", "legacyOrderId") if route == "orders" else ("shipmentId",)
        field, value = names[0], path_id
        if value is None:
            found = [(n, query[n][0]) for n in names if n in query]
            if len(found) != 1:
                given = "none" if not found else "both"
                raise _Reply(
                    400, "invalid_request", f"give exactly one of {' or '.join(names)} in the path or the query "
                    f"({given} given)"
                )
            field, value = found[0]
        problem = id_problem(value)
        if problem is not None:
            raise _Reply(400, "invalid_request", f"{field} {problem}")
        event = _fetch_request(route, field, value, redact_headers(scope["headers"]))
        result = await self._store(event)
        state.log = {"event_id": result.event_id, "kind": event.kind.value}
        self.metrics.count_event(event.kind.value, "stored")
        return await self._acknowledge(result, send, state)


def _refuse_encoded_slash(scope: Scope, route: Route) -> None:
    """A ``%2F`` in the raw path: the server has already decoded it into ``/``, so the path seen
    is not the one sent (``/tradecloud%2Forders`` would pass for ``/tradecloud/orders``, an id
    ``A/1`` in the path for a longer path). Refused, never routed; an id holding ``/`` goes in
    the query."""
    raw = scope.get("raw_path")
    if raw is not None and b"%2f" in raw.lower():
        names = "orderId or legacyOrderId" if route == "orders" else "shipmentId"
        raise _Reply(
            400,
            "invalid_request",
            f"the path holds an encoded '/' (%2F); give an id that holds '/' as the query parameter {names}",
        )


def _fetch_request(route: Route, field: str, value: str, headers: dict[str, str]) -> NewEvent:
    """A GET webhook as an event: the id only, resolved through the Tradecloud API on delivery.

    Every trigger is its own event (a later trigger means a later change); pending triggers
    for the same id are coalesced by the delivery side, not deduplicated here.
    """
    kind = EventKind.ORDER_FETCH if route == "orders" else EventKind.SHIPMENT_FETCH
    key = f"order:legacy:{value}" if field == "legacyOrderId" else routing_key(kind, order_id=value, shipment_id=value)
    return NewEvent(
        kind=kind,
        event_name=ORDER_FETCH_EVENT if route == "orders" else SHIPMENT_FETCH_EVENT,
        dedupe_key=f"fetch:{uuid.uuid4().hex}",
        content_type="application/json",
        body=orjson.dumps({field: value}),
        key=key,
        order_id=value if field == "orderId" else None,
        shipment_id=value if field == "shipmentId" else None,
        headers=headers,
    )


def _error_name(status: int) -> str:
    return {400: "invalid_body", 413: "too_large", 415: "unsupported_media_type"}.get(status, "invalid_request")


async def _json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _raw(send, status, orjson.dumps(payload), _JSON, headers)


async def _raw(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
