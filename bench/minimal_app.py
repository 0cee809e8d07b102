"""The parse-only reference: an ASGI app that reads the body, parses the JSON and answers 202.

It runs on the receiver's own stack (uvicorn + httptools + uvloop, the receiver's TLS context
from ``tcwebhook.transport.tls.build_server_context``), so "ours / minimal" measures what
authentication, contract validation, durable storage and logging cost on top of HTTP and TLS.

Run as ``python -m bench.minimal_app --port P --cert CERT --key KEY``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from tcwebhook.transport.tls import build_server_context

Message = MutableMapping[str, Any]

_OK = b'{"status":"stored","eventId":"00000000000000000000000000"}'
_BAD = b'{"error":"invalid_body"}'


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    status, payload = 202, _OK
    if scope["method"] == "POST":
        try:
            orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            status, payload = 400, _BAD
    else:
        status, payload = 200, b'{"status":"ok"}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="parse-only ASGI reference server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args(argv)
    # The same uvicorn settings as the receiver's transport.server, minus its extra protocol timer.
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="none",
        http="httptools",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=15,
        limit_concurrency=1000,
    )
    config.load()
    config.ssl = build_server_context(args.cert, args.key)
    server = uvicorn.Server(config)
    import uvloop

    uvloop.run(server.serve())


if __name__ == "__main__":
    main()
