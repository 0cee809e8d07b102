"""The http sink: POST each event (the body as received, or the sink's format) to an ERP URL.

Outcomes: 2xx delivered; a status in ``permanent_codes`` (default 400, 404, 409, 422) is a
``PermanentError``; every other status, timeouts and connection or TLS failures are a
``TransientError``. Redirects are not followed, because re-sending a POST to wherever a 3xx
points is unsafe (301/302 turn it into a GET) and a redirecting endpoint is a configuration
mistake an operator fixes; until then the event is retried (3xx is transient).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
import structlog

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.formats import Output
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter
from tcwebhook.telemetry.tracing import inject_trace
from tcwebhook.transport.certs import client_context

log = structlog.get_logger(__name__)

DEFAULT_PERMANENT_CODES = (400, 404, 409, 422)
_SNIPPET_CHARS = 200
# Read at most this much of a response: enough for an error message, and a small body is
# drained so the keep-alive connection goes back to the pool.
_READ_LIMIT = 64 * 1024
_RESERVED = ("content-type", "content-length", "host", "transfer-encoding", "x-tcwebhook-")
# Printable ASCII except '%': header values go as-is when they fit, else percent-encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class _BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _header_value(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


def _snippet(raw: bytes, secrets: Iterable[str]) -> str:
    text = " ".join(raw[: _SNIPPET_CHARS * 4].decode("utf-8", "replace").split())
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:_SNIPPET_CHARS]


class HttpSink:
    """POSTs each event body, with its original Content-Type and ``X-Tcwebhook-*`` headers.

    ``X-Tcwebhook-Event-Id`` is stable across retries so the receiving side can ignore a
    redelivery it already processed. One connection pool per sink is kept open between events.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        events: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        bearer_token: str | None = None,
        basic_username: str | None = None,
        basic_password: str | None = None,
        verify: bool = True,
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
        permanent_codes: Iterable[int] = DEFAULT_PERMANENT_CODES,
        transport: httpx.AsyncBaseTransport | None = None,
        output: Output | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.output = output or Output(sink=name)
        self.filter = SinkFilter.parse(events, sink=name)
        self.timeout = timeout
        self.permanent_codes = frozenset(permanent_codes)
        has_auth = bool(bearer_token or basic_username)
        self._headers = self._static_headers(headers or {}, has_auth=has_auth)
        self._auth = self._make_auth(bearer_token, basic_username, basic_password)
        self._secrets = self._secret_strings(bearer_token, basic_username, basic_password)
        self._tls = client_context(ca_bundle, verify=verify, setting=f"Sink {name!r}: ca_bundle")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        try:
            self._target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise StartupError(f"Sink {name!r}: url is not a valid URL ({exc}).") from None
        if self._target.scheme not in ("http", "https") or not self._target.host:
            raise StartupError(f"Sink {name!r}: url must be an absolute http:// or https:// URL.")
        port = self._target.port or (443 if self._target.scheme == "https" else 80)
        self._where = f"{self._target.host}:{port}"  # never the userinfo of the URL

    def _static_headers(self, headers: Mapping[str, str], *, has_auth: bool) -> dict[str, str]:
        for key in headers:
            low = key.lower()
            if low.startswith(_RESERVED) or (has_auth and low == "authorization"):
                raise StartupError(
                    f"Sink {self.name!r}: header {key!r} is set by the sink itself; remove it from headers."
                )
        return {"User-Agent": "tcwebhook", **headers}

    def _make_auth(self, bearer: str | None, username: str | None, password: str | None) -> httpx.Auth | None:
        if bearer and (username or password):
            raise StartupError(
                f"Sink {self.name!r}: configure either bearer_token or basic_username/basic_password, not both."
            )
        if bearer:
            return _BearerAuth(bearer)
        if username or password:
            if not (username and password):
                raise StartupError(f"Sink {self.name!r}: basic auth needs both basic_username and basic_password.")
            return httpx.BasicAuth(username, password)
        return None

    def _secret_strings(self, bearer: str | None, username: str | None, password: str | None) -> tuple[str, ...]:
        found = [bearer, password]
        if username and password:
            found.append(base64.b64encode(f"{username}:{password}".encode()).decode())
        # Configured header values may be API keys; keep them out of error messages too.
        found.extend(v for k, v in self._headers.items() if k != "User-Agent" and len(v) >= 8)
        return tuple(s for s in found if s)

    def _client_for_loop(self) -> httpx.AsyncClient:
        # Built on first use, inside the running loop, so constructing sinks opens nothing.
        if self._client is None:
            self._client = httpx.AsyncClient(
                auth=self._auth,
                headers=self._headers,
                verify=self._tls,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                transport=self._transport,
            )
        return self._client

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def request_headers(self, event: EventLike, content_type: str | None = None) -> dict[str, str]:
        headers = {
            "Content-Type": _header_value(content_type or event.content_type),
            "X-Tcwebhook-Event-Id": _header_value(event.event_id),
            "X-Tcwebhook-Event-Name": _header_value(event.event_name),
            "X-Tcwebhook-Kind": event.kind.value,
        }
        if event.key is not None:
            headers["X-Tcwebhook-Key"] = _header_value(event.key)
        inject_trace(headers)  # the ERP's own traces can join the event's
        return headers

    async def deliver(self, event: StoredEvent | Event) -> None:
        client = self._client_for_loop()
        if self.output.is_body:
            body, content_type = event.body, event.content_type
        else:
            rendered = self.output.render(event)
            body, content_type = rendered.body, rendered.content_type
        request = client.build_request(
            "POST", self._target, content=body, headers=self.request_headers(event, content_type)
        )
        started = time.perf_counter()
        try:
            # httpx bounds each phase; this bounds the whole exchange up to the status line.
            async with asyncio.timeout(self.timeout):
                response = await client.send(request, stream=True)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransientError(f"no response within {self.timeout:g} s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            reason = _snippet(str(exc).encode(), self._secrets) or type(exc).__name__
            raise TransientError(f"cannot reach {self._where} ({reason})") from None
        try:
            raw = await self._read_some(response)
        finally:
            await response.aclose()
        status = response.status_code
        if 200 <= status < 300:
            log.debug(
                "sink.http.delivered",
                sink=self.name,
                event_id=event.event_id,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return
        detail = _snippet(raw, self._secrets)
        message = f"HTTP {status}" + (f": {detail}" if detail else "")
        if status in self.permanent_codes:
            raise PermanentError(message)
        if 300 <= status < 400:
            location = _snippet(response.headers.get("location", "").encode(), self._secrets)
            raise TransientError(
                f"HTTP {status} redirect to {location or '(no Location)'} not followed; "
                "point the sink url at the final address"
            )
        raise TransientError(message)

    async def _read_some(self, response: httpx.Response) -> bytes:
        """Up to ``_READ_LIMIT`` bytes of the body, for the error message and connection reuse.

        The status line has already decided the outcome, so a body that breaks off, fails to
        decompress or trickles in too slowly yields what arrived instead of an error.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= _READ_LIMIT:
                        break
        except (httpx.HTTPError, TimeoutError):
            pass
        return b"".join(chunks)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
