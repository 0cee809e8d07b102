"""Group commit on PostgreSQL: one task per process runs every queued write of a moment in ONE
transaction, on one connection, and resolves the callers' futures only after ``COMMIT`` returned.

``COMMIT`` returns once the WAL is flushed (``synchronous_commit = on``) or, configured so, once a
synchronous standby has it (``remote_write``, ``remote_apply``): one flush makes many concurrent
requests durable, as the SQLite writer does with one fsync.

Failures follow the SQLite writer's rules (``inbox.sqlite_writer``): an operation raising a data error
(a constraint, an invalid value, a domain error such as ``EventNotFound``) fails its caller alone
and the batch is run again without it; anything else is the store's trouble and fails the batch
with ``StoreUnavailable``. Two cases are retried here first, because they cannot have committed
anything: a deadlock or serialization failure (PostgreSQL rolled the transaction back), and a
connection found broken before ``COMMIT`` was sent (the server restarted or failed over: one
reconnect). A failed *new* connection is not retried: the callers hear 503 at once. A connection
lost *during* ``COMMIT`` leaves the outcome unknown, so the callers hear 503; the sender's resend
is then answered as a duplicate if the commit did happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import psycopg
import structlog

from tcwebhook.errors import StoreUnavailable
from tcwebhook.inbox.dialect import POSTGRES
from tcwebhook.inbox.tx import Bulk, Row, Rule

log = structlog.get_logger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Op = Rule[Any]

# Wakes the dispatchers of every process (LISTEN); delivered at commit, once per transaction.
CHANNEL = "tcwebhook_due"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"

# Errors that belong to one operation (its data or its SQL), not to the store.
_OP_ERRORS = (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError, psycopg.NotSupportedError)
_ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_RETRIES = 3


class _Culprit(Exception):
    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__()
        self.index = index
        self.error = error


class PgTx:
    """``Tx`` on a psycopg connection (the writer's, or a pooled reader's)."""

    __slots__ = ("conn", "dialect")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.dialect = POSTGRES

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = await self.conn.execute(POSTGRES.sql(sql), params)
        return await cur.fetchone()

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self.conn.execute(POSTGRES.sql(sql), params)
        return await cur.fetchall()

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(POSTGRES.sql(sql), params)
        return cur.rowcount

    async def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        text = POSTGRES.sql(sql)
        # Every statement sent before any answer is read: one round trip for all of them.
        async with self.conn.pipeline() as pipeline:
            cursors = [await self.conn.execute(text, params) for params in rows]
            await pipeline.sync()
        return [cur.rowcount for cur in cursors]

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        # In pipeline mode this queues the statement: it costs no round trip of its own.
        await self.conn.execute(POSTGRES.sql(sql), params)

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(POSTGRES.sql(sql), rows)

    def batch(self) -> AbstractAsyncContextManager[Any]:
        return self.conn.pipeline()

    async def notify(self) -> None:
        await self.conn.execute(NOTIFY)


class _Retry(Exception):
    pass


class _Request:
    __slots__ = ("bulk", "future", "op", "wakes")

    def __init__(self, op: Op, future: asyncio.Future[Any], wakes: bool, bulk: Bulk | None) -> None:
        self.op = op
        self.future = future
        self.wakes = wakes
        self.bulk = bulk


def unavailable(exc: BaseException) -> StoreUnavailable:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"event store unavailable: {text}")


class PostgresWriter:
    """The one writing connection of a process, and the task that batches onto it."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Conn]],
        *,
        max_batch: int,
    ) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._conn: Conn | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.commits = 0
        self.operations = 0

    def start(self, conn: Conn | None = None) -> None:
        self._conn = conn
        self._task = asyncio.create_task(self._run(), name="tcwebhook-inbox-writer")

    def submit(
        self, op: Rule[T] | Bulk, *, wakes: bool = False
    ) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction is committed.

        ``wakes``: the transaction makes deliveries due, so dispatchers are notified at commit.
        """
        if self._closed:
            raise StoreUnavailable("event store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if isinstance(op, Bulk):
            self._queue.put_nowait(_Request(op, future, wakes, op))
        else:
            self._queue.put_nowait(_Request(op, future, wakes, None))
        return future

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a bound, not a deadline
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None:
            self._queue.put_nowait(None)
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_connection()

    # -- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                self._fail(batch, StoreUnavailable("event store is closing"))
                raise
            except BaseException as exc:  # never let the task die: callers would hang
                log.exception("inbox_writer_failed")
                self._fail(batch, unavailable(exc))
        # Whatever is still queued was submitted after close: nobody will run it.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                self._fail([item], StoreUnavailable("event store is closed"))

    async def _run_batch(self, batch: list[_Request]) -> None:
        retries = 0
        reconnected = False
        pipelined = True
        while batch:
            committing = False
            try:
                conn = await self._connection()
            except psycopg.Error as exc:
                # No server to talk to (down, refusing, unreachable within connect_timeout): the
                # callers hear it now instead of after a second attempt.
                log.warning("inbox_write_failed", error=str(exc).strip(), sqlstate=exc.sqlstate)
                self._fail(batch, unavailable(exc))
                return
            try:
                results: list[Any] = []
                # A batch of stores alone (a receiver's usual batch) goes in pipeline mode: BEGIN,
                # the inserts, NOTIFY and COMMIT in two round trips instead of five.
                piped = pipelined and all(r.bulk is not None for r in batch)
                tx = PgTx(conn)
                try:
                    async with conn.pipeline() if piped else contextlib.nullcontext(), conn.transaction():
                        first: dict[int, tuple[Any, ...] | None] = {}
                        if pipelined:
                            try:
                                first = await self._send_bulk(conn, batch)
                            except _OP_ERRORS:
                                # Which statement failed is not known: go again one by one.
                                pipelined = False
                                raise _Retry from None
                        for index, request in enumerate(batch):
                            try:
                                if index in first and request.bulk is not None:
                                    results.append(await request.bulk.then(tx, first[index]))
                                else:
                                    results.append(await request.op(tx))
                            except psycopg.Error as exc:
                                if isinstance(exc, _OP_ERRORS):
                                    raise _Culprit(index, exc) from exc
                                raise
                            except Exception as exc:
                                raise _Culprit(index, exc) from exc
                        if any(r.wakes for r in batch):
                            await conn.execute(NOTIFY)
                        committing = True
                except _Culprit as culprit:
                    if piped and isinstance(culprit.error, psycopg.Error):
                        # A pipelined statement's error surfaces at a later one: whose it was is
                        # known only when run one by one.
                        pipelined = False
                        continue
                    self._settle(batch[culprit.index], None, culprit.error)
                    batch = [r for i, r in enumerate(batch) if i != culprit.index]
                    continue
                except _Retry:
                    continue
            except _ROLLED_BACK as exc:
                retries += 1
                if retries <= _RETRIES:
                    log.info("inbox_write_retried", reason=type(exc).__name__)
                    continue
                self._fail(batch, unavailable(exc))
                return
            except psycopg.Error as exc:
                if piped and isinstance(exc, _OP_ERRORS):
                    pipelined = False  # as above: find the culprit one by one
                    continue
                broken = self._conn is None or self._conn.broken or self._conn.closed
                if broken:
                    await self._drop_connection()
                if broken and not committing and not reconnected:
                    # Nothing was committed: one more go on a fresh connection.
                    reconnected = True
                    continue
                log.warning("inbox_write_failed", error=str(exc).strip(), sqlstate=exc.sqlstate)
                self._fail(batch, unavailable(exc))
                return
            self.commits += 1
            self.operations += len(batch)
            for request, result in zip(batch, results, strict=True):
                self._settle(request, result, None)
            return

    @staticmethod
    async def _send_bulk(conn: Conn, batch: list[_Request]) -> dict[int, tuple[Any, ...] | None]:
        """Run the bulk statements of ``batch``, grouped by SQL; the first row of each by index."""
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(batch):
            if request.bulk is not None:
                groups.setdefault(POSTGRES.sql(request.bulk.sql), []).append(index)
        first: dict[int, tuple[Any, ...] | None] = {}
        for sql, indexes in groups.items():
            if len(indexes) == 1:
                continue  # nothing to share: the operation runs as it is
            async with conn.cursor() as cur:
                params = [batch[i].bulk.params for i in indexes]  # type: ignore[union-attr]
                await cur.executemany(sql, params, returning=True)
                for index in indexes:
                    first[index] = await cur.fetchone()
                    cur.nextset()
        return first

    async def _connection(self) -> Conn:
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            await self._drop_connection()
            conn = None
        if conn is None:
            conn = self._conn = await self._connect()
        return conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    @staticmethod
    def _settle(request: _Request, result: Any, error: BaseException | None) -> None:
        if request.future.done():  # the caller gave up waiting (cancelled)
            return
        if error is None:
            request.future.set_result(result)
        else:
            request.future.set_exception(error)

    def _fail(self, batch: list[_Request], error: BaseException) -> None:
        for request in batch:
            self._settle(request, None, error)
