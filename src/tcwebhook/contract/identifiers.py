"""The identifier rule for ids that arrive in a URL (GET triggers) and are sent on to the API.

One rule, used by the receiver to refuse a bad id and by the OpenAPI document to declare it, so
the two cannot drift. Tradecloud ids are UUIDs; legacy ids and test ids are short tokens.
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 200
# ECMA-262 syntax for the OpenAPI document; Python matches it with ``fullmatch``, where ``$``
# would otherwise also match before a trailing newline.
ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{ID_MAX_LENGTH - 1}}}$"
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is a usable object id (the whole string, no trailing newline)."""
    return _ID.fullmatch(value) is not None
