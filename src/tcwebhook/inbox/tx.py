"""The transaction every store rule is written against, and how each engine runs a rule.

A rule is an ``async def`` taking a ``Tx`` (see ``inbox.rules``). PostgreSQL awaits it on the
writer's or a pooled connection. SQLite's calls are synchronous, so its ``Tx`` never suspends:
the SQLite writer thread (and a reader thread) runs the same coroutine to its end in one
``send`` (``drive``), with no event loop and no thread hop. A rule that awaited anything but
its transaction would suspend there, and ``drive`` says so instead of losing the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tcwebhook.inbox.dialect import Dialect

T = TypeVar("T")
Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction; SQL in the dialect-neutral form of ``inbox.dialect``."""

    dialect: Dialect

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None."""

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the rows it changed. Not inside ``batch`` (use ``send`` there)."""

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Execute once per parameter row; the rows each changed (PostgreSQL: one round trip).
        Not inside ``batch``."""

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute a statement whose result nobody reads (inside ``batch``: no round trip)."""

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute once per parameter row."""

    def batch(self) -> AbstractAsyncContextManager[Any]:
        """Statements sent in here travel together (PostgreSQL's pipeline); a no-op on SQLite."""

    async def notify(self) -> None:
        """Wake the dispatchers of every process at commit (LISTEN/NOTIFY); SQLite: nothing."""


Rule = Callable[[Tx], Coroutine[Any, Any, T]]


@dataclass(frozen=True, slots=True)
class Bulk:
    """A rule whose first statement can share one round trip with others of the same SQL.

    The PostgreSQL writer sends the first statements of every bulk rule of a batch together
    (``executemany`` in pipeline mode), then calls ``then`` with the row each returned; run
    alone (SQLite, or a batch of one), it is simply the statement and then ``then``.
    """

    sql: str
    params: tuple[Any, ...]
    then: Callable[[Tx, Row | None], Awaitable[Any]]

    async def __call__(self, tx: Tx) -> Any:
        return await self.then(tx, await tx.one(self.sql, self.params))


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a rule on a synchronous ``Tx``) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a store rule awaited something other than its transaction")
