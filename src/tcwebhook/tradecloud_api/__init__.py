"""The client for the Tradecloud API, and what the delivery path builds on it.

``TradecloudClient`` (orders, shipments, documents by id), ``FetchResolver`` (GET-webhook
triggers become full objects), ``Enricher`` (full order beside an order event) and
``DocumentFetcher`` (document files of an event).
"""

from __future__ import annotations

from tcwebhook.tradecloud_api.client import TradecloudClient
from tcwebhook.tradecloud_api.coalesce import Coalescer
from tcwebhook.tradecloud_api.documents import (
    DocumentFetcher,
    DocumentMetadata,
    DocumentRef,
    DownloadedFile,
    FetchedDocument,
    find_documents,
    safe_filename,
    unique_names,
)
from tcwebhook.tradecloud_api.downloads import DownloadInfo, PartnerDownloader, UrlPolicy
from tcwebhook.tradecloud_api.enrich import Enricher
from tcwebhook.tradecloud_api.fetch import (
    FetchPlan,
    FetchResolver,
    FetchTarget,
    fetch_target,
    plan_fetches,
)

__all__ = [
    "Coalescer",
    "DocumentFetcher",
    "DocumentMetadata",
    "DocumentRef",
    "DownloadInfo",
    "DownloadedFile",
    "Enricher",
    "FetchPlan",
    "FetchResolver",
    "FetchTarget",
    "FetchedDocument",
    "PartnerDownloader",
    "TradecloudClient",
    "UrlPolicy",
    "fetch_target",
    "find_documents",
    "plan_fetches",
    "safe_filename",
    "unique_names",
]
