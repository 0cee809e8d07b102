"""Output formats of the sinks: the bytes as received, typed JSON, CSV rows, or a user template.

Every sink renders through ``Output`` (``Output.from_settings(cfg)`` once, then
``output.render(event, entry)`` per delivery).
"""

from tcwebhook.formats.csvfile import CsvOptions
from tcwebhook.formats.output import BOOK_KEY, Output, OutputOptions, Rendered, body_extension, render
from tcwebhook.formats.rows import ORDER_COLUMNS, SHIPMENT_COLUMNS
from tcwebhook.formats.typed import event_data, json_bytes

__all__ = [
    "BOOK_KEY",
    "ORDER_COLUMNS",
    "SHIPMENT_COLUMNS",
    "CsvOptions",
    "Output",
    "OutputOptions",
    "Rendered",
    "body_extension",
    "event_data",
    "json_bytes",
    "render",
]
