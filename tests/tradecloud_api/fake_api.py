"""A fake Tradecloud API: a real HTTPS server on loopback with scriptable failures.

It implements login/refresh/logout with expiring JWT-shaped tokens, orders and shipments by id,
polling (``order-search/poll``, ``…/single-delivery``, ``shipment/poll``), resend (which sends
the webhook to ``webhook_target``, like Tradecloud does, answered or not), the webhook connector
settings of the company,
object-storage metadata whose ``downloadUrl`` points at an S3-like route of the same server
(signed, expiring ``/s3/...`` URLs), the proxy download route, and a partner content server
(``/partner/...``). ``FakeTradecloud`` holds the state, the failure script and a call log; all
of it is guarded by a lock because the server runs on its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.support.polling import eventually

from tcwebhook.contract.identifiers import api_segment

USERNAME = "integration@example.com"
PASSWORD = "pw-Very-Secret-4711"
_SIGNING_KEY = secrets.token_bytes(32)
# Stands for a "/" inside one path segment (an id's ``%2F``) while Starlette routes the request.
_SLASH_IN_SEGMENT = "\ue000"


def _routed_path(raw_path: bytes) -> str:
    """The path with each segment decoded on its own, so ``/v2/order/A%2FB`` keeps one id segment."""
    segments = [unquote(s.decode("ascii", "replace")).replace("/", _SLASH_IN_SEGMENT) for s in raw_path.split(b"/")]
    return "/".join(segments)


def path_id(request: Request, name: str = "id") -> str:
    """A path parameter with the ``/`` its segment held restored."""
    return str(request.path_params[name]).replace(_SLASH_IN_SEGMENT, "/")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    raw_path: str = ""  # as sent: ids percent-encoded
    at: float = 0.0  # time.monotonic() when the request arrived
    body: bytes = b""


@dataclass
class Document:
    filename: str
    content_type: str
    content: bytes


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Delay:
    prefix: str
    seconds: float
    times: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(subject: str, expires_at: float) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": subject, "exp": int(expires_at), "jti": str(uuid.uuid4())}
    payload = _b64(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64(secrets.token_bytes(16))}"


@dataclass
class WebhookTarget:
    orders_url: str
    shipments_url: str
    headers: dict[str, str]
    verify: str | bool = True


_last_stamp = [0]


def _now_iso() -> str:
    """Now as Tradecloud writes it (milliseconds, UTC); strictly increasing, so changes are ordered."""
    millis = max(time.time_ns() // 1_000_000, _last_stamp[0] + 1)
    _last_stamp[0] = millis
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _updated(obj: dict[str, Any]) -> str:
    value = obj.get("lastUpdatedAt") or obj.get("meta", {}).get("lastUpdatedAt") or ""
    return str(value)


def _sign(object_id: str, amz_date: str, expires: int) -> str:
    message = f"{object_id}|{amz_date}|{expires}".encode()
    return hmac.new(_SIGNING_KEY, message, hashlib.sha256).hexdigest()


class FakeTradecloud:
    """State, failure script and call log of the fake API."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.storage_base = ""  # set by the server
        self.unreachable_base = ""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.username = USERNAME
            self.password = PASSWORD
            self.access_ttl = 3600.0
            self.refresh_ttl = 24 * 3600.0
            self.url_ttl = 60
            self.orders: dict[str, dict[str, Any]] = {}
            self.shipments: dict[str, dict[str, Any]] = {}
            self.documents: dict[str, Document] = {}
            self.partner_files: dict[str, Document] = {}
            self.calls: list[Call] = []
            self.access_tokens: dict[str, float] = {}
            self.refresh_tokens: dict[str, float] = {}
            self.issued_access: list[str] = []
            self.issued_refresh: list[str] = []
            self._failures: list[_Failure] = []
            self._delays: list[_Delay] = []
            self._holds: dict[str, threading.Event] = {}
            self.expired_urls = 0  # the next N download URLs are issued already expired
            self.storage_unreachable = False
            self.company_id = "c0ffee00-0000-4000-8000-000000000001"
            self.webhook_settings: dict[str, Any] = {}  # orderEvents / orderDocumentsEvents / shipment
            self.webhook_target: WebhookTarget | None = None  # where resends go
            self.webhooks_sent: list[tuple[str, int]] = []  # (event name, status answered)

    # -- content ----------------------------------------------------------------------------

    def add_order(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["id"]] = order

    def add_shipment(self, shipment: dict[str, Any]) -> None:
        with self.lock:
            self.shipments[shipment["id"]] = shipment

    def add_document(self, object_id: str, filename: str, content: bytes, ctype: str) -> None:
        with self.lock:
            self.documents[object_id] = Document(filename, ctype, content)

    def add_partner_file(self, name: str, content: bytes, ctype: str = "application/pdf") -> str:
        with self.lock:
            self.partner_files[name] = Document(name, ctype, content)
            return f"{self.storage_base}/partner/{quote(name)}"

    def update_order(self, order: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """A change in Tradecloud: new ``lastUpdatedAt`` and ``version``; returns the new order."""
        with self.lock:
            current = dict(self.orders.get(order["id"], order))
            current.update(changes)
            current["version"] = int(current.get("version", 0)) + 1
            current["lastUpdatedAt"] = _now_iso()
            self.orders[current["id"]] = current
            return current

    def update_shipment(self, shipment: dict[str, Any], **changes: Any) -> dict[str, Any]:
        with self.lock:
            current = dict(self.shipments.get(shipment["id"], shipment))
            current.update(changes)
            current["meta"] = {**current.get("meta", {}), "lastUpdatedAt": _now_iso()}
            self.shipments[current["id"]] = current
            return current

    def order_webhook(self, order: dict[str, Any], event_name: str = "OrderLinesUpdatedByBuyer") -> dict[str, Any]:
        """The order webhook body Tradecloud sends for the order's current state."""
        event = {k: v for k, v in order.items() if k != "id"}
        event["orderId"] = order["id"]
        meta = {"messageId": str(uuid.uuid4()), "createdDateTime": _now_iso()}
        return {"eventName": event_name, "orderEvent": event, "meta": meta}

    def shipment_webhook(
        self, shipment: dict[str, Any], event_name: str = "ShipmentIssuedBySupplier"
    ) -> dict[str, Any]:
        body_shipment = dict(shipment)
        body_shipment["meta"] = {**shipment.get("meta", {}), "messageId": str(uuid.uuid4())}
        return {"eventName": event_name, "shipment": body_shipment}

    def send_webhook(self, route: str, body: dict[str, Any]) -> int:
        """POST ``body`` to the target's orders/shipments URL, like Tradecloud: once, no retry here."""
        target = self.webhook_target
        if target is None:
            return 0
        url = target.orders_url if route == "orders" else target.shipments_url
        try:
            status = httpx.post(url, json=body, headers=target.headers, verify=target.verify, timeout=10).status_code
        except httpx.HTTPError:
            status = -1
        with self.lock:
            self.webhooks_sent.append((str(body["eventName"]), status))
        return status

    # -- failure script ---------------------------------------------------------------------

    def fail(self, prefix: str, status: int = 503, times: int = 1, **headers: str) -> None:
        """The next ``times`` requests whose path starts with ``prefix`` answer ``status``."""
        with self.lock:
            self._failures.append(_Failure(prefix, status, times, headers))

    def reset_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def slow(self, prefix: str, seconds: float, times: int = 1) -> None:
        with self.lock:
            self._delays.append(_Delay(prefix, seconds, times))

    def hold(self, prefix: str) -> threading.Event:
        """Requests under ``prefix`` wait until the returned event is set."""
        gate = threading.Event()
        with self.lock:
            self._holds[prefix] = gate
        return gate

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401 mid-session)."""
        with self.lock:
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = time.time() - 1

    # -- call log ---------------------------------------------------------------------------

    def calls_to(self, prefix: str, method: str | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path.startswith(prefix) and (method is None or c.method == method)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met within the deadline")
            time.sleep(0.005)

    # -- used by the app --------------------------------------------------------------------

    def _take(self, path: str) -> tuple[_Failure | None, float, threading.Event | None]:
        with self.lock:
            failure = next((f for f in self._failures if path.startswith(f.prefix)), None)
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            delay = next((d for d in self._delays if path.startswith(d.prefix)), None)
            seconds = 0.0
            if delay is not None:
                seconds = delay.seconds
                delay.times -= 1
                if delay.times <= 0:
                    self._delays.remove(delay)
            gate = next((g for p, g in self._holds.items() if path.startswith(p)), None)
            return failure, seconds, gate

    def _issue_pair(self) -> tuple[str, str]:
        now = time.time()
        access = _jwt(self.username, now + self.access_ttl)
        refresh = _jwt(self.username, now + self.refresh_ttl)
        self.access_tokens[access] = now + self.access_ttl
        self.refresh_tokens[refresh] = now + self.refresh_ttl
        self.issued_access.append(access)
        self.issued_refresh.append(refresh)
        return access, refresh

    def _bearer_ok(self, request: Request) -> bool:
        value = request.headers.get("authorization", "")
        if not value.startswith("Bearer "):
            return False
        with self.lock:
            expires = self.access_tokens.get(value[7:])
        return expires is not None and expires > time.time()

    def _download_url(self, object_id: str) -> str:
        with self.lock:
            base = self.unreachable_base if self.storage_unreachable else self.storage_base
            expires = self.url_ttl
            issued = datetime.now(UTC)
            if self.expired_urls > 0:
                self.expired_urls -= 1
                issued = datetime.fromtimestamp(time.time() - 2 * self.url_ttl - 5, UTC)
        amz_date = issued.strftime("%Y%m%dT%H%M%SZ")
        signature = _sign(object_id, amz_date, expires)
        query = f"X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-Signature={signature}"
        return f"{base}/s3/{api_segment(object_id)}?{query}"


def build_app(fake: FakeTradecloud) -> ASGIApp:
    """The ASGI app serving ``/v2/...`` (the API), ``/s3/...`` and ``/partner/...``."""

    def bearer_required(request: Request) -> Response | None:
        if fake._bearer_ok(request):
            return None
        return JSONResponse({"message": "Unauthorized"}, status_code=401)

    async def login(request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{fake.username}:{fake.password}".encode()).decode()
        if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
            return JSONResponse({"message": "Invalid credentials"}, status_code=401)
        with fake.lock:
            access, refresh = fake._issue_pair()
        return JSONResponse(
            {"username": fake.username, "status": "authenticated"},
            headers={"Set-Authorization": access, "Set-Refresh-Token": refresh},
        )

    async def refresh(request: Request) -> Response:
        if "authorization" in request.headers:
            return JSONResponse({"message": "send only Refresh-Token"}, status_code=400)
        token = request.headers.get("refresh-token", "")
        with fake.lock:
            expires = fake.refresh_tokens.pop(token, None)  # single use
            if expires is None or expires <= time.time():
                return JSONResponse({"message": "Invalid refresh token"}, status_code=401)
            access, new_refresh = fake._issue_pair()
        return JSONResponse(
            {"status": "refreshed"},
            headers={"Set-Authorization": access, "Set-Refresh-Token": new_refresh},
        )

    async def logout(request: Request) -> Response:
        if "authorization" in request.headers:
            return JSONResponse({"message": "send only Refresh-Token"}, status_code=400)
        with fake.lock:
            fake.refresh_tokens.pop(request.headers.get("refresh-token", ""), None)
        return Response(status_code=200)

    async def get_order(request: Request) -> Response:
        if (denied := bearer_required(request)) is not None:
            return denied
        with fake.lock:
            order = fake.orders.get(path_id(request))
        if order is None:
            return JSONResponse({"message": "Order not found"}, status_code=404)
        return JSONResponse(order)

    async def get_shipment(request: Request) -> Response:
        if (denied := bearer_required(request)) is not None:
            return denied
        with fake.lock:
            shipment = fake.shipments.get(path_id(request))
        if shipment is None:
            return JSONResponse({"message": "Shipment not found"}, status_code=404)
        return JSONResponse(shipment)

    async def metadata(request: Request) -> Response:
        if (denied := bearer_required(request)) is not None:
            return denied
        object_id = path_id(request)
        with fake.lock:
            doc = fake.documents.get(object_id)
        if doc is None:
            return JSONResponse({"message": "Document not found"}, status_code=404)
        return JSONResponse(
            {
                "id": object_id,
                "filename": doc.filename,
                "contentType": doc.content_type,
                "downloadUrl": fake._download_url(object_id),
            }
        )

    async def proxy_download(request: Request) -> Response:
        if (denied := bearer_required(request)) is not None:
            return denied
        with fake.lock:
            doc = fake.documents.get(path_id(request))
        if doc is None:
            return JSONResponse({"message": "Document not found"}, status_code=404)
        return Response(doc.content, media_type=doc.content_type)

    async def s3(request: Request) -> Response:
        denied = Response(
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            status_code=403,
            media_type="application/xml",
        )
        if "authorization" in request.headers:
            return Response(b"<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        object_id = path_id(request)
        q = request.query_params
        amz_date, expires = q.get("X-Amz-Date", ""), q.get("X-Amz-Expires", "0")
        signature = _sign(object_id, amz_date, int(expires))
        if not hmac.compare_digest(q.get("X-Amz-Signature", ""), signature):
            return denied
        issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if time.time() > issued + int(expires):
            return denied
        with fake.lock:
            doc = fake.documents.get(object_id)
        if doc is None:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", status_code=404)
        return Response(doc.content, media_type=doc.content_type)

    async def partner(request: Request) -> Response:
        with fake.lock:
            doc = fake.partner_files.get(request.path_params["name"])
        if doc is None:
            return Response(b"not here", status_code=404)
        return Response(
            doc.content,
            media_type=doc.content_type,
            headers={"Content-Disposition": f'attachment; filename="{doc.filename}"'},
        )

    def poll(collection: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            if (denied := bearer_required(request)) is not None:
                return denied
            try:
                body = json.loads(await request.body())
                after = body.get("filters", {}).get("lastUpdatedAfter") or ""
                offset, limit = int(body.get("offset", 0)), int(body.get("limit", 100))
            except (ValueError, AttributeError, TypeError):
                return JSONResponse({"message": "Bad request"}, status_code=400)
            if limit > 100 or limit < 1 or offset < 0:
                return JSONResponse({"message": "limit must be 1..100"}, status_code=400)
            with fake.lock:
                items = list((fake.orders if collection == "orders" else fake.shipments).values())
            # ISO timestamps of one format compare as text; Tradecloud's are all UTC "Z".
            matching = sorted((o for o in items if _updated(o) > after), key=_updated)
            page = matching[offset : offset + limit]
            last = _updated(matching[-1]) if matching else None
            return JSONResponse({"data": page, "total": len(matching), "lastUpdatedAt": last})

        return handler

    async def resend(request: Request) -> Response:
        if (denied := bearer_required(request)) is not None:
            return denied
        object_id = path_id(request)
        is_order = request.url.path.startswith("/v2/order/")
        if is_order:
            # As the SDK sends it (ResendOrders.cs): a JSON body holding an empty object.
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return JSONResponse({"message": "Unsupported Media Type"}, status_code=415)
            try:
                sent = json.loads(await request.body())
            except ValueError:
                return JSONResponse({"message": "Bad request"}, status_code=400)
            if not isinstance(sent, dict):
                return JSONResponse({"message": "Bad request"}, status_code=400)
        with fake.lock:
            obj = (fake.orders if is_order else fake.shipments).get(object_id)
        if obj is None:
            return JSONResponse({"message": "Not found"}, status_code=404)
        if is_order:
            route, body = "orders", fake.order_webhook(obj, "OrderResentByBuyer")
        else:
            route, body = "shipments", fake.shipment_webhook(obj, "ShipmentResentByBuyer")
        # Tradecloud answers the API call, then delivers the webhook on its own.
        return Response(status_code=200, background=BackgroundTask(asyncio.to_thread, fake.send_webhook, route, body))

    def settings_route(section: str | None) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            if (denied := bearer_required(request)) is not None:
                return denied
            if request.path_params["company"] != fake.company_id:
                return JSONResponse({"message": "Forbidden"}, status_code=403)
            shipment = request.url.path.startswith("/v2/shipment-webhook-connector/")
            if request.method == "GET":
                with fake.lock:
                    if shipment:
                        return JSONResponse(fake.webhook_settings.get("shipment", {}))
                    return JSONResponse(
                        {k: v for k, v in fake.webhook_settings.items() if k in ("orderEvents", "orderDocumentsEvents")}
                    )
            try:
                body = json.loads(await request.body())
            except ValueError:
                return JSONResponse({"message": "Bad request"}, status_code=400)
            if not isinstance(body, dict) or not str(body.get("webhookUrl", "")).startswith("https://"):
                return JSONResponse({"message": "webhookUrl must be https"}, status_code=400)
            with fake.lock:
                fake.webhook_settings["shipment" if shipment else str(section)] = body
            return JSONResponse(body)

        return handler

    async def misconfigured(request: Request) -> Response:
        """A receiver that answers every webhook with the status in its path (400, 500, …)."""
        await request.body()
        return JSONResponse({"error": "misconfigured"}, status_code=int(request.path_params["status"]))

    routes = [
        Route("/v2/order-search/poll", poll("orders"), methods=["POST"]),
        Route("/v2/order-search/poll/single-delivery", poll("orders"), methods=["POST"]),
        Route("/v2/shipment/poll", poll("shipments"), methods=["POST"]),
        Route("/v2/order/{id}/buyer/resend", resend, methods=["POST"]),
        Route("/v2/shipment/{id}/resend", resend, methods=["POST"]),
        Route(
            "/v2/order-webhook-connector/company/{company}/settings/orderEvents",
            settings_route("orderEvents"),
            methods=["POST"],
        ),
        Route(
            "/v2/order-webhook-connector/company/{company}/settings/orderDocumentsEvents",
            settings_route("orderDocumentsEvents"),
            methods=["POST"],
        ),
        Route("/v2/order-webhook-connector/company/{company}/settings", settings_route(None), methods=["GET"]),
        Route(
            "/v2/shipment-webhook-connector/company/{company}/settings",
            settings_route(None),
            methods=["GET", "POST"],
        ),
        Route("/misconfigured/{status:int}/{rest:path}", misconfigured, methods=["POST"]),
        Route("/v2/authentication/login", login, methods=["GET"]),
        Route("/v2/authentication/refresh", refresh, methods=["GET"]),
        Route("/v2/authentication/logout", logout, methods=["POST"]),
        Route("/v2/order/{id}", get_order, methods=["GET"]),
        Route("/v2/shipment/{id}", get_shipment, methods=["GET"]),
        Route("/v2/object-storage/document/{id}/metadata", metadata, methods=["GET"]),
        Route("/v2/object-storage/document/{id}", proxy_download, methods=["GET"]),
        Route("/s3/{id}", s3, methods=["GET"]),
        Route("/partner/{name}", partner, methods=["GET"]),
    ]
    app = Starlette(routes=routes)

    async def scripted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        arrived = time.monotonic()
        raw_path = scope.get("raw_path") or path.encode()
        scope = {**scope, "path": _routed_path(raw_path)}
        failure, delay, gate = fake._take(path)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body_parts: list[bytes] = []

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body_parts.append(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            # Log before the answer leaves, so a test that has the answer also sees the call.
            if message["type"] == "http.response.start":
                call = Call(
                    scope["method"],
                    path,
                    scope.get("query_string", b"").decode(),
                    headers,
                    message["status"],
                    raw_path.decode("ascii", "replace"),
                    arrived,
                    b"".join(body_parts),
                )
                with fake.lock:
                    fake.calls.append(call)
            await send(message)

        if gate is not None:
            await asyncio.to_thread(gate.wait, 10)
        if delay:
            await asyncio.sleep(delay)
        if failure is not None:
            response = Response(b"scripted failure", status_code=failure.status, headers=failure.headers)
            await response(scope, recording_receive, recording_send)
        else:
            await app(scope, recording_receive, recording_send)

    return scripted


class FakeServer:
    """Runs ``build_app`` under uvicorn with TLS (a trustme CA) on a thread."""

    def __init__(self, workdir: Path) -> None:
        self.fake = FakeTradecloud()
        workdir.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = workdir / "fake-tradecloud-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        self._cert_path = workdir / "fake-tradecloud-cert.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(self._cert_path))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.origin = f"https://127.0.0.1:{self.port}"
        self.api_base = f"{self.origin}/v2"
        self.fake.storage_base = self.origin
        # Bound but never listening: connections are refused, and no one else can take the port.
        self._refused = socket.socket()
        self._refused.bind(("127.0.0.1", 0))
        self.fake.unreachable_base = f"https://127.0.0.1:{self._refused.getsockname()[1]}"
        config = uvicorn.Config(
            build_app(self.fake),
            ssl_certfile=str(self._cert_path),
            ssl_keyfile=str(self._cert_path),
            log_level="warning",
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        def up() -> bool:
            if not self._thread.is_alive():
                raise RuntimeError("the fake Tradecloud API did not start")
            return bool(self._server.started)

        eventually(up, 10, interval=0.01, what="the fake Tradecloud API started")

    def stop(self) -> None:
        """Stop serving (also fine when ``start`` was never called)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()
        self._refused.close()
