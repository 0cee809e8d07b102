"""The files sink: drop each event as one file into a folder an ERP imports from.

File names sort by arrival and say what they hold; every field is limited to
``[A-Za-z0-9.-]`` plus ``%`` escapes (any other character of an id or number is
percent-encoded) so a name splits on ``_`` into exactly five parts::

    20260527T101502.123456Z_000000042_OrderLinesAcceptedBySupplier_PO-2025-000123_<event id>.json
    <received at, UTC>      <seq>     <event name>                 <order/shipment number>

Writes are atomic: a hidden temp file (``.<name>.<random>.tmp``) in the same folder is
written, fsync'd and renamed over the final name, then the folder is fsync'd (once for a whole
batch from the dispatcher, ``deliver_batch``, before any of it counts as delivered). The importer
therefore never sees a partial file, and should skip names starting with ``.``. The name
depends only on the event, so a redelivery overwrites the same file instead of adding one.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import structlog

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError, TransientError
from tcwebhook.filemodes import dir_mode, file_mode, make_dirs, open_new
from tcwebhook.formats import Output, body_extension
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_PART_LIMIT = 64
_OPEN_FILES = 64  # a batch's files open at once (the rest follow in further chunks)
_SHIPMENT_KINDS = (EventKind.SHIPMENT, EventKind.SHIPMENT_FETCH)


def safe_part(value: str | None, *, limit: int = _PART_LIMIT, empty: str = "none") -> str:
    """``value`` with every character outside ``[A-Za-z0-9.-]`` percent-encoded (its UTF-8 bytes,
    as in a URL: ``PO-05-#51388860`` becomes ``PO-05-%2351388860``), so two numbers never share a
    name and ``urllib.parse.unquote`` gives the number back. A leading or trailing ``.`` is
    encoded too (hidden files; Windows drops a trailing dot). Cut to ``limit`` characters,
    never inside an escape."""
    text = value or ""
    if not text:
        return empty
    if not _UNSAFE.search(text) and not text.startswith(".") and not text.endswith(".") and len(text) <= limit:
        return text  # the usual case: an ERP number of letters, digits and dashes
    encoded = quote(text, safe="-.")  # keeps [A-Za-z0-9_.~-]; "_" and "~" are encoded below
    encoded = encoded.replace("_", "%5F").replace("~", "%7E")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    cut = encoded[:limit]
    tail = cut.rfind("%")
    if tail >= 0 and tail > len(cut) - 3:
        cut = cut[:tail]  # an escape cut in half would decode to something else
    if cut.endswith("."):
        cut = cut[:-1] + "%2E" if len(cut) + 2 <= limit else cut[:-1]
    return cut or empty


def plain_part(value: str | None, *, limit: int = _PART_LIMIT, empty: str = "none") -> str:
    """``value`` reduced to ``[A-Za-z0-9.-]`` (runs of anything else become one ``-``): for names
    a trading partner chose (attachments), where a readable name matters more than a reversible one."""
    cleaned = _UNSAFE.sub("-", value or "").strip("-.")[:limit].rstrip("-.")
    return cleaned or empty


def extension(content_type: str) -> str:
    return body_extension(content_type)


def file_stem(event: EventLike) -> str:
    """The file name without extension; a function of the event alone (idempotent redelivery)."""
    at = event.received_at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if event.kind in _SHIPMENT_KINDS:
        number = event.shipment_number or event.shipment_id
    else:
        number = event.purchase_order_number or event.order_id
    return "_".join(
        (
            at.strftime("%Y%m%dT%H%M%S.%fZ"),
            f"{event.seq:09d}",
            safe_part(event.event_name),
            safe_part(number),
            safe_part(event.event_id, limit=128),
        )
    )


class _AtomicFile:
    """A hidden temp file beside ``target`` that becomes ``target`` only on ``commit``."""

    def __init__(self, target: Path, *, group_readable: bool = False) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        make_dirs(target.parent, dir_mode(group_readable))
        # The mode is set on the temp file, so the final name never exists with a wider one.
        self._handle: BinaryIO = os.fdopen(open_new(self.tmp, file_mode(group_readable)), "wb")

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)

    def flush(self) -> None:
        """Hand what was written to the kernel, so the fsyncs can follow for many files."""
        self._handle.flush()

    def sync(self) -> None:
        """The temp file's data on disk (not yet under its name)."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except BaseException:
            self.abort()
            raise

    def publish(self, *, sync_folder: bool = True) -> None:
        """Rename the synced temp file to ``target``; ``sync_folder=False`` leaves the folder's
        fsync, without which the rename is not yet durable, to the caller (one for a batch)."""
        try:
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise
        if sync_folder:
            _sync_folder(self.target.parent)

    def commit(self) -> None:
        self.sync()
        self.publish()

    def abort(self) -> None:
        self._handle.close()
        self.tmp.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    # A rename is durable only once the directory entry itself is on disk.
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(target: Path, exc: OSError) -> TransientError:
    # Full disk, lost share, permissions: all fixable outside, so retried.
    return TransientError(f"cannot write {target.name} in {target.parent}: {exc.strerror or exc}")


Job = tuple[Path, bytes] | BaseException


def _write_batch(jobs: Sequence[Job], group_readable: bool) -> list[BaseException | None]:
    """Write the files, then fsync them, then rename them, then fsync each folder once: the
    batch is durable, file by file, when this returns; an error is the failed file's (or its
    folder's) alone. Writing all before the first fsync lets the kernel write them out together
    (a third to a half less time per file than write-and-fsync one by one, docs/performance.md)."""
    results: list[BaseException | None] = []
    for start in range(0, len(jobs), _OPEN_FILES):
        results.extend(_write_chunk(jobs[start : start + _OPEN_FILES], group_readable))
    folders: dict[Path, list[int]] = {}
    for i, job in enumerate(jobs):
        if results[i] is None and not isinstance(job, BaseException):
            folders.setdefault(job[0].parent, []).append(i)
    for folder, members in folders.items():
        try:
            _sync_folder(folder)
        except OSError as exc:
            for i in members:
                results[i] = _write_error(folder / ".", exc)
    return results


def _write_chunk(jobs: Sequence[Job], group_readable: bool) -> list[BaseException | None]:
    results: list[BaseException | None] = []
    files: dict[int, _AtomicFile] = {}
    try:
        for job in jobs:
            if isinstance(job, BaseException):
                results.append(job)
                continue
            target, data = job
            try:
                file = _AtomicFile(target, group_readable=group_readable)
            except OSError as exc:
                results.append(_write_error(target, exc))
                continue
            i = len(results)
            files[i] = file
            results.append(None)
            try:
                file.write(data)
                file.flush()
            except OSError as exc:
                del files[i]
                file.abort()
                results[i] = _write_error(target, exc)
        for step in (_AtomicFile.sync, partial(_AtomicFile.publish, sync_folder=False)):
            for i, file in list(files.items()):
                try:
                    step(file)
                except OSError as exc:  # the step aborted the file (temp file removed)
                    del files[i]
                    results[i] = _write_error(file.target, exc)
    except BaseException:
        for file in files.values():  # no temp file left behind (harmless once renamed)
            file.abort()
        raise
    return results


def _copy_atomic(target: Path, source: Path, group_readable: bool = False) -> None:
    file = _AtomicFile(target, group_readable=group_readable)
    try:
        with source.open("rb") as src:
            while chunk := src.read(1024 * 1024):
                file.write(chunk)
    except BaseException:
        file.abort()
        raise
    file.commit()


def _write_atomic(target: Path, data: bytes, group_readable: bool = False) -> None:
    file = _AtomicFile(target, group_readable=group_readable)
    try:
        file.write(data)
    except BaseException:
        file.abort()
        raise
    file.commit()


def event_file(directory: Path, event: EventLike, output: Output, *, subfolders: bool = False) -> Path:
    """The file a files sink on ``directory`` writes ``event`` to (``tcwebhook events show`` names it)."""
    folder = directory / event.kind.value if subfolders else directory
    return folder / (file_stem(event) + output.extension_for(event))


class FilesSink:
    """Writes each event as one file (optionally one sub-folder per kind).

    By default the file holds the body byte for byte; with an ``output`` of another format it
    holds what that format renders, and the name takes the format's extension (``.csv``, the
    template's).
    """

    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        events: Iterable[str] = (),
        subfolders: bool = False,
        group_readable: bool = False,
        output: Output | None = None,
    ) -> None:
        self.name = name
        self.output = output or Output(sink=name)
        self.directory = Path(directory)
        self.filter = SinkFilter.parse(events, sink=name)
        self.subfolders = subfolders
        self.group_readable = group_readable
        try:
            make_dirs(self.directory, dir_mode(group_readable))
        except OSError as exc:
            raise StartupError(
                f"Sink {name!r}: cannot create the directory {self.directory} ({exc.strerror})."
            ) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StartupError(f"Sink {name!r}: the directory {self.directory} is not writable by this user.")

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    def folder_for(self, event: EventLike) -> Path:
        return self.directory / event.kind.value if self.subfolders else self.directory

    def path_for(self, event: EventLike) -> Path:
        """Where ``deliver`` puts this event."""
        return event_file(self.directory, event, self.output, subfolders=self.subfolders)

    def attachment_path(self, event: EventLike, filename: str) -> Path:
        """Where an attachment of the event goes: ``<event file stem>.<filename>``.

        Sharing the stem keeps an event's files together in a listing, and lets an importer
        find them with ``<stem>.*``.
        """
        name = plain_part(filename, limit=128, empty="attachment")
        if "." + name == self.output.extension_for(event):
            name = "attachment" + "." + name  # would otherwise replace the event file itself
        return self.folder_for(event) / f"{file_stem(event)}.{name}"

    def documents_folder(self, event: EventLike) -> Path:
        """The event's own folder for its documents: ``<event file stem>.documents``.

        Documents are named by trading partners; kept apart, a partner's ``full-order.json`` or
        ``x.json`` can neither replace one of our files nor meet an importer reading ``*.json``.
        """
        return self.folder_for(event) / f"{file_stem(event)}.documents"

    async def deliver(self, event: StoredEvent | Event) -> None:
        target = self.path_for(event)
        data = event.body if self.output.is_body else self.output.render(event).body
        await self._io(target, _write_atomic, target, data, self.group_readable)
        log.debug("sink.files.delivered", sink=self.name, event_id=event.event_id, file=target.name)

    batches = True  # ``deliver_batch``: one thread hop and one folder fsync for many events

    async def deliver_batch(self, events: Sequence[StoredEvent | Event]) -> list[BaseException | None]:
        """``deliver`` for each event, with one fsync of each folder for all of them."""
        jobs: list[Job] = []
        for event in events:
            try:
                target = self.path_for(event)
                jobs.append((target, event.body if self.output.is_body else self.output.render(event).body))
            except Exception as exc:  # an event its format cannot render fails alone
                jobs.append(exc)
        results = await asyncio.to_thread(_write_batch, jobs, self.group_readable)
        log.debug("sink.files.delivered_batch", sink=self.name, events=len(events),
                  failed=sum(r is not None for r in results))
        return results

    async def write_attachment(self, event: EventLike, filename: str, data: bytes) -> Path:
        """Store ``data`` beside the event file, atomically; returns the path.

        Write attachments before delivering the event itself, so an importer that reacts to
        the event file finds them already in place.
        """
        target = self.attachment_path(event, filename)
        await self._io(target, _write_atomic, target, data, self.group_readable)
        return target

    async def write_document_file(self, event: EventLike, name: str, source: Path) -> Path:
        """Copy ``source`` into the event's documents folder as ``name`` (already a safe, unique
        file name), atomically; returns the path."""
        if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", "\x00")):
            raise ValueError(f"{name!r} is not a plain file name")
        target = self.documents_folder(event) / name
        await self._io(target, _copy_atomic, target, source, self.group_readable)
        return target

    async def write_attachment_stream(self, event: EventLike, filename: str, chunks: AsyncIterable[bytes]) -> Path:
        """Like ``write_attachment`` for a download streamed in chunks (not held in memory)."""
        target = self.attachment_path(event, filename)
        await self._stream(target, chunks)
        return target

    async def _stream(self, target: Path, chunks: AsyncIterable[bytes]) -> None:
        file = await self._io(target, partial(_AtomicFile, group_readable=self.group_readable), target)
        try:
            # Errors of the source (a broken download) pass through as they are.
            async for chunk in chunks:
                await self._io(target, file.write, chunk)
        except BaseException:
            file.abort()  # inline, not in a thread: it must run even while being cancelled
            raise
        await self._io(target, file.commit)

    async def _io(self, target: Path, func: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.to_thread(func, *args)
        except OSError as exc:
            raise _write_error(target, exc) from None

    async def close(self) -> None:
        return None
