"""Documents a trading partner names: SSRF, size and count caps, and file names.

The receiver runs as ``tcwebhook serve`` with files sinks that download document URLs; the fake
Tradecloud API (tests/tradecloud_api/fake_api.py) doubles as the partner's content server, on
loopback with a certificate for ``localhost`` and ``127.0.0.1``. Three sinks with different
policies see the same events:

- ``strict``: the defaults (no private addresses), several hosts listed, loopback among them;
- ``lab``: ``localhost`` only, private addresses allowed (the test-rig switch), small caps;
- ``bulk``: ``localhost`` only, private addresses allowed, large caps, for the memory check.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.reliability.conftest import FAST_DELIVERY, pending_count, rss_mb, wait_until
from tests.support.files import mode_of
from tests.support.servers import RunningServer, ServerFactory
from tests.tradecloud_api.fake_api import PASSWORD, USERNAME, FakeServer

from tcwebhook.config import load_settings
from tcwebhook.inbox.base import Delivery
from tcwebhook.inbox.factory import open_inbox

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024
CHECKED = "OrderDocumentsAttachedBySupplier"  # strict and lab take these
BULK = "OrderDocumentsAttachedByBuyer"  # bulk takes these


@pytest.fixture
def partner(server_factory: ServerFactory, tmp_path: Path) -> Iterator[FakeServer]:
    api = FakeServer(tmp_path / "api")
    api.start()
    yield api
    # The receivers first: the API then has no TLS connection left open when it stops.
    server_factory.stop_all()
    api.stop()


def deliveries(config: Path, event_ids: Sequence[str]) -> dict[str, dict[str, Delivery]]:
    async def read() -> dict[str, dict[str, Delivery]]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            return {eid: {d.sink: d for d in await inbox.deliveries(eid)} for eid in event_ids}
        finally:
            await inbox.close()

    return asyncio.run(read())


def documents_event(urls: Sequence[str], event_name: str = CHECKED) -> dict[str, Any]:
    return {
        "eventName": event_name,
        "orderDocumentsEvent": {
            "orderId": str(uuid.uuid4()),
            "buyerOrder": {"purchaseOrderNumber": f"PO-{uuid.uuid4().hex[:8]}"},
            "lines": [{"position": "0001", "documents": [{"code": f"D{i}", "url": u} for i, u in enumerate(urls)]}],
        },
        "meta": {"messageId": str(uuid.uuid4())},
    }


def start(server_factory: ServerFactory, api: FakeServer, tmp_path: Path) -> RunningServer:
    def sink(name: str, events: str, hosts: str, private: bool, caps: str = "") -> str:
        return (
            f'[[sinks]]\nname = "{name}"\ntype = "files"\ndirectory = "{tmp_path / name}"\n'
            f'events = ["{events}"]\ndownload_urls = true\ndownload_hosts = [{hosts}]\n'
            f"allow_private_download_addresses = {'true' if private else 'false'}\n{caps}"
        )

    extra = (
        FAST_DELIVERY
        + f'[tradecloud]\napi_base = "{api.api_base}"\nusername = "{USERNAME}"\npassword = "{PASSWORD}"\n'
        + f'ca_bundle = "{api.ca_path}"\ntimeout = 5\nmax_retries = 0\n'
        + sink("strict", CHECKED, '"localhost", "127.0.0.1", "169.254.169.254", "*.internal.test"', False)
        + sink("lab", CHECKED, '"localhost"', True, f"max_documents = 6\nmax_document_bytes_total = {8 * MiB}\n")
        + sink("bulk", BULK, '"localhost"', True, f"max_document_bytes_total = {200 * MiB}\n")
    )
    return server_factory.start("documents", extra=extra)


def post_all(server: RunningServer, bodies: Sequence[dict[str, Any]]) -> list[str]:
    ids = []
    with server.client() as client:
        for body in bodies:
            r = client.post(server.url_orders, json=body, headers=server.bearer())
            assert r.status_code == 202, r.text
            ids.append(r.json()["eventId"])
    assert server.config_path is not None
    config = server.config_path
    assert wait_until(lambda: pending_count(config) == 0, 60), "deliveries did not settle"
    return ids


class TestPartnerUrls:
    """Only https, only listed hosts, only public addresses, every redirect hop checked."""

    def test_refusals_and_allowed_path(
        self, server_factory: ServerFactory, partner: FakeServer, tmp_path: Path
    ) -> None:
        fake, port = partner.fake, partner.port
        fake.add_partner_file("ok.pdf", b"%PDF ok")
        fake.add_partner_file("secret", b"internal answer")
        fake.fail("/partner/hop-host", 302, times=1, location=f"https://127.0.0.1:{port}/partner/secret")
        fake.fail("/partner/hop-http", 302, times=1, location=f"http://localhost:{port}/partner/secret")
        fake.fail("/partner/hop-meta", 302, times=1, location="https://169.254.169.254/latest/meta-data/")
        local = f"https://localhost:{port}/partner"
        cases = {
            "http": f"http://localhost:{port}/partner/ok.pdf",
            "unlisted": "https://evil.example/x.pdf",
            "loopback": f"{local}/ok.pdf",
            "loopback-ip": f"https://127.0.0.1:{port}/partner/ok.pdf",
            "metadata": "https://169.254.169.254/latest/meta-data/iam",
            "credentials": f"https://user:pw@localhost:{port}/partner/ok.pdf",
            "hop-host": f"{local}/hop-host",
            "hop-http": f"{local}/hop-http",
            "hop-meta": f"{local}/hop-meta",
        }
        server = start(server_factory, partner, tmp_path)
        ids = dict(zip(cases, post_all(server, [documents_event([u]) for u in cases.values()]), strict=True))
        assert server.config_path is not None
        found = deliveries(server.config_path, list(ids.values()))
        strict = {case: found[eid]["strict"] for case, eid in ids.items()}
        lab = {case: found[eid]["lab"] for case, eid in ids.items()}

        assert {case: d.status for case, d in strict.items()} == dict.fromkeys(cases, "dead")
        assert "only https" in (strict["http"].last_error or "")
        assert "not in the sink's download_hosts" in (strict["unlisted"].last_error or "")
        for case in ("loopback", "loopback-ip", "hop-host", "hop-http", "hop-meta"):
            assert "resolves to 127.0.0.1" in (strict[case].last_error or ""), case
        assert "resolves to 169.254.169.254" in (strict["metadata"].last_error or "")
        assert "credentials" in (strict["credentials"].last_error or "")

        # The test-rig switch allows loopback for the listed host only, and still checks each hop.
        assert lab["loopback"].status == "delivered"
        assert "127.0.0.1 is not in the sink's download_hosts" in (lab["loopback-ip"].last_error or "")
        assert "127.0.0.1 is not in the sink's download_hosts" in (lab["hop-host"].last_error or "")
        assert "only https" in (lab["hop-http"].last_error or "")
        assert "169.254.169.254 is not in the sink's download_hosts" in (lab["hop-meta"].last_error or "")
        assert not fake.calls_to("/partner/secret"), "a refused redirect target was fetched"
        assert not fake.calls_to("/latest/")
        # Only the lab sink's allowed download reached the server; strict never connected.
        assert len(fake.calls_to("/partner/ok.pdf")) == 1
        [folder] = (tmp_path / "lab").glob("*.documents")
        assert [p.read_bytes() for p in folder.iterdir()] == [b"%PDF ok"]


class TestCaps:
    """Count and byte caps per event dead-letter with the reason; downloads stream to disk."""

    def test_caps_and_memory(self, server_factory: ServerFactory, partner: FakeServer, tmp_path: Path) -> None:
        fake, port = partner.fake, partner.port
        local = f"https://localhost:{port}/partner"
        for i in range(7):
            fake.add_partner_file(f"small-{i}.pdf", b"%PDF small")
        fake.add_partner_file("five.bin", bytes(5 * MiB), "application/octet-stream")
        fake.add_partner_file("five-b.bin", bytes(5 * MiB), "application/octet-stream")
        big = bytes(range(256)) * (40 * MiB // 256)
        for i in range(3):
            fake.add_partner_file(f"big-{i}.bin", big, "application/octet-stream")
        server = start(server_factory, partner, tmp_path)

        many = documents_event([f"{local}/small-{i}.pdf" for i in range(7)])
        heavy = documents_event([f"{local}/five.bin", f"{local}/five-b.bin"])
        ids = post_all(server, [many, heavy])
        assert server.config_path is not None
        found = deliveries(server.config_path, ids)
        assert found[ids[0]]["lab"].status == "dead"
        assert "7 documents, more than the sink's max_documents = 6" in (found[ids[0]]["lab"].last_error or "")
        assert not fake.calls_to("/partner/small-"), "documents past the count cap were downloaded"
        assert found[ids[1]]["lab"].status == "dead"
        assert "max_document_bytes_total" in (found[ids[1]]["lab"].last_error or "")
        assert not list((tmp_path / "lab").glob("*.documents")), "a partial event's documents reached the ERP"
        staging = server.data_dir / "documents" / "lab"
        assert not [p for p in staging.rglob("*") if p.is_file()], "partial downloads were left behind"

        # 3 x 40 MiB for one event: memory must not grow with the documents' size.
        baseline = rss_mb(server.proc.pid)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(rss_mb(server.proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            [bulk_id] = post_all(server, [documents_event([f"{local}/big-{i}.bin" for i in range(3)], BULK)])
        finally:
            done.set()
            sampler.join(5)
        elapsed = time.monotonic() - started
        found = deliveries(server.config_path, [bulk_id])
        assert found[bulk_id]["bulk"].status == "delivered", found[bulk_id]["bulk"].last_error
        [folder] = (tmp_path / "bulk").glob("*.documents")
        assert sorted(p.stat().st_size for p in folder.iterdir()) == [len(big)] * 3
        growth = max(peak) - baseline
        print(f"3 x 40 MiB documents: RSS {baseline:.0f} -> peak {max(peak):.0f} MiB, {elapsed:.1f} s")
        assert growth < 48, f"RSS grew by {growth:.0f} MiB while downloading 120 MiB"


class TestNames:
    """Names are unique after the final cleaning; documents live in the event's own folder."""

    def test_collisions_and_reserved_names(
        self, server_factory: ServerFactory, partner: FakeServer, tmp_path: Path
    ) -> None:
        fake, port = partner.fake, partner.port
        names = ["a b.pdf", "a_b.pdf", "a<b.pdf", "A_B.PDF", "full-order.json", "x.json"]
        for i, name in enumerate(names):
            fake.add_partner_file(name, f"content {i}".encode())
        urls = [f"https://localhost:{port}/partner/{quote(name)}" for name in names]
        server = start(server_factory, partner, tmp_path)
        [event_id] = post_all(server, [documents_event(urls)])
        assert server.config_path is not None
        lab = deliveries(server.config_path, [event_id])[event_id]["lab"]
        assert lab.status == "delivered", lab.last_error
        drop = tmp_path / "lab"
        [event_file] = drop.glob("*.json")
        stem = event_file.name.removesuffix(".json")
        assert sorted(p.name for p in drop.iterdir()) == [f"{stem}.documents", f"{stem}.json"]
        folder = drop / f"{stem}.documents"
        stored = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert len(stored) == len(names)
        assert sorted(stored.values()) == sorted(f"content {i}".encode() for i in range(len(names)))
        assert len({n.lower() for n in stored}) == len(names)
        assert stored["full-order.json"] == b"content 4"  # a partner's file, apart from ours
        assert mode_of(folder) == 0o700
        assert {mode_of(p) for p in folder.iterdir()} == {0o600}
