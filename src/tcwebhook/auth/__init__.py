"""Authentication of the sender (Tradecloud) by HTTP Basic or a static Bearer token."""

from tcwebhook.auth.credentials import Authenticator, AuthResult, redact_headers
from tcwebhook.auth.failures import FailureLog

__all__ = ["AuthResult", "Authenticator", "FailureLog", "redact_headers"]
