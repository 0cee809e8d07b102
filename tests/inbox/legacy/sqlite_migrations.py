# The schema as tcwebhook created it up to version 4, kept as it was released so that tests
# can build databases of those versions (tests/inbox/test_migrations.py).
"""Versioned schema of the SQLite inbox, applied in order at open.

The schema version is ``PRAGMA user_version``. A migration is appended, never edited once
released: the list index + 1 is the version it brings the database to.

Times are REAL seconds since the epoch (UTC). ``events.body`` is the last column so scans of the
metadata never touch a large body's overflow pages.
"""

from __future__ import annotations

import sqlite3

from tcwebhook.errors import StartupError

_V1 = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        dedupe_key TEXT NOT NULL UNIQUE,
        received_at REAL NOT NULL,
        kind TEXT NOT NULL,
        event_name TEXT NOT NULL,
        status TEXT NOT NULL,
        key TEXT,
        order_id TEXT,
        shipment_id TEXT,
        purchase_order_number TEXT,
        shipment_number TEXT,
        message_id TEXT,
        last_updated_at TEXT,
        updated_us INTEGER,
        content_type TEXT NOT NULL,
        headers BLOB NOT NULL,
        body BLOB NOT NULL
    )
    """,
    # Small partial index: the operator's usual questions are about what is open or dead.
    "CREATE INDEX events_open ON events(status, seq) WHERE status IN ('pending', 'dead')",
    "CREATE INDEX events_key ON events(key, seq) WHERE key IS NOT NULL",
    "CREATE INDEX events_po ON events(purchase_order_number) WHERE purchase_order_number IS NOT NULL",
    "CREATE INDEX events_sn ON events(shipment_number) WHERE shipment_number IS NOT NULL",
    "CREATE INDEX events_received ON events(received_at)",
    """
    CREATE TABLE deliveries (
        seq INTEGER NOT NULL REFERENCES events(seq),
        sink TEXT NOT NULL,
        key TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        claim_owner TEXT,
        claim_expires REAL,
        last_error TEXT,
        force INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (seq, sink)
    ) WITHOUT ROWID
    """,
    # The ready queue: pending deliveries not waiting behind an earlier one of their key, so a
    # claim never wades through a long backlog held back by a failing head.
    "CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending' AND blocked = 0",
    # The head-of-line lookup of per-key FIFO: the oldest pending delivery of a (sink, key).
    "CREATE INDEX deliveries_head ON deliveries(sink, key, seq) WHERE status = 'pending'",
    "CREATE INDEX deliveries_dead ON deliveries(seq) WHERE status = 'dead'",
    """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        sink TEXT NOT NULL,
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration REAL NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT
    )
    """,
    "CREATE INDEX attempts_seq ON attempts(seq)",
    """
    CREATE TABLE watermarks (
        sink TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (sink, key, kind)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE quarantine (
        id TEXT PRIMARY KEY,
        received_at REAL NOT NULL,
        route TEXT NOT NULL,
        content_type TEXT NOT NULL,
        reason TEXT NOT NULL,
        status_code INTEGER NOT NULL,
        reprocessed_event_id TEXT,
        headers BLOB NOT NULL,
        body BLOB NOT NULL
    )
    """,
    "CREATE INDEX quarantine_received ON quarantine(received_at)",
)

# The operator console and the metrics: listings by status and by sink in arrival order (keyset
# pages on a million rows), per-sink backlog and dead-letter counts, a sink's last success and
# last error. ``events_status`` covers what the partial ``events_open`` did.
_V2 = (
    "CREATE INDEX events_status ON events(status, seq)",
    "DROP INDEX events_open",
    "CREATE INDEX deliveries_sink ON deliveries(sink, status, seq)",
    "CREATE INDEX attempts_sink ON attempts(sink, outcome, started_at)",
)

# Events per status, kept by triggers in the writing transaction: counting a million rows by
# status scans an index for ~100 ms, too slow for the console's overview at every load. Kind and
# exact event-name filters in arrival order without a scan (a kind that matches nothing scanned
# all events: 1.3 s at a million).
_V3 = (
    "CREATE INDEX events_kind ON events(kind, seq)",
    "CREATE INDEX events_name ON events(event_name, seq)",
    "CREATE TABLE event_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO event_counts (status, n) SELECT status, count(*) FROM events GROUP BY status",
    """
    CREATE TRIGGER event_counts_insert AFTER INSERT ON events BEGIN
        INSERT INTO event_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER event_counts_update AFTER UPDATE OF status ON events
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE event_counts SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO event_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER event_counts_delete AFTER DELETE ON events BEGIN
        UPDATE event_counts SET n = n - 1 WHERE status = OLD.status;
    END
    """,
)

# Reconciliation: which events it stored (a side table keeps the events rows and their hot
# indexes untouched), and named values / leases (high-water marks, one runner per store).
_V4 = (
    "CREATE TABLE reconciled (seq INTEGER PRIMARY KEY REFERENCES events(seq), detail TEXT)",
    """
    CREATE TABLE service_state (
        name TEXT PRIMARY KEY,
        value TEXT,
        owner TEXT,
        expires REAL
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the database up to ``SCHEMA_VERSION``; returns the version found before.

    Runs under ``BEGIN IMMEDIATE`` so two processes opening a new file at once migrate it once.
    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    found = schema_version(conn)
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            raise StartupError(
                f"The inbox {where} has schema version {found}, newer than this tcwebhook "
                f"knows ({SCHEMA_VERSION}): upgrade tcwebhook."
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
