"""The store URL as it may be shown and checked: passwords redacted in every form libpq reads.

A PostgreSQL password can sit in the URL's user info (``postgresql://user:secret@host/db``,
percent-encoded or not), in a query parameter (``?password=secret``), or in a libpq key=value
string (``host=db password=secret``). Every message and log line shows the URL through
``redact_url``; the log scrubber also removes whatever ``url_passwords`` finds, and the value of
``PGPASSWORD``. ``check_store_url`` refuses what would not parse, or would be taken for something
else, in one sentence that never repeats the URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# ``host=db password=x``: what libpq calls a connection string of keywords.
_KEY_VALUE = re.compile(r"^\s*[A-Za-z_]+\s*=")
# A keyword's value: single-quoted (backslash escapes), or up to the next space.
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
POSTGRES_SCHEMES = ("postgres", "postgresql")


def is_key_value(url: str) -> bool:
    return "://" not in url and _KEY_VALUE.match(url) is not None


def _userinfo(rest: str) -> tuple[str | None, str]:
    """(user info, what follows it) of the part after ``scheme://``.

    The last ``@`` ends the user info even when the password holds an unencoded ``/`` or ``@``,
    so such a password is still found (and redacted) whole.
    """
    at = rest.rfind("@")
    if at < 0:
        return None, rest
    return rest[:at], rest[at + 1 :]


def redact_url(url: str) -> str:
    """A store URL without its password (``user:***@``, ``password=***``), for messages and logs."""
    if is_key_value(url):
        return _KV_PASSWORD.sub(lambda m: m.group(1) + "***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, tail = _userinfo(rest)
    if userinfo is not None:
        user = userinfo.split(":", 1)[0]
        rest = (f"{user}:***@" if ":" in userinfo else f"{user}@") + tail
    head, mark, query = rest.partition("?")
    if mark:
        parts = ["password=***" if _is_password(p) else p for p in query.split("&")]
        rest = head + "?" + "&".join(parts)
    return f"{scheme}://{rest}"


def _is_password(param: str) -> bool:
    return param.partition("=")[0].strip().lower() == "password"


def url_passwords(url: str) -> list[str]:
    """The password a store URL carries, as written and decoded (for the log scrubber)."""
    found: list[str] = []
    if is_key_value(url):
        for match in _KV_PASSWORD.finditer(url):
            value = match.group(2)
            found.append(value)
            if value.startswith("'"):
                found.append(re.sub(r"\\(.)", r"\1", value.strip("'")))
    else:
        _, sep, rest = url.partition("://")
        if sep:
            userinfo, tail = _userinfo(rest)
            if userinfo is not None and ":" in userinfo:
                found.append(userinfo.split(":", 1)[1])
            query = (tail if userinfo is not None else rest).partition("?")[2]
            found += [p.partition("=")[2] for p in query.split("&") if _is_password(p)]
    return sorted({v for pw in found for v in (pw, unquote(pw), unquote(pw.replace("+", " "))) if v})


def check_store_url(url: str) -> None:
    """ValueError, in words that never repeat the URL, for a store URL that cannot be used as written."""
    if is_key_value(url):
        raise ValueError(
            "is a libpq key=value string, which would be taken as a SQLite file name: write it as "
            "postgresql://USER@HOST:PORT/DBNAME and give the password in PGPASSWORD or TCWEBHOOK_STORE__URL"
        )
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in POSTGRES_SCHEMES:
        return
    if _BAD_ESCAPE.search(url):
        raise ValueError("has a '%' that starts no percent escape: write a literal % as %25")
    userinfo, tail = _userinfo(rest)
    if userinfo is not None and any(c in userinfo for c in "/?#"):
        raise ValueError(
            "has a user or password with '/', '?' or '#' that is not percent-encoded: write them as "
            "%2F, %3F and %23"
        )
    query = tail.partition("?")[2]
    if any(p.count("=") > 1 for p in query.split("&")):
        raise ValueError("has a query parameter whose value holds '=': write it as %3D")
    try:
        parts = urlsplit(f"{scheme}://{'x@' if userinfo is not None else ''}{tail}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError("does not parse as postgresql://USER:PASSWORD@HOST:PORT/DBNAME (check the port)") from None
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except ProgrammingError:
        # libpq's own message quotes the URL, password included: it is not repeated.
        raise ValueError(
            "is not a connection URL libpq accepts (an unknown query parameter or an unclosed '[' "
            "are the usual causes)"
        ) from None
