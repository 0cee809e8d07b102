"""The request headers the receiver reads before the body: found in one pass."""

from __future__ import annotations

from collections.abc import Iterable


def content_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """The first Content-Type, the first Content-Length and every Content-Encoding (joined as
    ``redact_headers`` joins them), found in one pass over the headers."""
    content_type: bytes | None = None
    length: bytes | None = None
    encodings: list[bytes] = []
    for key, value in headers:
        if key == b"content-type":
            if content_type is None:
                content_type = value
        elif key == b"content-length":
            if length is None:
                length = value
        elif key == b"content-encoding":
            encodings.append(value)
    return (
        None if content_type is None else content_type.decode("latin-1"),
        None if length is None else length.decode("latin-1"),
        b", ".join(encodings).decode("latin-1") if encodings else None,
    )
