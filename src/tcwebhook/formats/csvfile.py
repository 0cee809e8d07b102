"""CSV as ERP imports read it: RFC 4180 quoting, CRLF line ends, UTF-8 with an optional BOM."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tcwebhook.formats.typed import decimal_text

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class CsvOptions:
    delimiter: str = ","
    decimal: str = "."
    header: bool = True
    bom: bool = False


def cell(value: Any, decimal_point: str = ".") -> str:
    """One value as CSV text: exact numbers with the configured decimal mark, ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return decimal_text(value, decimal_point)
    if isinstance(value, list | tuple):
        return " ".join(cell(v, decimal_point) for v in value)
    return str(value)


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], options: CsvOptions) -> bytes:
    out = io.StringIO(newline="")
    if options.bom:
        out.write(_BOM)
    writer = csv.writer(out, delimiter=options.delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    if options.header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(name), options.decimal) for name in columns])
    return out.getvalue().encode("utf-8")
