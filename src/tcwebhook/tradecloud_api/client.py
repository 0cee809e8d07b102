"""The async client for the Tradecloud API: orders, shipments and documents by id.

Every call carries a bearer token from ``TokenManager``; passing trouble (connection errors,
timeouts, 429 and 5xx) is retried with back-off up to ``max_retries`` times, a 401 triggers one
logout + login + retry, a 404 raises ``TradecloudNotFound`` and anything else that is not a
success raises ``TradecloudApiError``. Tokens, passwords and pre-signed URLs are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from tcwebhook.backoff import Backoff
from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.identifiers import api_segment, id_problem
from tcwebhook.errors import StartupError, TradecloudApiError, TradecloudNotFound
from tcwebhook.terminal import visible
from tcwebhook.tradecloud_api.auth.tokens import TokenManager
from tcwebhook.tradecloud_api.documents import DocumentMetadata, DownloadedFile
from tcwebhook.tradecloud_api.downloads import DownloadInfo, stream_to_file
from tcwebhook.tradecloud_api.polling import PollPage
from tcwebhook.tradecloud_api.rate import RequestRate
from tcwebhook.transport.certs import client_context

log = structlog.get_logger(__name__)

_Sender = Callable[[httpx.AsyncClient, str, str, Mapping[str, str]], Awaitable[httpx.Response]]

USER_AGENT = "tcwebhook"
# Between attempts of one call; ``[tradecloud] max_retries`` sets how many attempts there are.
DEFAULT_BACKOFF = Backoff(initial=0.5, multiplier=2.0, cap=20.0, jitter=0.2)
# 5xx and throttling are worth another attempt; anything else is the answer.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


def _object_path(prefix: str, object_id: str, what: str) -> str:
    # Ids keep the PO number's characters (``#``, ``/``, ``%``, …): each is percent-encoded, never
    # refused; only an id that can name nothing at all is.
    problem = id_problem(object_id)
    if problem is not None:
        raise TradecloudNotFound(f"{what} id {visible(object_id[:80])!r} cannot name a Tradecloud {what}: it {problem}")
    return f"{prefix}/{api_segment(object_id)}"


def _where(url: str | httpx.URL) -> str:
    """Scheme, host and path of a URL: pre-signed query strings are credentials."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def retry_after_seconds(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """The ``Retry-After`` header in seconds: a number of seconds or an HTTP date (a date already
    past is 0); ``None`` when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None  # not an HTTP date (those are always GMT)
        return max(0.0, when.timestamp() - now())
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


class TradecloudClient:
    """Async client of the Tradecloud API for one integration user; use ``async with``."""

    def __init__(
        self,
        settings: TradecloudSettings,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.time,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        rate: RequestRate | None = None,
    ) -> None:
        if settings.username is None or settings.password is None:
            raise StartupError(
                "The Tradecloud API is needed but [tradecloud] username/password are not set: "
                "configure an integration user."
            )
        self._settings = settings
        self._backoff = dataclasses.replace(backoff, max_attempts=settings.max_retries + 1)
        self._max_bytes = max_document_bytes
        # One budget for every request of this client (``[tradecloud] max_requests_per_second``).
        self._rate = rate or RequestRate(settings.max_requests_per_second)
        verify = self._verify = client_context(settings.ca_bundle, setting="[tradecloud] ca_bundle")
        timeout = httpx.Timeout(settings.timeout)
        base = settings.api_base.rstrip("/")
        self._api = httpx.AsyncClient(
            base_url=base,
            timeout=timeout,
            verify=verify,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        # Pre-signed and partner URLs get no Tradecloud headers or cookies: a separate client.
        self._plain = httpx.AsyncClient(
            timeout=timeout,
            verify=verify,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
        )
        self._tokens = TokenManager(
            self._send_unauthenticated,
            settings.username,
            settings.password,
            refresh_interval=settings.refresh_interval,
            clock=clock,
        )
        self._closed = False

    @property
    def verify(self) -> ssl.SSLContext:
        """The TLS verification of this client (``[tradecloud] ca_bundle``), for related downloads."""
        return self._verify

    @property
    def rate(self) -> RequestRate:
        """The request budget every call of this client waits on."""
        return self._rate

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Log out (so the refresh token dies at once) and close the connections."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._tokens.logout()
        finally:
            await self._api.aclose()
            await self._plain.aclose()

    async def ping(self) -> None:
        """Raise ``TradecloudApiError`` unless a login (or a valid token) is available."""
        await self._tokens.bearer()

    # -- objects ---------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> dict[str, Any]:
        """The whole current order (all lines); its id field is ``id``."""
        return await self._get_json(_object_path("/order", order_id, "order"), "order")

    async def get_shipment(self, shipment_id: str) -> dict[str, Any]:
        """The whole current shipment."""
        return await self._get_json(_object_path("/shipment", shipment_id, "shipment"), "shipment")

    async def get_document_metadata(self, object_id: str) -> DocumentMetadata:
        """Filename, content type and a pre-signed download URL valid for about a minute."""
        path = _object_path("/object-storage/document", object_id, "document") + "/metadata"
        return DocumentMetadata.from_api(await self._get_json(path, "document metadata"), object_id)

    async def download_document(self, object_id: str) -> bytes:
        """The content of a document in Tradecloud object storage."""
        return (await self.download_document_file(object_id)).content

    async def download_document_file(self, object_id: str) -> DownloadedFile:
        """Metadata, then the pre-signed URL (re-fetched once when refused as expired), then,
        if storage cannot be reached, the API's own streaming route."""
        meta = await self.get_document_metadata(object_id)
        for attempt in range(2):
            if not meta.download_url:
                break
            content, outcome = await self._try_presigned(meta.download_url)
            if content is not None:
                return DownloadedFile(meta.filename, meta.content_type, content)
            if outcome == "refused" and attempt == 0:
                meta = await self.get_document_metadata(object_id)
                continue
            break
        path = _object_path("/object-storage/document", object_id, "document")
        response = await self._authenticated("GET", path, "document")
        self._check(response, "document")
        content_type = response.headers.get("content-type", meta.content_type)
        return DownloadedFile(meta.filename, content_type.split(";")[0].strip(), response.content)

    async def download_document_to(self, object_id: str, dest: Path, limit: int) -> DownloadInfo:
        """Like ``download_document_file``, but streamed into ``dest`` and at most ``limit`` bytes
        (``DownloadRefused`` beyond): documents can be hundreds of megabytes each."""
        limit = min(limit, self._max_bytes)
        meta = await self.get_document_metadata(object_id)
        for attempt in range(2):
            if not meta.download_url:
                break
            size, outcome = await self._try_presigned_to(meta.download_url, dest, limit)
            if size is not None:
                return DownloadInfo(meta.filename, meta.content_type, size)
            if outcome == "refused" and attempt == 0:
                meta = await self.get_document_metadata(object_id)
                continue
            break
        path = _object_path("/object-storage/document", object_id, "document")
        written: list[int] = []

        def to_file(
            client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str]
        ) -> Awaitable[httpx.Response]:
            return self._send_to_file(client, method, url, headers, dest, limit, written)

        response = await self._authenticated("GET", path, "document", send=to_file)
        self._check(response, "document")
        content_type = response.headers.get("content-type", meta.content_type)
        return DownloadInfo(meta.filename, content_type.split(";")[0].strip(), written[-1])

    # -- polling and resend ----------------------------------------------------------------

    async def poll(self, path: str, filters: Mapping[str, Any], offset: int, limit: int) -> PollPage:
        """One page of ``POST order-search/poll``, ``…/poll/single-delivery`` or ``shipment/poll``."""
        body = {"filters": dict(filters), "offset": offset, "limit": limit}
        return PollPage.from_api(await self.post_json(path, body, "poll"))

    async def resend_order(self, order_id: str) -> None:
        """Ask Tradecloud to send the order webhook again (``OrderResentByBuyer``), with the ``{}``
        JSON body Tradecloud's SDK sends (the shipment resend goes without a body, as there)."""
        path = _object_path("/order", order_id, "order") + "/buyer/resend"
        self._check(await self._post(path, {}, "order resend"), "order resend")  # the answer's body is not used

    async def resend_shipment(self, shipment_id: str) -> None:
        """Ask Tradecloud to send the shipment webhook again (``ShipmentResentByBuyer``)."""
        path = _object_path("/shipment", shipment_id, "shipment") + "/resend"
        self._check(await self._authenticated("POST", path, "shipment resend"), "shipment resend")

    async def get_json(self, path: str, what: str) -> dict[str, Any]:
        """GET a JSON object from the API (``what`` names it in errors)."""
        return await self._get_json(path, what)

    async def post_json(self, path: str, body: Any, what: str) -> dict[str, Any]:
        """POST a JSON body; the JSON object answered (empty when the answer has no body)."""
        response = await self._post(path, body, what)
        self._check(response, what)
        if not response.content.strip():
            return {}
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TradecloudApiError(f"Tradecloud {what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise TradecloudApiError(f"Tradecloud {what}: the answer is not a JSON object")
        return data

    # -- plumbing --------------------------------------------------------------------------

    async def _post(self, path: str, body: Any, what: str) -> httpx.Response:
        content = orjson.dumps(body)

        def with_body(
            client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str]
        ) -> Awaitable[httpx.Response]:
            return self._send(client, method, url, {**headers, "Content-Type": "application/json"}, content)

        return await self._authenticated("POST", path, what, send=with_body)

    async def _try_presigned(self, url: str) -> tuple[bytes | None, str]:
        """One attempt at a pre-signed URL: (content, "ok") or (None, "refused"/"unreachable")."""
        try:
            response = await self._send(self._plain, "GET", url, {})
        except httpx.TransportError as exc:
            log.warning("tradecloud_storage_unreachable", url=_where(url), error=type(exc).__name__)
            return None, "unreachable"
        if response.status_code == 200:
            return response.content, "ok"
        if response.status_code in (400, 401, 403):
            # S3 answers 403 (sometimes 400) for an expired or mis-signed URL.
            log.info("tradecloud_download_url_refused", status=response.status_code)
            return None, "refused"
        log.warning("tradecloud_storage_failed", url=_where(url), status=response.status_code)
        return None, "unreachable"

    async def _try_presigned_to(self, url: str, dest: Path, limit: int) -> tuple[int | None, str]:
        """``_try_presigned`` writing into ``dest``: (size, "ok") or (None, "refused"/"unreachable")."""
        written: list[int] = []
        try:
            response = await self._send_to_file(self._plain, "GET", url, {}, dest, limit, written)
        except httpx.TransportError as exc:
            log.warning("tradecloud_storage_unreachable", url=_where(url), error=type(exc).__name__)
            return None, "unreachable"
        if response.status_code == 200:
            return written[-1], "ok"
        if response.status_code in (400, 401, 403):
            log.info("tradecloud_download_url_refused", status=response.status_code)
            return None, "refused"
        log.warning("tradecloud_storage_failed", url=_where(url), status=response.status_code)
        return None, "unreachable"

    async def _send_to_file(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        dest: Path,
        limit: int,
        written: list[int],
    ) -> httpx.Response:
        """Like ``_send``, but a 200 body goes into ``dest`` (its size appended to ``written``);
        the returned response then carries no content."""
        request = client.build_request(method, url, headers=dict(headers))
        response = await self._send_request(client, request)
        try:
            if response.status_code == 200:
                size = await stream_to_file(response, dest, limit, f"document from {_where(request.url)}")
                written.append(size)
        finally:
            await response.aclose()
        return httpx.Response(response.status_code, headers=_kept(response), request=request)

    async def _get_json(self, path: str, what: str) -> dict[str, Any]:
        response = await self._authenticated("GET", path, what)
        self._check(response, what)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TradecloudApiError(f"Tradecloud {what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise TradecloudApiError(f"Tradecloud {what}: the answer is not a JSON object")
        return data

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (404, 410):
            raise TradecloudNotFound(f"Tradecloud {what} not found (HTTP {status})")
        raise TradecloudApiError(f"Tradecloud {what}: HTTP {status}")

    async def _authenticated(self, method: str, path: str, what: str, *, send: _Sender | None = None) -> httpx.Response:
        if self._closed:
            raise TradecloudApiError("the Tradecloud client is closed")
        token = await self._tokens.bearer()
        sender = send or self._send

        def attempt() -> Awaitable[httpx.Response]:
            return sender(self._api, method, path, {"Authorization": f"Bearer {token}"})

        response = await self._with_retries(attempt, f"{what} {path}")
        if response.status_code != 401:
            return response
        token = await self._tokens.renew_after_rejection(token)
        response = await self._with_retries(attempt, f"{what} {path}")
        if response.status_code == 401:
            raise TradecloudApiError(f"Tradecloud {what}: HTTP 401 even after a fresh login")
        return response

    async def _send_unauthenticated(
        self, method: str, path: str, *, headers: Mapping[str, str], retry: bool = True
    ) -> httpx.Response:
        def attempt() -> Awaitable[httpx.Response]:
            return self._send(self._api, method, path, headers)

        return await self._with_retries(attempt, path, retries=None if retry else 0)

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[httpx.Response]],
        what: str,
        *,
        retries: int | None = None,
    ) -> httpx.Response:
        """Repeat ``attempt`` on passing trouble; return the first final answer."""
        backoff = self._backoff if retries is None else dataclasses.replace(self._backoff, max_attempts=retries + 1)
        number = 0
        while True:
            number += 1
            retry_after: float | None = None
            try:
                response = await attempt()
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response)
            delay = backoff.delay(number, at_least=retry_after)  # Retry-After, within the back-off's cap
            if problem == "HTTP 429":
                # Throttled: every caller of this client holds back, not only this one.
                self._rate.pause(delay)
            if backoff.give_up(number) is not None:
                raise TradecloudApiError(f"Tradecloud {what}: {problem} after {number} attempts")
            log.info("tradecloud_retry", call=what, problem=problem, attempt=number, delay=delay)
            await asyncio.sleep(delay)

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send and read the whole body (bounded), so a retry never sees a half-read stream."""
        request = client.build_request(method, url, headers=dict(headers), content=content)
        response = await self._send_request(client, request)
        try:
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self._max_bytes:
                    raise TradecloudApiError(
                        f"Tradecloud answer from {_where(request.url)} exceeds {self._max_bytes} bytes"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=_kept(response),
            content=b"".join(chunks),
            request=request,
        )


    async def _send_request(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """``client.send`` streaming; a request to the API waits for its place in the budget."""
        if client is not self._api:  # pre-signed storage and partner URLs are not the API
            return await client.send(request, stream=True)
        async with self._rate.turn():
            return await client.send(request, stream=True)


def _kept(response: httpx.Response) -> list[tuple[str, str]]:
    # The body is already decoded (or written away): drop what describes its encoding.
    return [(k, v) for k, v in response.headers.multi_items() if k not in ("content-encoding", "content-length")]
