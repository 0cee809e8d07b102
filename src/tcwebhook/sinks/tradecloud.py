"""A sink wrapper that does the Tradecloud API work of a delivery, then hands on the event.

For each delivery attempt: a GET-webhook trigger is replaced by the fetched object; with the
sink's ``enrich`` option an order event gets ``extras["full_order"]``; with ``documents`` (and
``download_urls``) the event's files are downloaded, streamed into
``<data_dir>/documents/<sink>/<event id>/``. A sink that stores documents itself (the files sink)
gets them copied into a folder of the event's own (``<event file stem>.documents/``), apart from
tcwebhook's files beside the event (``<stem>.full-order.json``); any other sink gets
``extras["documents"]``, a list of ``DocumentFile`` with the local path.
Failures surface as ``PermanentError``/``TransientError``, so the dispatcher's ordering, retries
and dead-lettering apply unchanged.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
import structlog

from tcwebhook.config import Settings, SinkSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import PermanentError, StartupError
from tcwebhook.formats import BOOK_KEY
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.orderbook.book import BookEvent
from tcwebhook.orderbook.store import BookStore
from tcwebhook.orderbook.updates import fetched_write
from tcwebhook.sinks.base import BatchSink, EventSink, Sink
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.tradecloud_api.client import TradecloudClient
from tcwebhook.tradecloud_api.coalesce import Coalescer
from tcwebhook.tradecloud_api.documents import (
    DocumentFetcher,
    DocumentRef,
    FetchedDocument,
    safe_filename,
)
from tcwebhook.tradecloud_api.downloads import PartnerDownloader, UrlPolicy
from tcwebhook.tradecloud_api.enrich import EXTRA_KEY, Enricher
from tcwebhook.tradecloud_api.fetch import ApiObject, FetchResolver, is_resolved

log = structlog.get_logger(__name__)

DOCUMENTS_KEY = "documents"
FULL_ORDER_FILE = "full-order.json"


@runtime_checkable
class AttachmentWriter(Protocol):
    """A sink that keeps tcwebhook's own files of an event (the full order) beside it."""

    async def write_attachment(self, event: EventLike, filename: str, data: bytes) -> Path: ...


@runtime_checkable
class DocumentWriter(Protocol):
    """A sink that keeps an event's documents itself, apart from its own files."""

    async def write_document_file(self, event: EventLike, name: str, source: Path) -> Path: ...


@dataclass(frozen=True, slots=True)
class DocumentFile:
    """A downloaded document as a handler sees it in ``extras["documents"]``."""

    path: Path
    filename: str
    content_type: str
    ref: DocumentRef


class TradecloudSink:
    """Wraps ``inner``: resolve triggers, enrich, fetch documents, then ``inner.deliver``."""

    def __init__(
        self,
        inner: EventSink,
        *,
        resolver: FetchResolver | None = None,
        enricher: Enricher | None = None,
        documents: DocumentFetcher | None = None,
        documents_dir: Path | None = None,
        book: BookStore | None = None,
        needs_book: bool = False,
    ) -> None:
        if documents is not None and documents_dir is None:
            raise ValueError("documents need a documents_dir to be downloaded into")
        self.name = inner.name
        self.inner = inner
        self._resolver = resolver
        self._enricher = enricher
        self._documents = documents
        self._documents_dir = documents_dir
        self._book = book
        self._needs_book = needs_book  # payload = "order": hand the inner sink the book's entry

    def accepts(self, event: StoredEvent) -> bool:
        return self.inner.accepts(event)

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            if self._documents is not None:
                await self._documents.aclose()

    @property
    def batches(self) -> bool:
        return isinstance(self.inner, BatchSink) and self.inner.batches

    def _plain(self, event: StoredEvent) -> bool:
        """Whether ``deliver`` would hand ``event`` to the inner sink as it is, and nothing else."""
        if event.kind.is_fetch and not is_resolved(event):
            return False
        if self._enricher is not None and self._enricher.wants(event):
            return False
        if self._documents is not None and self._documents.wants(event):
            return False
        return not (self._book is not None and self._needs_book and event.key is not None)

    async def deliver_batch(self, events: Sequence[StoredEvent]) -> list[BaseException | None]:
        """The events ``deliver`` hands on unchanged go to the inner sink as one batch; the
        others (triggers, enrichment, documents, the book's order) one by one, as ``deliver``."""
        results: list[BaseException | None] = [None] * len(events)
        plain = [i for i, e in enumerate(events) if self._plain(e)]
        taken = set(plain)
        other = [i for i in range(len(events)) if i not in taken]
        if plain and isinstance(self.inner, BatchSink):
            done = await self.inner.deliver_batch([events[i] for i in plain])
            for i, outcome in zip(plain, done, strict=True):
                results[i] = outcome
        else:
            other = list(range(len(events)))
        if other:
            singles = await asyncio.gather(*(self.deliver(events[i]) for i in other), return_exceptions=True)
            for i, outcome in zip(other, singles, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                results[i] = outcome if isinstance(outcome, BaseException) else None
        return results

    async def deliver(self, event: StoredEvent) -> None:
        stored = event
        if event.kind.is_fetch and not is_resolved(event):
            if self._resolver is None:
                raise PermanentError(
                    "a GET webhook trigger needs the Tradecloud API: set [tradecloud] "
                    "username/password, then replay the event"
                )
            stored = await self._resolver.resolve(event)
        extras: dict[str, Any] = {}
        if self._enricher is not None and self._enricher.wants(stored):
            extras[EXTRA_KEY] = await self._enricher.full_order(stored)
        if self._documents is not None and self._documents.wants(stored):
            assert self._documents_dir is not None
            folder = self._documents_dir / safe_filename(self.name) / safe_filename(event.event_id)
            fetched = await self._documents.fetch(stored, folder)
            if fetched:
                extras[DOCUMENTS_KEY] = await self._store(stored, fetched, folder)
        if EXTRA_KEY in extras and isinstance(self.inner, AttachmentWriter):
            await self._write_full_order(stored, extras[EXTRA_KEY])
        if self._book is not None:
            await self._keep_book(event, stored, extras)
            if self._needs_book and stored.key is not None:
                extras[BOOK_KEY] = await self._book.book_entry(stored.key)
        if stored is event and not extras:
            await self.inner.deliver(event)
            return
        await self.inner.deliver(Event.from_stored(stored, extras))

    async def _keep_book(self, event: StoredEvent, stored: StoredEvent, extras: dict[str, Any]) -> None:
        """A fetched object (a resolved trigger, an enrichment's full order) replaces the book's
        order when newer: the book then holds what the API said, not only what events told."""
        assert self._book is not None
        fetched = []
        if stored is not event:
            try:
                obj = orjson.loads(stored.body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                fetched.append(fetched_write(stored.kind, obj))
        if isinstance(extras.get(EXTRA_KEY), dict):
            fetched.append(fetched_write(EventKind.ORDER_FETCH, extras[EXTRA_KEY]))
        for write in fetched:
            if write is not None:
                book_event = BookEvent(event.event_id, event.event_name, write.last_updated_at, "fetch", event.seq)
                await self._book.apply_to_book(write, book_event)

    async def _store(self, event: StoredEvent, docs: Sequence[FetchedDocument], folder: Path) -> list[DocumentFile]:
        paths = [doc.path for doc in docs]
        if isinstance(self.inner, DocumentWriter):
            # Documents first: an importer reacting to the event file finds them in place.
            paths = [await self.inner.write_document_file(event, doc.filename, doc.path) for doc in docs]
            await asyncio.to_thread(shutil.rmtree, folder, True)
        return [
            DocumentFile(path, doc.filename, doc.content_type, doc.ref) for doc, path in zip(docs, paths, strict=True)
        ]

    async def _write_full_order(self, event: StoredEvent, order: ApiObject) -> None:
        assert isinstance(self.inner, AttachmentWriter)
        data = orjson.dumps(order, option=orjson.OPT_INDENT_2)
        await self.inner.write_attachment(event, FULL_ORDER_FILE, data)


def _needs_api(cfg: SinkSettings | None) -> bool:
    return cfg is not None and (cfg.enrich or cfg.documents or cfg.download_urls)


def _needs_credentials(sink: str) -> StartupError:
    return StartupError(
        f"Sink {sink!r} uses enrich/documents/download_urls: set [tradecloud] "
        "username and password of an integration user."
    )


def check_api_options(settings: Settings) -> None:
    """Refuse sinks asking for ``enrich``/``documents``/``download_urls`` without API credentials."""
    if settings.tradecloud.configured:
        return
    for cfg in settings.sinks:
        if _needs_api(cfg):
            raise _needs_credentials(cfg.name)


def wrap_sinks(
    sinks: Sequence[EventSink],
    settings: Settings,
    client: TradecloudClient | None,
    book: BookStore | None = None,
) -> list[Sink]:
    """Wrap every sink so GET triggers resolve and each sink's API options apply.

    ``book``: the store's order book, which fetched orders update and ``payload = "order"`` reads.

    ``client`` is None when ``[tradecloud]`` has no credentials; then a sink asking for
    ``enrich``/``documents``/``download_urls`` is a start-up error, and GET triggers are
    dead-lettered with the reason.
    """
    configs = {cfg.name: cfg for cfg in settings.sinks}
    coalescer: Coalescer[ApiObject] = Coalescer()
    resolver = FetchResolver(client, coalescer=coalescer) if client else None
    enricher = Enricher(client, coalescer=coalescer) if client else None
    wrapped: list[Sink] = []
    for sink in sinks:
        cfg = configs.get(sink.name)
        if _needs_api(cfg) and client is None:
            raise _needs_credentials(sink.name)
        documents = None
        if cfg is not None and client is not None and (cfg.documents or cfg.download_urls):
            partner = None
            if cfg.download_urls:
                policy = UrlPolicy.of(cfg.download_hosts, allow_private=cfg.allow_private_download_addresses)
                partner = PartnerDownloader(policy, verify=client.verify, timeout=settings.tradecloud.timeout)
            documents = DocumentFetcher(
                client,
                object_ids=cfg.documents,
                urls=cfg.download_urls,
                partner=partner,
                max_documents=cfg.max_documents,
                max_total_bytes=cfg.max_document_bytes_total,
            )
        wrapped.append(
            TradecloudSink(
                sink,
                resolver=resolver,
                enricher=enricher if cfg is not None and cfg.enrich else None,
                documents=documents,
                documents_dir=settings.data_dir / "documents",
                book=book,
                needs_book=cfg is not None and cfg.payload == "order",
            )
        )
    return wrapped


_CHECK: type[Sink] = TradecloudSink
