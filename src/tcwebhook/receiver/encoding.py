"""Request bodies sent with ``Content-Encoding``: gzip and deflate decoded, within the body limit.

A sender may compress its body. Refusing it with 400 would make Tradecloud drop the event for
good, so the two codings every HTTP client produces are decoded; any other coding is answered
415 with ``Accept-Encoding`` (RFC 7694 §3). Decoding is bounded: output beyond the body limit
stops the decompressor at once (413), so a compression bomb costs no more than the limit.
"""

from __future__ import annotations

import zlib

from tcwebhook.errors import BodyTooLarge, InvalidBody, UnsupportedMediaType

ACCEPT_ENCODING = b"gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS  # gzip header and trailer
_ZLIB = zlib.MAX_WBITS  # RFC 1950, what "deflate" means in HTTP
_RAW = -zlib.MAX_WBITS  # bare RFC 1951 data, which some clients send as "deflate" anyway
_CODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


class UnsupportedContentEncoding(UnsupportedMediaType):
    """A content coding other than gzip, deflate or identity (415, RFC 7694)."""


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with every listed content coding undone (last applied, first undone).

    Raises ``UnsupportedContentEncoding`` (415), ``BodyTooLarge`` (413) when the decoded body
    exceeds ``limit`` bytes, and ``InvalidBody`` (400) for data that is not what it claims.
    """
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in _CODINGS:
            raise UnsupportedContentEncoding(
                f"Content-Encoding {coding!r} is not supported: send gzip, deflate or an unencoded body"
            )
    for coding in reversed(codings):
        body = _inflate(body, coding, limit)
    return body


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    wbits = _CODINGS[coding]
    if wbits == _ZLIB and not _looks_like_zlib(data):
        wbits = _RAW
    out = bytearray()
    while True:  # gzip allows several members one after the other
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error:
            raise InvalidBody(f"body is not valid {coding} data") from None
        if len(out) > limit:
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
