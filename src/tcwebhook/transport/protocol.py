"""The server's HTTP/1.1 protocol: uvicorn's httptools protocol with the limits uvicorn lacks.

uvicorn bounds neither the size of a request head nor the time a client may take to send it.
httptools joins the fragments of one header value as they arrive, so a 64 MiB header cost
seconds of CPU (the work grows with the square of its size) and a million short header lines
some 110 MiB, while every other connection waited. Here the head is counted while it arrives,
before the parser joins anything more than one slice: past a limit the request is answered 414 or
431 with ``Connection: close`` and the connection is closed without reading the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tcwebhook.config import ServerSettings
from tcwebhook.transport.gate import Admission

# Bytes of a request head handed to the parser at once; bounds what it may hold past a limit.
HEAD_SLICE = 64 * 1024


def _refusal(status: int, phrase: str, error: str, detail: str) -> bytes:
    body = orjson.dumps({"error": error, "detail": detail})
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "cache-control: no-store\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


class _OverLimit(Exception):
    """Raised in a parser callback to stop parsing a request head that is over a limit."""


class _Body:
    """Whether a request's body has been read to its end (shared by the protocol and its app call)."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False


_BODY = "tcwebhook.body"
_CLOSE = (b"connection", b"close")
HEALTH_PATH = "/healthz"
_HEALTH_ONLY_BODY = b'{"error":"forbidden","detail":"this connection names no sender: only /healthz is answered"}'
_HEALTH_ONLY_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_HEALTH_ONLY_BODY)).encode()),
    (b"connection", b"close"),
]


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """The ``[server]`` limits a connection enforces, and the refusals sent when one is passed."""

    timeout: float  # whole request: head and body
    line: int
    header: int
    count: int
    head: int  # raw bytes of a head: request line and header fields plus their separators
    refusals: dict[int, bytes]

    @classmethod
    def of(cls, server: ServerSettings) -> HeadLimits:
        line, header, count = server.max_request_line_bytes, server.max_header_bytes, server.max_header_count
        refusals = {
            414: _refusal(414, "URI Too Long", "uri_too_long", f"request line over {line} bytes"),
            431: _refusal(
                431,
                "Request Header Fields Too Large",
                "headers_too_large",
                f"headers over {header} bytes or {count} fields",
            ),
            503: _refusal(503, "Service Unavailable", "timeout", "request too slow, retry later").replace(
                b"connection: close", b"retry-after: 5\r\nconnection: close"
            ),
        }
        return cls(server.request_timeout, line, header, count, line + header + 4 * count, refusals)


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a whole-request deadline and bounded request heads.

    ``build_protocol`` makes the subclass uvicorn is given, with the ``[server]`` limits; the
    listener in front (``transport.gate``) admits connections and may close idle ones.
    """

    limits: ClassVar[HeadLimits]
    admission: Admission | None = None
    # Per-connection state as class defaults: uvicorn's __init__ stays untouched.
    _deadline: asyncio.TimerHandle | None = None
    _in_head = True  # between requests, or reading a request line and headers
    _head_bytes = 0
    _line_bytes = 0
    _header_bytes = 0
    _header_count = 0
    _over: int | None = None  # the status a request over a limit is refused with
    _body: _Body | None = None
    _idle = False
    _inner_app: Any = None

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.admission is not None:
            self.client = self.admission.client  # the sender, also behind a PROXY header
        self._inner_app, self.app = self.app, self._app
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.admission is not None:
            self.admission.busy(self)
            self.admission.release()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        # Idle between requests is the keep-alive timer's job, armed by the base class.
        self._disarm()
        if self.admission is not None and self.timeout_keep_alive_task is not None:
            self._idle = True
            self.admission.idle(self)

    # -- whole-request deadline ---------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        # uvicorn only times out idle keep-alive connections: a client sending one byte a
        # minute, of its head or of its body, would otherwise hold a connection forever.
        if self.transport.is_closing():
            return
        if self.admission is not None:
            self.admission.closed("request_timeout")
        if not self._in_head and self.cycle is not None and not self.cycle.response_started:
            self.transport.write(self.limits.refusals[503])  # the app is still waiting for the body
        self.transport.close()

    # -- replies before the body was read -------------------------------------------------------

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        body: _Body = scope["extensions"][_BODY]
        if self.admission is not None and self.admission.health_only and scope["path"] != HEALTH_PATH:
            await send({"type": "http.response.start", "status": 403, "headers": _HEALTH_ONLY_HEADERS})
            await send({"type": "http.response.body", "body": _HEALTH_ONLY_BODY})
            return

        async def send_closing(message: Any) -> None:
            # Answered before the whole body arrived (401, 413, ...): the rest of the body
            # would keep the connection busy, so it is closed after the answer.
            if message["type"] == "http.response.start" and not body.complete:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self._inner_app(scope, receive, send_closing)

    # -- request heads ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._idle:
            self._idle = False
            if self.admission is not None:
                self.admission.busy(self)
        if not self._in_head:
            super().data_received(data)
            return
        if len(data) <= HEAD_SLICE:
            self._feed_head(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), HEAD_SLICE):
            if self.transport.is_closing():
                return
            piece = view[start : start + HEAD_SLICE]
            if self._in_head:
                self._feed_head(piece)
            else:
                super().data_received(piece)  # httptools reads any buffer

    def _feed_head(self, data: bytes | memoryview) -> None:
        self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[arg-type] # httptools reads any buffer
        # Checked after feeding: the bytes may end the head and start the body. Either way
        # the parser holds at most one slice beyond the limit.
        if self._in_head and self._head_bytes > self.limits.head and not self.transport.is_closing():
            self._refuse(431)

    def _refuse(self, status: int) -> None:
        if self.transport.is_closing():
            return
        if self.admission is not None:
            self.admission.closed("head_too_large")
        # Not while an earlier pipelined response is being written: it would be cut in two.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(self.limits.refusals[status])
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if self._over is not None:  # the parser stopped because a callback found a limit
            self._refuse(self._over)
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._line_bytes = self._header_bytes = self._header_count = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._line_bytes += len(url)
        if self._line_bytes > self.limits.line:
            self._over = 414
            raise _OverLimit
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self.limits.count or self._header_bytes > self.limits.header:
            self._over = 431
            raise _OverLimit
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body = _Body()
        self.scope["extensions"] = {_BODY: self._body}  # type: ignore[dict-item]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body is not None:
            self._body.complete = True
        self._disarm()  # the whole request is in: the deadline is met
        self._in_head = True  # what follows is the next request's head

    def close_idle(self) -> None:
        """Close the connection while it waits for a next request (the server needs the room)."""
        if not self.transport.is_closing():
            self.transport.close()

    @classmethod
    def factory(cls, config: Config, server_state: ServerState) -> Callable[[Admission], LimitedProtocol]:
        """Protocol instances for admitted connections, as uvicorn's listener would make them."""

        def make(admission: Admission) -> LimitedProtocol:
            protocol = cls(config=config, server_state=server_state, app_state={})
            protocol.admission = admission
            return protocol

        return make


def build_protocol(server: ServerSettings) -> type[LimitedProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with the limits of ``[server]``."""
    return type("Limited", (LimitedProtocol,), {"limits": HeadLimits.of(server)})
