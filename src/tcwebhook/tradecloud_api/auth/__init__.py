"""Authentication against the Tradecloud API: login, token refresh, logout."""

from __future__ import annotations

from tcwebhook.tradecloud_api.auth.tokens import Sender, TokenManager, TokenPair

__all__ = ["Sender", "TokenManager", "TokenPair"]
