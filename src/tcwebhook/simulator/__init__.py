"""The Tradecloud side of a webhook, simulated: sample bodies, the sender and its TLS doctor.

``SampleFactory`` builds consistent bodies for every documented event name, ``Sender`` sends
them the way Tradecloud does (TLS 1.2+, verified certificates, the documented retry rule) and
``check_tls`` grades a webhook URL's TLS set-up from the sender's point of view.
"""

from tcwebhook.simulator.calls import BodyFormat, WebhookRequest, encode, file_requests, plan_requests
from tcwebhook.simulator.credentials import Credentials
from tcwebhook.simulator.samples import Family, SampleEvent, SampleFactory, parse_selection
from tcwebhook.simulator.sender import Outcome, SendAttempt, Sender, Verdict, classify, require_https, sender_backoff
from tcwebhook.simulator.stats import Tally
from tcwebhook.simulator.tlscheck import Check, Status, TlsReport, check_tls
from tcwebhook.transport.certs import client_context

__all__ = [
    "BodyFormat",
    "Check",
    "Credentials",
    "Family",
    "Outcome",
    "SampleEvent",
    "SampleFactory",
    "SendAttempt",
    "Sender",
    "Status",
    "Tally",
    "TlsReport",
    "Verdict",
    "WebhookRequest",
    "check_tls",
    "classify",
    "client_context",
    "encode",
    "file_requests",
    "parse_selection",
    "plan_requests",
    "require_https",
    "sender_backoff",
]
