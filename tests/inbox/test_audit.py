"""The audit log on both stores: the hash chain holds, and an edited or deleted row is named."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from tcwebhook.audit import GENESIS, AuditEntry, AuditLog, entry_hash, verify
from tcwebhook.inbox.base import Inbox

from .conftest import MakeInbox, order_event

pytestmark = pytest.mark.anyio


def _edit(where: Path | str, sql: str) -> None:
    """Change the table behind the store's back, as someone with database access could."""
    if isinstance(where, Path):
        with sqlite3.connect(where) as conn:
            conn.execute(sql)
    else:
        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


async def _fill(inbox: Inbox, n: int) -> None:
    log = AuditLog(inbox, secrets=["s3cret-value"])
    for i in range(n):
        await log.record(AuditEntry(actor=f"user{i % 2}", source="192.0.2.7", action="events.replay",
                                    target=f"event-{i}", detail={"events": i, "note": "with s3cret-value"}))


async def test_entries_chain_from_the_genesis_hash(inbox: Inbox) -> None:
    await _fill(inbox, 5)
    records = await inbox.audit_entries()
    assert [r.target for r in records] == [f"event-{i}" for i in range(5)]
    assert records[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
    first = records[0]
    assert first.hash == entry_hash(GENESIS, first.at, first.actor, first.source, first.action, first.target,
                                    first.outcome, first.detail)
    assert "s3cret-value" not in first.detail and "[redacted]" in first.detail
    report = await verify(inbox)
    assert (report.checked, report.broken) == (5, None)
    assert [r.actor for r in await inbox.audit_entries(actor="user1")] == ["user1", "user1"]
    assert await inbox.audit_entries(since=time.time() + 60) == []


@pytest.mark.parametrize(
    ("sql", "seq", "reason"),
    [
        ("UPDATE audit SET actor = 'someone-else' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit SET detail = '{}' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM audit WHERE seq = 2", 3, "deleted"),
    ],
)
async def test_an_edited_or_deleted_row_is_named(
    inbox: Inbox, store_location: Path | str, sql: str, seq: int, reason: str
) -> None:
    await _fill(inbox, 5)
    _edit(store_location, sql)
    report = await verify(inbox)
    assert report.broken is not None
    assert report.broken.seq == seq and reason in report.broken.reason


async def test_retention_keeps_the_chain_verifiable(inbox: Inbox) -> None:
    await _fill(inbox, 4)
    cut = time.time() + 1
    await _fill(inbox, 0)
    assert await inbox.expire_audit(cut) == 4
    await _fill(inbox, 2)
    report = await verify(inbox)
    assert (report.checked, report.broken) == (2, None)
    assert (await inbox.audit_anchor())[0] == 4


async def test_prune_never_deletes_audit_entries(inbox: Inbox) -> None:
    await inbox.store(order_event(1))
    await _fill(inbox, 3)
    await inbox.prune(time.time() + 3600)
    assert len(await inbox.audit_entries()) == 3


async def test_two_processes_appending_at_once_never_fork_the_chain(make_inbox: MakeInbox) -> None:
    boxes = [make_inbox(("erp",)), make_inbox(("erp",))]
    for box in boxes:
        await box.open()
    try:
        await asyncio.gather(*(_fill(box, 15) for box in boxes))
        report = await verify(boxes[0])
        assert (report.checked, report.broken) == (30, None)
    finally:
        for box in boxes:
            await box.close()
