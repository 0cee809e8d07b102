"""The identifier rule for order, shipment and document ids, wherever they arrive.

Tradecloud builds an order id from the buyer company's UUID and the purchase order number, and
keeps the number's characters (``…-PO-05-#51388860``; ``/``, spaces, ``%``, ``&``, ``+`` and
non-ASCII letters occur in real PO numbers). So an id may hold any printable character: only an
empty id, an id longer than ``ID_MAX_LENGTH`` and control characters (which no ERP number holds
and which would break log lines and terminals) are refused. Where an id leaves as text it is
encoded for that place: ``api_segment`` for an API path, the files sink's name escaping for a
file name, ``terminal.visible`` for a terminal.

One rule, used by the receiver to refuse a bad id and by the OpenAPI document to declare it, so
the two cannot drift.
"""

from __future__ import annotations

import re
from urllib.parse import quote

ID_MAX_LENGTH = 200
# C0 and C1 controls, DEL, the line and paragraph separators, and lone surrogates (which cannot
# be written as UTF-8). ECMA-262 syntax for the OpenAPI document; Python matches the same class.
_REFUSED_CLASS = r"\u0000-\u001f\u007f-\u009f\u2028\u2029\ud800-\udfff"
ID_PATTERN = rf"^[^{_REFUSED_CLASS}]{{1,{ID_MAX_LENGTH}}}$"
_REFUSED = re.compile(rf"[{_REFUSED_CLASS}]")


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is a usable object id: 1 to ``ID_MAX_LENGTH`` printable characters."""
    return 0 < len(value) <= ID_MAX_LENGTH and _REFUSED.search(value) is None


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a usable id (one phrase), or ``None`` when it is."""
    if not value:
        return "is empty"
    if len(value) > ID_MAX_LENGTH:
        return f"is longer than {ID_MAX_LENGTH} characters"
    if _REFUSED.search(value) is not None:
        return "holds a control character"
    return None


def api_segment(value: str) -> str:
    """``value`` as one path segment of a Tradecloud API URL: every reserved character
    percent-encoded (``#`` as ``%23``, ``/`` as ``%2F``), and ``.``/``..`` encoded too, since a
    URL library would otherwise resolve them as the current or parent folder."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment
