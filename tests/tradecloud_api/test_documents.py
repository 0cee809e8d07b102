"""Documents: finding them in event bodies and downloading them from (fake) object storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcwebhook.config import TradecloudSettings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import (
    DownloadRefused,
    PermanentError,
    TradecloudApiError,
    TradecloudNotFound,
    TransientError,
)
from tcwebhook.tradecloud_api import (
    DocumentFetcher,
    PartnerDownloader,
    TradecloudClient,
    UrlPolicy,
    find_documents,
    safe_filename,
    unique_names,
)

from .conftest import FAST, make_event
from .fake_api import FakeTradecloud

pytestmark = pytest.mark.anyio

PDF = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF"
OBJ = "5f0e3c1a-8a51-4c1e-9a64-0d1e0c3f9a11"

ORDER_DOCUMENTS = {
    "eventName": "OrderDocumentsAttachedBySupplier",
    "orderDocumentsEvent": {
        "orderId": "ord-1",
        "supplierOrder": {
            "documents": [
                {"code": "D1", "name": "Drawing", "type": "General", "objectId": OBJ},
                {"code": "M1", "name": "metadata only"},
            ]
        },
        "lines": [
            {"position": "0001", "documents": [{"code": "C1", "url": "https://partner.example/c.pdf"}]},
            {"position": "0002", "documents": [{"code": "D1-again", "objectId": OBJ}]},
        ],
    },
}


def client(settings: TradecloudSettings) -> TradecloudClient:
    return TradecloudClient(settings, backoff=FAST)


class TestDownloadDocument:
    """Metadata, then the pre-signed URL, re-fetched when expired, with the proxy as fallback."""

    async def test_presigned_download_without_auth_headers(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_document(OBJ, "drawing 7.pdf", PDF, "application/pdf")
        async with client(tc_settings) as tc:
            file = await tc.download_document_file(OBJ)
        assert (file.filename, file.content_type, file.content) == ("drawing 7.pdf", "application/pdf", PDF)
        [s3] = fake_api.calls_to("/s3/")
        assert "authorization" not in s3.headers and "refresh-token" not in s3.headers
        assert "X-Amz-Expires=60" in s3.query
        assert fake_api.calls_to("/v2/object-storage/document/", "GET")[0].path.endswith("/metadata")

    async def test_expired_url_refetches_metadata_once(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        fake_api.expired_urls = 1
        async with client(tc_settings) as tc:
            assert await tc.download_document(OBJ) == PDF
        assert [c.status for c in fake_api.calls_to("/s3/")] == [403, 200]
        assert len(fake_api.calls_to("/v2/object-storage/document/")) == 2  # two metadata calls

    async def test_url_refused_twice_uses_the_proxy_route(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        fake_api.expired_urls = 2
        async with client(tc_settings) as tc:
            assert await tc.download_document(OBJ) == PDF
        assert [c.status for c in fake_api.calls_to("/s3/")] == [403, 403]
        proxy = fake_api.calls_to(f"/v2/object-storage/document/{OBJ}")[-1]
        assert proxy.path == f"/v2/object-storage/document/{OBJ}"
        assert proxy.headers["authorization"].startswith("Bearer ")

    async def test_unreachable_storage_uses_the_proxy_route(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        fake_api.storage_unreachable = True
        async with client(tc_settings) as tc:
            file = await tc.download_document_file(OBJ)
        assert file.content == PDF and file.filename == "a.pdf"
        assert fake_api.calls_to("/s3/") == []

    async def test_metadata_outage_is_retried(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        fake_api.fail("/v2/object-storage/", 503, times=2)
        async with client(tc_settings) as tc:
            assert await tc.download_document(OBJ) == PDF

    async def test_unknown_document_is_not_found(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings
    ) -> None:
        async with client(tc_settings) as tc:
            with pytest.raises(TradecloudNotFound):
                await tc.download_document("no-such-object")

    async def test_partner_url_download(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        url = fake_api.add_partner_file("certificate 3.1.pdf", PDF)
        async with client(tc_settings) as tc:
            partner = PartnerDownloader(UrlPolicy.of(["127.0.0.1"], allow_private=True), verify=tc.verify)
            try:
                info = await partner.download_to(url, tmp_path / "f", 10**9)
                assert (info.filename, info.size) == ("certificate 3.1.pdf", len(PDF))
                assert (tmp_path / "f").read_bytes() == PDF
                with pytest.raises(TradecloudNotFound):
                    await partner.download_to(url + "-missing", tmp_path / "g", 10**9)
                with pytest.raises(DownloadRefused, match="https"):
                    await partner.download_to("file:///etc/passwd", tmp_path / "h", 10**9)
            finally:
                await partner.aclose()
        assert all("authorization" not in c.headers for c in fake_api.calls_to("/partner/"))

    async def test_streamed_to_file(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        async with client(tc_settings) as tc:
            info = await tc.download_document_to(OBJ, tmp_path / "a", 10**9)
            assert (info.filename, info.content_type, info.size) == ("a.pdf", "application/pdf", len(PDF))
            assert (tmp_path / "a").read_bytes() == PDF
            with pytest.raises(DownloadRefused, match="1000 bytes"):
                await tc.download_document_to(OBJ, tmp_path / "b", 1000)
        assert not (tmp_path / "b").exists()

    async def test_size_limit(self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        async with TradecloudClient(tc_settings, backoff=FAST, max_document_bytes=1000) as tc:
            with pytest.raises(TradecloudApiError, match="exceeds 1000 bytes"):
                await tc.download_document(OBJ)


class TestFindDocuments:
    """Documents with a file are found wherever the body nests them."""

    def test_order_documents_event(self) -> None:
        refs = find_documents(make_event(EventKind.ORDER_DOCUMENTS, ORDER_DOCUMENTS).body)
        assert [(r.object_id, r.url, r.code) for r in refs] == [
            (OBJ, None, "D1"),
            (None, "https://partner.example/c.pdf", "C1"),
        ]
        assert refs[0].where == "orderDocumentsEvent.supplierOrder.documents[0]"
        assert refs[1].where == "orderDocumentsEvent.lines[0].documents[0]"

    def test_shipment_documents(self) -> None:
        body = {
            "eventName": "ShipmentIssuedBySupplier",
            "shipment": {
                "supplierShipment": {"documents": [{"name": "Packing list", "objectId": "p1"}]},
                "buyerShipment": {"documents": [{"name": "Note", "url": "https://x.example/n"}]},
            },
        }
        refs = find_documents(make_event(EventKind.SHIPMENT, body).body)
        assert [r.where for r in refs] == [
            "shipment.supplierShipment.documents[0]",
            "shipment.buyerShipment.documents[0]",
        ]

    def test_txml(self) -> None:
        xml = (
            b'<?xml version="1.0" encoding="UTF-8"?><Root><orderDocumentsEvent><line>'
            b"<document><code>X</code><objectId>o-9</objectId><name>n</name></document>"
            b"<document><code>Y</code></document></line></orderDocumentsEvent></Root>"
        )
        [ref] = find_documents(xml, "application/xml; charset=utf-8")
        assert (ref.object_id, ref.code, ref.name) == ("o-9", "X", "n")

    @pytest.mark.parametrize("body", [b"", b"[1,2]", b"{not json", b'{"documents": "x"}'])
    def test_nothing_to_find(self, body: bytes) -> None:
        assert find_documents(body) == []
        assert find_documents(b"<a><document>", "application/xml") == []

    @pytest.mark.parametrize(
        ("name", "safe"),
        [
            ("invoice.pdf", "invoice.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\temp\\x.PDF", "x.PDF"),
            ("CON.txt", "_CON.txt"),
            ("...", "document"),
            ("a\x00b<>|.pdf", "a_b___.pdf"),
            ("x" * 300 + ".pdf", "x" * 146 + ".pdf"),
        ],
    )
    def test_safe_filename(self, name: str, safe: str) -> None:
        assert safe_filename(name) == safe


class TestDocumentFetcher:
    """Downloads for one event, errors mapped to dead-letter or retry."""

    async def test_fetch_and_save(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_document(OBJ, "drawing.pdf", PDF, "application/pdf")
        url = fake_api.add_partner_file("drawing.pdf", b"partner copy")
        body = {"orderDocumentsEvent": {"documents": [{"objectId": OBJ}, {"url": url}]}}
        event = make_event(EventKind.ORDER_DOCUMENTS, body)
        policy = UrlPolicy.of(["127.0.0.1"], allow_private=True)
        async with client(tc_settings) as tc:
            only_objects = await DocumentFetcher(tc).fetch(event, tmp_path / "one")
            assert [d.path.read_bytes() for d in only_objects] == [PDF]
            partner = PartnerDownloader(policy, verify=tc.verify)
            fetcher = DocumentFetcher(tc, urls=True, partner=partner)
            fetched = await fetcher.fetch(event, tmp_path / "out")
            await fetcher.aclose()
            assert await DocumentFetcher(tc).fetch(make_event(EventKind.ORDER, body), tmp_path / "x") == []
        assert [d.filename for d in fetched] == ["drawing.pdf", "drawing-2.pdf"]
        assert [d.path for d in fetched] == [tmp_path / "out" / "drawing.pdf", tmp_path / "out" / "drawing-2.pdf"]
        assert fetched[0].path.read_bytes() == PDF and fetched[1].path.read_bytes() == b"partner copy"
        assert sorted(os.listdir(tmp_path / "out")) == ["drawing-2.pdf", "drawing.pdf"]

    def test_unique_names(self) -> None:
        assert unique_names(["a.pdf", "A.pdf", "a-2.pdf", "b", "b"]) == ["a.pdf", "A-2.pdf", "a-2-2.pdf", "b", "b-2"]

    async def test_missing_document_dead_letters(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        event = make_event(EventKind.SHIPMENT, {"shipment": {"documents": [{"objectId": "gone"}]}})
        async with client(tc_settings) as tc:
            with pytest.raises(PermanentError, match=r"objectId gone at shipment\.documents"):
                await DocumentFetcher(tc).fetch(event, tmp_path)

    async def test_outage_is_transient(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        fake_api.add_document(OBJ, "a.pdf", PDF, "application/pdf")
        fake_api.fail("/v2/object-storage/", 503, times=50)
        event = make_event(EventKind.SHIPMENT, {"shipment": {"documents": [{"objectId": OBJ}]}})
        async with client(tc_settings) as tc:
            with pytest.raises(TransientError, match="HTTP 503"):
                await DocumentFetcher(tc).fetch(event, tmp_path)

    async def test_non_https_url_dead_letters(
        self, fake_api: FakeTradecloud, tc_settings: TradecloudSettings, tmp_path: Path
    ) -> None:
        event = make_event(EventKind.SHIPMENT, {"shipment": {"documents": [{"url": "ftp://x/y"}]}})
        async with client(tc_settings) as tc:
            fetcher = DocumentFetcher(tc, urls=True)
            with pytest.raises(PermanentError, match="https"):
                await fetcher.fetch(event, tmp_path)
            await fetcher.aclose()
