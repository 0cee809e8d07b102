"""Where committed events go: a python handler, an HTTP endpoint or a folder the ERP imports, an
SFTP server, a RabbitMQ exchange or an SQL staging table.

The sftp, amqp and sql sinks (``sinks.sftp``, ``sinks.amqp``, ``sinks.sql``) are imported by the
factory only when configured, so their client libraries load only where they are used.
"""

from tcwebhook.sinks.base import EventSink, Sink
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.factory import build_sink, build_sinks
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.filters import SinkFilter
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.python import PythonSink

__all__ = [
    "Event",
    "EventSink",
    "FilesSink",
    "HttpSink",
    "PythonSink",
    "Sink",
    "SinkFilter",
    "build_sink",
    "build_sinks",
]
