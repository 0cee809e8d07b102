"""tcwebhook: receive Tradecloud order and shipment webhooks and land every event in the ERP.

The public surface for ERP code is small: handlers receive an ``Event`` and raise
``PermanentError`` when retrying can never succeed.
"""

from tcwebhook.config import Settings, load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, TcwebhookError, TransientError
from tcwebhook.sinks.event import Event

__version__ = "0.1.0"

__all__ = [
    "Event",
    "EventKind",
    "PermanentError",
    "Settings",
    "TcwebhookError",
    "TransientError",
    "__version__",
    "load_settings",
]
