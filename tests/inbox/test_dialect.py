"""The neutral SQL of the rules, as each engine gets it; and how SQLite runs a rule."""

from __future__ import annotations

import asyncio

import pytest

from tcwebhook.inbox import schema
from tcwebhook.inbox.dialect import POSTGRES, SQLITE
from tcwebhook.inbox.tx import drive

NEUTRAL = (
    "SELECT seq FROM deliveries AS d /*sqlite INDEXED BY deliveries_due */ WHERE d.sink IN TEXTS(?)"
    " AND x LIKE '5%' LIMIT ? /*pg FOR UPDATE OF d SKIP LOCKED */"
)


def test_each_engine_keeps_its_own_clauses_and_placeholders() -> None:
    assert " ".join(SQLITE.sql(NEUTRAL).split()) == (
        "SELECT seq FROM deliveries AS d INDEXED BY deliveries_due WHERE d.sink IN (SELECT value FROM json_each(?))"
        " AND x LIKE '5%' LIMIT ?"
    )
    assert " ".join(POSTGRES.sql(NEUTRAL).split()) == (
        "SELECT seq FROM deliveries AS d WHERE d.sink = ANY(CAST(%s AS text[])) AND x LIKE '5%%' LIMIT %s"
        " FOR UPDATE OF d SKIP LOCKED"
    )
    assert SQLITE.sql(NEUTRAL) is SQLITE.sql(NEUTRAL)  # translated once


def test_lists_are_one_parameter() -> None:
    assert SQLITE.array(["a", "b"]) == '["a","b"]'
    assert POSTGRES.array(("a", "b")) == ["a", "b"]


def test_one_description_gives_both_engines_the_same_tables() -> None:
    for dialect in (SQLITE, POSTGRES):
        ddl = "\n".join(schema.statements(dialect, 0))
        for name in schema.TABLES:
            assert f"CREATE TABLE IF NOT EXISTS {name} (" in ddl
    assert "WITHOUT ROWID" in "\n".join(schema.statements(SQLITE, 0))
    assert "WITHOUT ROWID" not in "\n".join(schema.statements(POSTGRES, 0))
    assert "event_counts" not in "\n".join(schema.statements(POSTGRES, 0))  # see schema._V3
    assert schema.children("events") == (
        ("deliveries", "seq"), ("attempts", "seq"), ("reconciled", "seq"), ("traces", "seq")
    )
    assert schema.statements(SQLITE, schema.SCHEMA_VERSION) == []


def test_a_rule_that_awaits_anything_else_is_refused() -> None:
    async def rule() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(RuntimeError, match="awaited something other"):
        drive(rule())

    async def fine() -> int:
        return 2

    assert drive(fine()) == 2
