"""The operator console: a browser view of the inbox with replay, on its own HTTPS listener."""

from tcwebhook.console.app import ConsoleHooks, build_app
from tcwebhook.console.users import hash_password

__all__ = ["ConsoleHooks", "build_app", "hash_password"]
