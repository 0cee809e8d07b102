"""The store of a running server, read the way an operator's tooling would (``open_inbox`` on its config)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tests.support.servers import RunningServer

from tcwebhook.config import load_settings
from tcwebhook.inbox.base import Attempt, EventFilter, QuarantineEntry, StoredEvent
from tcwebhook.inbox.factory import open_inbox


def inbox_events(server: RunningServer, limit: int = 10_000) -> Sequence[StoredEvent]:
    async def read() -> Sequence[StoredEvent]:
        assert server.config_path is not None
        inbox = open_inbox(load_settings(server.config_path))
        await inbox.open()
        try:
            return await inbox.list_events(EventFilter(limit=limit))
        finally:
            await inbox.close()

    return asyncio.run(read())


def quarantined(server: RunningServer) -> Sequence[QuarantineEntry]:
    async def read() -> Sequence[QuarantineEntry]:
        assert server.config_path is not None
        inbox = open_inbox(load_settings(server.config_path))
        await inbox.open()
        try:
            return await inbox.list_quarantined(limit=10_000)
        finally:
            await inbox.close()

    return asyncio.run(read())


def read_events(config: Path, limit: int = 1_000_000) -> Sequence[StoredEvent]:
    """Every stored event, through the public inbox API (a second process may be writing)."""

    async def read() -> Sequence[StoredEvent]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return await inbox.list_events(EventFilter(limit=limit))
        finally:
            await inbox.close()

    return asyncio.run(read())


def read_quarantine(config: Path, limit: int = 100_000) -> Sequence[QuarantineEntry]:
    async def read() -> Sequence[QuarantineEntry]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return await inbox.list_quarantined(limit=limit)
        finally:
            await inbox.close()

    return asyncio.run(read())


def pending_count(config: Path) -> int:
    async def read() -> int:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return int((await inbox.count_by_status())["pending"])
        finally:
            await inbox.close()

    return asyncio.run(read())


def attempts_of(config: Path, event_ids: Sequence[str]) -> dict[str, Sequence[Attempt]]:
    """The recorded delivery attempts of each event."""

    async def read() -> dict[str, Sequence[Attempt]]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return {eid: await inbox.attempts(eid) for eid in event_ids}
        finally:
            await inbox.close()

    return asyncio.run(read())


def by_event_id(server: RunningServer, event_id: str) -> StoredEvent:
    matches = [e for e in inbox_events(server) if e.event_id == event_id]
    assert len(matches) == 1
    return matches[0]
