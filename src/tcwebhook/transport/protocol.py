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

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tcwebhook.config import ServerSettings

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


def build_protocol(server: ServerSettings) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with the limits of ``[server]``."""
    timeout = server.request_timeout
    line_limit = server.max_request_line_bytes
    header_limit = server.max_header_bytes
    count_limit = server.max_header_count
    # Raw bytes of a head: request line and header fields plus their separators.
    head_limit = line_limit + header_limit + 4 * count_limit
    refusals = {
        414: _refusal(414, "URI Too Long", "uri_too_long", f"request line over {line_limit} bytes"),
        431: _refusal(
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            f"headers over {header_limit} bytes or {count_limit} fields",
        ),
    }

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        # Per-connection state as class defaults: uvicorn's __init__ stays untouched.
        _header_timer: asyncio.TimerHandle | None = None
        _in_head = True  # between requests, or reading a request line and headers
        _head_bytes = 0
        _line_bytes = 0
        _header_bytes = 0
        _header_count = 0
        _over: int | None = None  # the status a request over a limit is refused with

        # -- slow heads -------------------------------------------------------------------------

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            # uvicorn only times out idle keep-alive connections; a client sending one header byte
            # a minute would otherwise hold a connection forever.
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        # -- large heads ------------------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
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
            if self._in_head and self._head_bytes > head_limit and not self.transport.is_closing():
                self._refuse(431)

        def _refuse(self, status: int) -> None:
            if self.transport.is_closing():
                return
            # Not while an earlier pipelined response is being written: it would be cut in two.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(refusals[status])
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
            if self._line_bytes > line_limit:
                self._over = 414
                raise _OverLimit
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if self._header_count > count_limit or self._header_bytes > header_limit:
                self._over = 431
                raise _OverLimit
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # what follows is the next request's head

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Idle between requests is the keep-alive timer's job, armed by the base class.
            self._disarm()

    return LimitedHttpToolsProtocol
