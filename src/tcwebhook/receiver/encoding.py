"""Request bodies sent with ``Content-Encoding``: gzip and deflate decoded, within the body limit.

A sender may compress its body. Refusing it with 400 would make Tradecloud drop the event for
good, so the two codings every HTTP client produces are decoded; any other coding is answered
415 with ``Accept-Encoding`` (RFC 7694 §3), and so are more than ``MAX_CODINGS`` of them: no
client compresses a body three times, and every layer is another pass over up to the body limit.
Decoding is bounded: the bytes inflated by all layers together share one budget, the body limit,
and output beyond it stops the decompressor at once (413), so a compression bomb costs no more
than the limit. A body larger than ``INLINE_BYTES`` is decoded in a thread, so inflating it never
holds the event loop that answers every other request.
"""

from __future__ import annotations

import asyncio
import zlib

from tcwebhook.errors import BodyTooLarge, InvalidBody, UnsupportedMediaType

ACCEPT_ENCODING = b"gzip, deflate"
MAX_CODINGS = 2
# Compressed bytes decoded on the event loop: at most ~1,000:1 for deflate, so a few ms of work.
INLINE_BYTES = 16 * 1024
_GZIP = 16 + zlib.MAX_WBITS  # gzip header and trailer
_ZLIB = zlib.MAX_WBITS  # RFC 1950, what "deflate" means in HTTP
_RAW = -zlib.MAX_WBITS  # bare RFC 1951 data, which some clients send as "deflate" anyway
_CODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


class UnsupportedContentEncoding(UnsupportedMediaType):
    """A content coding other than gzip, deflate or identity, or too many of them (415, RFC 7694)."""


def codings_of(content_encoding: str | None) -> list[str]:
    """The codings to undo, in the order they were applied; raises ``UnsupportedContentEncoding``."""
    if not content_encoding:
        return []
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CODINGS:
        raise UnsupportedContentEncoding(
            f"Content-Encoding lists {len(codings)} codings: send at most {MAX_CODINGS} (gzip or deflate)"
        )
    for coding in codings:
        if coding not in _CODINGS:
            raise UnsupportedContentEncoding(
                f"Content-Encoding {coding[:40]!r} is not supported: send gzip, deflate or an unencoded body"
            )
    return codings


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with every listed content coding undone (last applied, first undone).

    Raises ``UnsupportedContentEncoding`` (415), ``BodyTooLarge`` (413) when the layers together
    inflate more than ``limit`` bytes, and ``InvalidBody`` (400) for data that is not what it claims.
    """
    return _decode(body, codings_of(content_encoding), limit)


async def decode_body_off_loop(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``decode_body``, in a thread once ``body`` is larger than ``INLINE_BYTES``."""
    codings = codings_of(content_encoding)
    if not codings:
        return body
    if len(body) <= INLINE_BYTES:
        return _decode(body, codings, limit)
    return await asyncio.to_thread(_decode, body, codings, limit)


def _decode(body: bytes, codings: list[str], limit: int) -> bytes:
    budget = limit
    for coding in reversed(codings):
        body = _inflate(body, coding, budget, limit)
        budget -= len(body)
    return body


def _inflate(data: bytes, coding: str, budget: int, limit: int) -> bytes:
    wbits = _CODINGS[coding]
    if wbits == _ZLIB and not _looks_like_zlib(data):
        wbits = _RAW
    out = bytearray()
    while True:  # gzip allows several members one after the other
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(data, budget + 1 - len(out))
        except zlib.error:
            raise InvalidBody(f"body is not valid {coding} data") from None
        if len(out) > budget:
            raise BodyTooLarge(f"decoded body exceeds {limit} bytes")
        if not decoder.eof:
            raise InvalidBody(f"body is truncated {coding} data")
        data = decoder.unused_data
        if wbits != _GZIP or not data:
            break
    if data:
        raise InvalidBody(f"body has trailing bytes after the {coding} data")
    return bytes(out)


def _looks_like_zlib(data: bytes) -> bool:
    # RFC 1950 §2.2: compression method 8 and a header checksum divisible by 31.
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
