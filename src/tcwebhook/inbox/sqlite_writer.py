"""Group commit: one writer thread runs every queued write of a moment in ONE transaction.

Callers queue an operation (a function of the connection) and await its future. The thread takes
whatever is queued, up to ``max_batch``, runs it all between ``BEGIN IMMEDIATE`` and ``COMMIT``
and only then resolves the futures, so one fsync makes many concurrent requests durable and no
caller hears "stored" before its data is on disk.

While the event loop is saturated (its callbacks run late), the thread lingers a moment before
each transaction so more writes share it: a commit costs the one CPU much more than a write in
it, and under saturation requests wait for the loop far longer than the linger anyway. An idle
or lightly loaded loop never sees the linger.

A failure of the store itself (locked, read-only, full, I/O error) fails the whole batch with
``StoreUnavailable`` and the thread carries on: the next batch tries again, on a fresh connection
when the old one cannot even roll back. An operation raising anything else (a domain error such as
``EventNotFound``, a constraint violation) fails that caller alone: the batch is rolled back and
run again without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from tcwebhook.errors import StoreUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

# Errors that belong to one operation (its data or its SQL), not to the store.
_OP_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.NotSupportedError,
)


# Linger before a transaction while the loop runs a settle callback this late or later.
SATURATED_LAG = 0.001
LINGER = 0.001


class _Stop:
    pass


_STOP = _Stop()


class _Request:
    __slots__ = ("future", "loop", "op")

    def __init__(self, op: Op, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.op = op
        self.future = future
        self.loop = loop


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"event store unavailable: {exc}")


class GroupCommitWriter:
    """The one thread of a process that writes to the database."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int, name: str) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | _Stop] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.commits = 0  # transactions committed (observability and tests)
        self.operations = 0  # operations committed
        self.loop_lag = 0.0  # how late the loop ran the last settle callback (seconds)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves once its transaction is committed."""
        if self._closed:
            raise StoreUnavailable("event store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Request(op, future, loop))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if isinstance(first, _Stop):
                break
            batch = [first]
            stopping = self._drain(batch)
            if not stopping and len(batch) < self._max_batch and self.loop_lag >= SATURATED_LAG:
                time.sleep(LINGER)
                stopping = self._drain(batch)
            try:
                self._run_batch(batch)
            except BaseException as exc:  # never let the thread die: callers would hang
                log.exception("inbox_writer_failed")
                self._resolve([(r, None, _unavailable(exc)) for r in batch])
        self._drop_connection()

    def _drain(self, batch: list[_Request]) -> bool:
        """Add what is queued to ``batch`` (up to ``max_batch``); True when told to stop."""
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if isinstance(item, _Stop):
                return True
            batch.append(item)
        return False

    def _run_batch(self, batch: list[_Request]) -> None:
        settled: list[tuple[_Request, Any, BaseException | None]] = []
        while batch:
            conn = self._conn
            try:
                if conn is None:
                    conn = self._conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._after_store_error(exc)
                settled.extend((r, None, _unavailable(exc)) for r in batch)
                break
            results: list[tuple[_Request, Any, BaseException | None]] = []
            culprit: tuple[_Request, BaseException] | None = None
            try:
                for request in batch:
                    try:
                        results.append((request, request.op(conn), None))
                    except sqlite3.Error as exc:
                        if not isinstance(exc, _OP_ERRORS):
                            raise
                        culprit = (request, exc)
                        break
                    except Exception as exc:
                        culprit = (request, exc)
                        break
                if culprit is not None:
                    conn.execute("ROLLBACK")
                    settled.append((culprit[0], None, culprit[1]))
                    batch = [r for r in batch if r is not culprit[0]]
                    continue
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._after_store_error(exc)
                settled.extend((r, None, _unavailable(exc)) for r in batch)
                break
            self.commits += 1
            self.operations += len(results)
            settled.extend(results)
            break
        self._resolve(settled)

    def _after_store_error(self, exc: sqlite3.Error) -> None:
        log.warning("inbox_write_failed", error=str(exc), code=getattr(exc, "sqlite_errorname", None))
        conn = self._conn
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # A connection that cannot roll back is not trusted again; the next batch reconnects.
            self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                log.warning("inbox_writer_close_failed")

    def _resolve(self, settled: list[tuple[_Request, Any, BaseException | None]]) -> None:
        # One wake-up per event loop, not one per request: it keeps the hot path cheap.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for request, result, error in settled:
            by_loop.setdefault(request.loop, []).append((request.future, result, error))
        posted = time.monotonic()
        for loop, items in by_loop.items():
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, items, posted)

    def _settle(self, items: list[tuple[asyncio.Future[Any], Any, BaseException | None]], posted: float) -> None:
        """Runs on the caller's loop."""
        self.loop_lag = time.monotonic() - posted
        for future, result, error in items:
            if future.done():  # the caller gave up waiting (cancelled)
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
