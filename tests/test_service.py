"""The composition root: run_worker delivers with the sinks built from the settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.dispatch.conftest import order, until

from tcwebhook.config import Settings
from tcwebhook.errors import StartupError
from tcwebhook.inbox import open_inbox
from tcwebhook.service import Service, run_worker

pytestmark = pytest.mark.anyio


class TestRunWorker:
    """The worker delivers what another process stores, and stops on request."""

    async def test_delivers_to_a_folder(self, tmp_path: Path) -> None:
        outbox = tmp_path / "outbox"
        settings = Settings(
            data_dir=tmp_path / "data",
            sinks=({"name": "erp", "type": "files", "directory": str(outbox)},),
            delivery={"poll_interval": 0.05},
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))
        server_side = open_inbox(settings)
        await server_side.open()
        try:
            result = await server_side.store(order(1))

            async def delivered() -> bool:
                return (await server_side.get_event(result.event_id)).status == "delivered"

            await until(delivered)
            files = [p for p in outbox.rglob("*") if p.is_file()]
            assert len(files) == 1
            assert result.event_id in files[0].name
            assert files[0].read_bytes() == order(1).body  # the stored body, as it came in
        finally:
            stop.set()
            await asyncio.wait_for(worker, 10)
            await server_side.close()

    async def test_needs_a_sink(self, tmp_path: Path) -> None:
        with pytest.raises(StartupError, match="sinks"):
            await run_worker(Settings(data_dir=tmp_path))


class TestService:
    """The composition root builds sinks, store and dispatcher from the settings, and releases them."""

    async def test_api_options_need_credentials_before_anything_opens(self, tmp_path: Path) -> None:
        sink = {"name": "erp", "type": "files", "directory": str(tmp_path / "out"), "enrich": True}
        settings = Settings(data_dir=tmp_path / "data", sinks=(sink,))
        with pytest.raises(StartupError, match="'erp' uses enrich"):
            Service(settings).check()
        with pytest.raises(StartupError, match="'erp' uses enrich"):
            await Service(settings).open()
        assert not (tmp_path / "data" / "inbox.db").exists()

    async def test_receiver_needs_the_open_service(self, tmp_path: Path) -> None:
        sink = {"name": "erp", "type": "files", "directory": str(tmp_path / "out")}
        settings = Settings(data_dir=tmp_path / "data", sinks=(sink,))
        service = Service(settings)
        with pytest.raises(RuntimeError, match="not open"):
            service.inbox  # noqa: B018 - the property raises
        async with service:
            receiver = service.receiver()
            assert receiver.inbox is service.inbox
            assert service.dispatcher.sinks == ("erp",)
            await service.inbox.ping()
