"""The one exception hierarchy of tcwebhook.

::

    TcwebhookError
    ├── StartupError                 configuration or environment unusable; the CLI exits 3
    │   └── CertificateError         the TLS chain, key or validity is wrong
    ├── ContractError                a webhook request that can never succeed (4xx)
    │   ├── InvalidBody              400: not JSON/XML, no eventName, wrong shape
    │   ├── UnsupportedMediaType     415
    │   └── BodyTooLarge             413
    ├── StoreError                   the inbox failed
    │   ├── StoreUnavailable         transient (locked, read-only, disk full, down): 503
    │   └── EventNotFound            no such event / quarantine entry
    ├── DeliveryError                a sink could not deliver an event
    │   ├── PermanentError           never retried: dead-letter at once
    │   └── TransientError           retried with back-off
    ├── AcmeError                    an ACME order or renewal failed (CA refused or down, challenge failed)
    ├── TradecloudApiError           the Tradecloud API answered unexpectedly
    │   └── TradecloudNotFound       404 for an order, shipment or document
    └── DownloadRefused              a document download the sink's policy forbids (URL, size)

The HTTP layer maps these to status codes in one place (``receiver.app``); anything not
in this tree that escapes a request handler becomes 503, never 500, because Tradecloud
treats a 500 as final and drops the event.
"""

from __future__ import annotations


class TcwebhookError(Exception):
    """Root of every error raised on purpose by tcwebhook."""


class StartupError(TcwebhookError):
    """The service cannot start; the message is one sentence saying what and how to fix it."""

    exit_code = 3


class CertificateError(StartupError):
    """The configured certificate, key or chain is unusable."""


class ContractError(TcwebhookError):
    """A request that breaks the webhook contract; resending it cannot succeed."""

    status_code = 400


class InvalidBody(ContractError):
    """The body is not a webhook body we can read."""

    status_code = 400


class UnsupportedMediaType(ContractError):
    """The Content-Type is neither JSON nor XML (or not UTF-8)."""

    status_code = 415


class BodyTooLarge(ContractError):
    """The body exceeds the configured limit."""

    status_code = 413


class StoreError(TcwebhookError):
    """The inbox failed."""


class StoreUnavailable(StoreError):
    """A transient store failure: the sender must retry later (503)."""


class EventNotFound(StoreError):
    """No event or quarantine entry with that id."""


class DeliveryError(TcwebhookError):
    """A sink could not deliver an event."""


class PermanentError(DeliveryError):
    """Raised by a sink or handler when retrying can never succeed: dead-letter at once."""


class TransientError(DeliveryError):
    """Raised by a sink when a later attempt may succeed."""


class AcmeError(TcwebhookError):
    """An order or renewal failed (the CA refused, is down, or a challenge was not validated)."""


class TradecloudApiError(TcwebhookError):
    """The Tradecloud API failed or answered something unexpected."""


class TradecloudNotFound(TradecloudApiError):
    """The Tradecloud API answered 404 for the object asked for."""


class DownloadRefused(TcwebhookError):
    """A document download refused by policy: its URL or host is not allowed, or it is too large.

    Resending the same event cannot change that, so the delivery is dead-lettered with the reason.
    """
