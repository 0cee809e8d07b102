"""Authentication of the sender (Tradecloud): HTTP Basic, static Bearer tokens, OAuth access tokens."""

from tcwebhook.auth.credentials import Authenticator, AuthResult, redact_headers
from tcwebhook.auth.failures import FailureLimit, FailureLog
from tcwebhook.auth.jwks import JwksCache, JwksUnavailable
from tcwebhook.auth.oauth import OAuthValidator, looks_like_jwt

__all__ = [
    "AuthResult",
    "Authenticator",
    "FailureLimit",
    "FailureLog",
    "JwksCache",
    "JwksUnavailable",
    "OAuthValidator",
    "looks_like_jwt",
    "redact_headers",
]
