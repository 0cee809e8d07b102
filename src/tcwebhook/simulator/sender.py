"""The webhook sender: what Tradecloud does towards one receiver, for tests and load runs.

Every concurrent sender task ("lane") keeps one HTTP/1.1 connection alive; all lanes share
one verifying TLS context. Each call follows the documented retry rule (``classify``), waiting
between attempts as a ``Backoff`` says.
A refused certificate or a failed TLS handshake stops the whole run: every further call would
be refused the same way.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from tcwebhook.backoff import Backoff
from tcwebhook.simulator.calls import WebhookRequest
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.stats import Tally
from tcwebhook.simulator.trust import (
    diagnose_handshake,
    explain_untrusted,
    fetch_peer_chain,
    find_ssl_error,
    find_verification_error,
)

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection-error"
TLS_REFUSED = "tls-refused"

# Tradecloud retries forever; a simulator has to stop, so the default gives up after 5 retries.
DEFAULT_BACKOFF = Backoff(initial=0.5, multiplier=2.0, cap=30.0, max_attempts=6)


class Verdict(StrEnum):
    """What the sender does after one attempt (contract §2)."""

    DONE = "done"  # 2xx
    FINAL = "final"  # failed; resending is assumed to fail again
    RETRY = "retry"  # temporary failure


def classify(status: int | None) -> Verdict:
    """The verdict for an HTTP status, or ``None`` for a timeout / connection error.

    2xx is done; 4xx and 500 are final failures; anything above 500, a timeout or a dropped
    connection is retried.
    """
    if status is None or status > 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DONE
    return Verdict.FINAL


def sender_backoff(*, max_retries: int, initial_wait: float, max_wait: float) -> Backoff:
    """The back-off of ``tcwebhook send --max-retries/--initial-wait/--max-wait``."""
    return Backoff(initial=initial_wait, multiplier=2.0, cap=max_wait, max_attempts=max_retries + 1)


def _user_agent() -> str:
    try:
        return f"tcwebhook-send/{version('tcwebhook')}"
    except PackageNotFoundError:
        return "tcwebhook-send"


def require_https(url: str) -> None:
    """Tradecloud calls ``https://`` URLs only; ``ValueError`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https:// URL; Tradecloud only calls HTTPS endpoints")


@dataclass(frozen=True, slots=True)
class SendAttempt:
    """One HTTP exchange (or the failure to have one)."""

    number: int  # 1 for the first try
    status: int | None  # None: timeout, connection error or TLS failure
    error: str | None
    started: float  # time.monotonic()
    latency: float  # seconds until the response was read, or until the failure


@dataclass(slots=True)
class Outcome:
    """How one webhook call ended, after any retries."""

    label: str
    method: str
    url: str
    message_id: str | None
    duplicate: bool
    attempts: list[SendAttempt] = field(default_factory=list)
    result: str = ""  # the final status code, or TIMEOUT / CONNECTION_ERROR / TLS_REFUSED
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        last = self.attempts[-1].status if self.attempts else None
        return last is not None and classify(last) is Verdict.DONE

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)


class Observer(Protocol):
    """Told about each attempt and each finished call (the CLI draws progress with it)."""

    def attempted(self, outcome: Outcome, attempt: SendAttempt, next_wait: float | None) -> None:
        """``next_wait`` is the back-off before the next try, ``None`` when none follows."""

    def finished(self, outcome: Outcome) -> None: ...


class Sender:
    """Sends webhook calls the way Tradecloud does; use as ``async with Sender(...) as s``."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        credentials: Credentials | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 10.0,
        max_connections: int = 10,
        observer: Observer | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._credentials = credentials
        self.backoff = backoff
        self._timeout = timeout
        self._max_connections = max(1, max_connections)
        self._observer = observer
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._open = False
        self._explain_lock = asyncio.Lock()
        # Set once TLS refuses the server: the run stops and says why.
        self.refusal: str | None = None

    async def __aenter__(self) -> Sender:
        self._open = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, lane: int) -> httpx.AsyncClient:
        """The client of one lane: one kept-alive HTTP/1.1 connection, like one sender thread.

        A lane per connection, not one pool for all: httpcore's pool rescans every waiting
        request whenever one finishes, which made 64 concurrent senders 6x slower than 4.
        """
        assert self._open, "use `async with Sender(...)`"
        lane %= self._max_connections
        client = self._clients.get(lane)
        if client is None:
            client = self._clients[lane] = httpx.AsyncClient(
                verify=self._ssl,  # one SSLContext for every lane: loaded once, sessions shared
                http1=True,
                http2=False,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,  # the contract says: do not redirect
                headers={"User-Agent": _user_agent()},
                trust_env=False,
            )
        return client

    def _headers(self, request: WebhookRequest) -> dict[str, str]:
        headers: dict[str, str] = {}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.header()
        return headers

    async def _explain(self, exc: BaseException, url: str) -> str | None:
        """Why TLS refuses the server, or ``None`` when the failure looks transient."""
        verification = find_verification_error(exc)
        parts = urlsplit(url)
        host = parts.hostname or ""
        async with self._explain_lock:
            if self.refusal is not None:
                return self.refusal
            if verification is None:
                tls_error = find_ssl_error(exc)
                assert tls_error is not None
                return await asyncio.to_thread(
                    diagnose_handshake, host, parts.port or 443, tls_error, timeout=self._timeout
                )
            try:
                peer = await asyncio.to_thread(fetch_peer_chain, host, parts.port or 443, timeout=self._timeout)
            except (OSError, ValueError):
                peer = None
            return explain_untrusted(verification, peer, host)

    async def _attempt(self, request: WebhookRequest, number: int, lane: int) -> tuple[SendAttempt, str | None]:
        """One exchange; the second value is a TLS refusal message, if any."""
        client = self._client(lane)
        started = time.monotonic()
        t0 = time.perf_counter()
        try:
            response = await client.request(
                request.method, request.url, content=request.body, headers=self._headers(request)
            )
        except httpx.TimeoutException:
            return SendAttempt(number, None, TIMEOUT, started, time.perf_counter() - t0), None
        except httpx.TransportError as exc:
            latency = time.perf_counter() - t0
            refusal = await self._explain(exc, request.url) if find_ssl_error(exc) is not None else None
            if refusal is not None:
                return SendAttempt(number, None, TLS_REFUSED, started, latency), refusal
            return SendAttempt(number, None, CONNECTION_ERROR, started, latency), None
        return SendAttempt(number, response.status_code, None, started, time.perf_counter() - t0), None

    async def send(self, request: WebhookRequest, *, lane: int = 0) -> Outcome:
        """Send one call, retrying as ``backoff`` says; never raises for HTTP or network trouble.

        Calls on the same ``lane`` share one connection, so give concurrent calls distinct lanes.
        """
        outcome = Outcome(
            label=request.label,
            method=request.method,
            url=request.url,
            message_id=request.message_id,
            duplicate=request.duplicate,
        )
        number = 0
        while True:
            number += 1
            attempt, refusal = await self._attempt(request, number, lane)
            outcome.attempts.append(attempt)
            if refusal is not None:
                self.refusal = self.refusal or refusal
                outcome.result, outcome.detail = TLS_REFUSED, refusal
                self._notify(outcome, attempt, None)
                break
            outcome.result = str(attempt.status) if attempt.status is not None else str(attempt.error)
            retryable = classify(attempt.status) is Verdict.RETRY
            if not retryable or self.backoff.give_up(number) is not None or self.refusal:
                if retryable:
                    outcome.detail = f"gave up after {number - 1} retries"
                self._notify(outcome, attempt, None)
                break
            wait = self.backoff.delay(number)
            self._notify(outcome, attempt, wait)
            await asyncio.sleep(wait)
        if self._observer is not None:
            self._observer.finished(outcome)
        return outcome

    def _notify(self, outcome: Outcome, attempt: SendAttempt, next_wait: float | None) -> None:
        if self._observer is not None:
            self._observer.attempted(outcome, attempt, next_wait)

    async def run(self, requests: Iterable[WebhookRequest], *, concurrency: int = 1) -> Tally:
        """Send every call with ``concurrency`` tasks; stops early once TLS refuses the server."""
        tally = Tally()
        source: Iterator[WebhookRequest] = iter(requests)

        async def worker(lane: int) -> None:
            # One event loop thread: taking the next item between awaits needs no lock.
            for request in source:
                outcome = await self.send(request, lane=lane)
                tally.add(outcome)
                if self.refusal is not None:
                    return

        tally.start()
        async with asyncio.TaskGroup() as group:
            for lane in range(max(1, concurrency)):
                group.create_task(worker(lane))
        tally.stop(refusal=self.refusal)
        return tally
