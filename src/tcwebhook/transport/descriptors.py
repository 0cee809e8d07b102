"""The open-file limit (``RLIMIT_NOFILE``) checked against what the configuration will hold open.

Every connection is a file descriptor, and so are the console's connections, the store's files or
pooled connections, the log, the sinks' outbound connections. A limit below ``max_connections``
makes the server run out of descriptors under load instead of refusing the surplus connections
politely, so ``serve`` raises the soft limit to the hard one and refuses to start when even that
is too low.
"""

from __future__ import annotations

import resource

import structlog

from tcwebhook.config import Settings
from tcwebhook.errors import StartupError

log = structlog.get_logger(__name__)

CONSOLE_CONNECTIONS = 200  # the console listener's own cap (console.server)
SQLITE_FILES = 16  # database, WAL and shared-memory files, for the writer and each reader
# Logs, certificates read on reload, sinks' and the Tradecloud client's connections, the
# dispatcher's files, Python's own: what a running server holds besides its clients.
HEADROOM = 256


def descriptors_needed(settings: Settings) -> int | None:
    """Descriptors the configuration can hold open at once; None when ``max_connections`` is unlimited."""
    if settings.server.max_connections is None:
        return None
    store = settings.store.pool_max + 2 if settings.store_url.startswith("postgres") else SQLITE_FILES
    console = CONSOLE_CONNECTIONS if settings.console.enabled else 0
    return settings.server.max_connections + console + store + HEADROOM


def ensure_open_file_limit(settings: Settings) -> int:
    """Raise the soft limit to the hard one; StartupError when it cannot cover ``descriptors_needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    need = descriptors_needed(settings)
    if need is not None and soft != resource.RLIM_INFINITY and soft < need:
        raise StartupError(
            f"The open-file limit (RLIMIT_NOFILE) is {soft}, but [server] max_connections = "
            f"{settings.server.max_connections} with the console, the store and headroom needs {need}: raise it "
            "(LimitNOFILE= in the systemd unit, ulimit -n) or lower [server] max_connections."
        )
    return int(soft)
