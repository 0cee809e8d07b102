"""Documents named by webhook events, and fetching their files from Tradecloud.

An order-documents or shipment event lists documents with an ``objectId`` (Tradecloud object
storage) or a ``url`` (a partner's content server). ``find_documents`` walks a body leniently:
any ``documents`` array (``<document>`` elements in tXML) anywhere, so new nesting keeps working.
``DocumentFetcher`` downloads them in the delivery path and maps API trouble onto the dispatcher's
two outcomes: ``PermanentError`` (dead-letter) and ``TransientError`` (retry).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from defusedxml import ElementTree

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import (
    DownloadRefused,
    PermanentError,
    TradecloudApiError,
    TradecloudNotFound,
    TransientError,
)
from tcwebhook.filemodes import PRIVATE_DIR, make_dirs
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.tradecloud_api.downloads import DownloadInfo, PartnerDownloader, UrlPolicy

if TYPE_CHECKING:
    from tcwebhook.tradecloud_api.client import TradecloudClient

log = structlog.get_logger(__name__)

# orderDocumentsEvent and shipments (POSTed or fetched) carry files; order events do not.
DOCUMENT_KINDS = frozenset({EventKind.ORDER_DOCUMENTS, EventKind.SHIPMENT, EventKind.SHIPMENT_FETCH})
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-+=@,() ]")
DEFAULT_MAX_DOCUMENTS = 100
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}


@dataclass(frozen=True, slots=True)
class DocumentMetadata:
    """What ``GET /object-storage/document/{objectId}/metadata`` answers."""

    id: str
    filename: str
    content_type: str
    download_url: str | None = field(repr=False)  # a credential for about a minute: never log

    @classmethod
    def from_api(cls, data: dict[str, Any], object_id: str) -> DocumentMetadata:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            id=text("id") or object_id,
            filename=text("filename") or object_id,
            content_type=text("contentType") or "application/octet-stream",
            download_url=text("downloadUrl"),
        )


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    filename: str  # as the source names it: pass through ``safe_filename`` before use on disk
    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One document entry of an event body."""

    where: str  # JSON path of the entry, e.g. ``orderDocumentsEvent.lines[0].documents[1]``
    object_id: str | None
    url: str | None
    name: str | None = None
    code: str | None = None
    revision: str | None = None
    type: str | None = None

    @property
    def source(self) -> str:
        return f"objectId {self.object_id}" if self.object_id else f"url {self.url}"


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A downloaded document, in its file under the event's documents folder."""

    ref: DocumentRef
    filename: str  # after the final cleaning, and unique among the event's documents
    content_type: str
    path: Path
    size: int


def safe_filename(name: str, *, limit: int = 150) -> str:
    """``name`` reduced to one harmless path component, keeping its extension."""
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    if stem.upper() in _RESERVED or not stem:
        stem = f"_{stem}" if stem else "document"
    ext = ext[:20]
    stem = stem[: max(1, limit - len(ext) - 1)]
    return f"{stem}.{ext}" if ext else stem


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _walk_json(node: Any, where: str) -> Iterator[DocumentRef]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "documents" and isinstance(value, list):
                for i, doc in enumerate(value):
                    if isinstance(doc, dict):
                        ref = _ref(doc, f"{path}[{i}]")
                        if ref is not None:
                            yield ref
            else:
                yield from _walk_json(value, path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk_json(item, f"{where}[{i}]")


def _ref(doc: dict[str, Any], where: str) -> DocumentRef | None:
    object_id, url = _str(doc.get("objectId")), _str(doc.get("url"))
    if object_id is None and url is None:
        return None  # metadata only: no file exists
    return DocumentRef(
        where=where,
        object_id=object_id,
        url=url,
        name=_str(doc.get("name")),
        code=_str(doc.get("code")),
        revision=_str(doc.get("revision")),
        type=_str(doc.get("type")),
    )


def _walk_xml(body: bytes) -> Iterator[DocumentRef]:
    root = ElementTree.fromstring(body)
    for i, element in enumerate(root.iter()):
        if not isinstance(element.tag, str) or element.tag.rpartition("}")[2] != "document":
            continue
        fields = {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in element}
        ref = _ref(fields, f"document[{i}]")
        if ref is not None:
            yield ref


def find_documents(body: bytes, content_type: str = "application/json") -> list[DocumentRef]:
    """Every document with a file in an event body, each ``objectId``/``url`` once."""
    if "xml" in content_type.lower():
        try:
            refs = list(_walk_xml(body))
        except ElementTree.ParseError:
            return []
    else:
        try:
            refs = list(_walk_json(orjson.loads(body), ""))
        except orjson.JSONDecodeError:
            return []
    seen: set[tuple[str | None, str | None]] = set()
    unique = []
    for ref in refs:
        identity = (ref.object_id, None if ref.object_id else ref.url)
        if identity not in seen:
            seen.add(identity)
            unique.append(ref)
    return unique


class DocumentFetcher:
    """Downloads the files of an event's documents for one sink's ``documents`` option.

    Each download streams into a file; an event may list at most ``max_documents`` documents
    with at most ``max_total_bytes`` in all, and partner URLs go through ``partner`` (whose
    ``UrlPolicy`` decides which hosts may be fetched). Past a cap, or for a refused URL, the
    delivery is dead-lettered with the reason.
    """

    def __init__(
        self,
        client: TradecloudClient,
        *,
        object_ids: bool = True,
        urls: bool = False,
        kinds: frozenset[EventKind] = DOCUMENT_KINDS,
        partner: PartnerDownloader | None = None,
        max_documents: int = DEFAULT_MAX_DOCUMENTS,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    ) -> None:
        self._client = client
        self._object_ids = object_ids
        self._urls = urls
        self._kinds = kinds
        # Without a policy of its own, no partner host is allowed.
        self._partner = partner if partner is not None or not urls else PartnerDownloader(UrlPolicy())
        self._max_documents = max_documents
        self._max_total = max_total_bytes

    async def aclose(self) -> None:
        if self._partner is not None:
            await self._partner.aclose()

    def wants(self, event: StoredEvent) -> bool:
        return event.kind in self._kinds

    def refs(self, event: StoredEvent) -> list[DocumentRef]:
        """The documents of ``event`` this fetcher would download."""
        if not self.wants(event):
            return []
        return [
            ref
            for ref in find_documents(event.body, event.content_type)
            if (self._object_ids and ref.object_id) or (self._urls and not ref.object_id)
        ]

    async def fetch(self, event: StoredEvent, folder: Path) -> list[FetchedDocument]:
        """Download every document of ``event`` into ``folder`` (emptied first); raise
        ``PermanentError``/``TransientError`` on failure, leaving no partial file behind."""
        refs = self.refs(event)
        if not refs:
            return []
        if len(refs) > self._max_documents:
            raise PermanentError(
                f"the event lists {len(refs)} documents, more than the sink's max_documents = {self._max_documents}"
            )
        await asyncio.to_thread(_empty_folder, folder)
        left = self._max_total
        staged: list[tuple[DocumentRef, DownloadInfo, Path]] = []
        try:
            for i, ref in enumerate(refs):
                part = folder / f".part-{i}"
                info = await self._download(ref, part, left)
                left -= info.size
                staged.append((ref, info, part))
            names = unique_names([safe_filename(info.filename or ref.name or "document") for ref, info, _ in staged])
            fetched = []
            for (ref, info, part), name in zip(staged, names, strict=True):
                await asyncio.to_thread(os.replace, part, folder / name)
                fetched.append(FetchedDocument(ref, name, info.content_type, folder / name, info.size))
        except BaseException:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, folder, True))
            raise
        log.info(
            "tradecloud_documents_fetched",
            event_id=event.event_id,
            count=len(fetched),
            bytes=self._max_total - left,
        )
        return fetched

    async def _download(self, ref: DocumentRef, dest: Path, left: int) -> DownloadInfo:
        try:
            if ref.object_id:
                return await self._client.download_document_to(ref.object_id, dest, left)
            assert ref.url is not None and self._partner is not None
            return await self._partner.download_to(ref.url, dest, left)
        except DownloadRefused as exc:
            cap = f" (the sink allows {self._max_total} bytes per event: max_document_bytes_total)"
            reason = f"{exc}{cap}" if "bytes left" in str(exc) else str(exc)
            raise PermanentError(f"document {ref.source} at {ref.where}: {reason}") from None
        except TradecloudNotFound as exc:
            raise PermanentError(f"document {ref.source} at {ref.where}: {exc}") from exc
        except TradecloudApiError as exc:
            raise TransientError(f"document {ref.source} at {ref.where}: {exc}") from exc


def _empty_folder(folder: Path) -> None:
    """``folder`` created (0700) and emptied of what an earlier attempt left."""
    shutil.rmtree(folder, ignore_errors=True)
    make_dirs(folder, PRIVATE_DIR)


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` (already cleaned) made distinct, case-insensitively, with ``-2``, ``-3``... suffixes."""
    result: list[str] = []
    taken: set[str] = set()
    for original in names:
        name = original
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        n = 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        taken.add(name.lower())
        result.append(name)
    return result
