"""Pick the inbox implementation for ``Settings.store_url``."""

from __future__ import annotations

from collections.abc import Sequence

from tcwebhook.config import Settings
from tcwebhook.errors import StartupError
from tcwebhook.filemodes import PRIVATE_DIR, make_dirs, restrict
from tcwebhook.inbox.base import Inbox
from tcwebhook.inbox.sqlite import SqliteInbox


def open_inbox(
    settings: Settings, *, sink_names: Sequence[str] | None = None, hold_new: bool | None = None
) -> Inbox:
    """The (not yet opened) inbox for the configured store URL; ``await inbox.open()`` next.

    New events get a delivery for each sink (``sink_names``, default: the ``[[sinks]]`` names).
    ``hold_new`` (default: synchronous delivery mode) makes them wait for the request that stored
    them (``Dispatcher.deliver_now``) instead of the background loop.
    """
    # The inbox, documents and dev credentials live here: whole orders, for this user only.
    try:
        make_dirs(settings.data_dir, PRIVATE_DIR)
        restrict(settings.data_dir, PRIVATE_DIR)
    except OSError as exc:
        raise StartupError(
            f"Cannot create the data directory {settings.data_dir} ({exc.strerror}): "
            "check data_dir and the permissions of its parent."
        ) from None
    url = settings.store_url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    sinks = tuple(s.name for s in settings.sinks) if sink_names is None else tuple(sink_names)
    hold = settings.delivery.mode == "sync" if hold_new is None else hold_new
    if scheme in ("", "sqlite"):
        return SqliteInbox(url, settings.store, sinks=sinks, hold_new=hold)
    if scheme in ("postgres", "postgresql"):
        from tcwebhook.inbox.postgres import PostgresInbox  # only PostgreSQL users pay for the driver

        return PostgresInbox(url, settings.store, sinks=sinks, hold_new=hold)
    raise StartupError(
        f"Unknown store URL scheme {scheme!r} in [store] url: use sqlite:///<path> or "
        "postgresql://USER:PASSWORD@HOST:PORT/DBNAME."
    )
