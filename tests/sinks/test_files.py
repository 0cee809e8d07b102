from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

import pytest

from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError, TransientError
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.files import FilesSink, file_stem, safe_part

from .conftest import make_event

pytestmark = pytest.mark.anyio

STEM = "20260527T101502.123456Z_000000042_OrderLinesAcceptedBySupplier_PO-2025-000123_01JEVENT0000000000000000AB"


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class TestNaming:
    """File names sort by arrival, say what they hold and split into five safe parts."""

    def test_order_name(self) -> None:
        assert file_stem(make_event()) == STEM

    def test_shipment_uses_shipment_number(self) -> None:
        event = make_event(
            kind=EventKind.SHIPMENT,
            event_name="ShipmentIssuedBySupplier",
            shipment_id="5d1f",
            shipment_number="SHP-77",
        )
        assert file_stem(event).split("_")[2:4] == ["ShipmentIssuedBySupplier", "SHP-77"]
        assert file_stem(make_event(kind=EventKind.SHIPMENT_FETCH, shipment_id="5d1f")).split("_")[3] == "5d1f"

    def test_falls_back_to_order_id(self) -> None:
        event = make_event(kind=EventKind.ORDER_FETCH, purchase_order_number=None)
        assert file_stem(event).split("_")[3] == "3b0c2a0e"
        anonymous = make_event(purchase_order_number=None, order_id=None)
        assert file_stem(anonymous).split("_")[3] == "none"

    def test_parts_are_sanitised(self) -> None:
        event = make_event(
            purchase_order_number="../PO 2025/Ä_12",
            event_name="Order*Lines?",
            event_id="a/b\\c",
        )
        stem = file_stem(event)
        parts = stem.split("_")
        assert len(parts) == 5
        assert parts[2:] == ["Order%2ALines%3F", "%2E.%2FPO%202025%2F%C3%84%5F12", "a%2Fb%5Cc"]
        assert unquote(parts[3]) == "../PO 2025/Ä_12"
        assert safe_part("x" * 300) == "x" * 64

    @pytest.mark.parametrize(
        "number",
        ["PO-05-#51388860", "PO 1/2", "PO%41", "A&B", "A+B", "é-1", "漢字", "PO.", "..", "~x_y", "a\\b"],
    )
    def test_numbers_are_escaped_reversibly(self, number: str) -> None:
        """Every character of a PO number survives in the name, percent-encoded where unsafe."""
        part = file_stem(make_event(purchase_order_number=number)).split("_")[3]
        assert re.fullmatch(r"[A-Za-z0-9.%-]+", part), part
        assert not part.startswith(".") and not part.endswith(".")
        assert unquote(part) == number

    def test_escapes_are_never_cut_in_half(self) -> None:
        for size in range(60, 70):
            part = safe_part("#" * size)
            assert len(part) <= 64 and re.fullmatch(r"(%23)+", part), part

    def test_different_numbers_get_different_names(self) -> None:
        numbers = ["A#1", "A&1", "A 1", "A/1", "A-1", "A+1"]
        parts = {safe_part(n) for n in numbers}
        assert len(parts) == len(numbers)

    def test_local_time_is_converted_to_utc(self) -> None:
        cest = timezone(timedelta(hours=2))
        event = make_event(received_at=datetime(2026, 5, 27, 12, 15, 2, 123456, tzinfo=cest))
        assert file_stem(event) == STEM

    def test_sort_order_is_arrival_order(self, tmp_path: Path) -> None:
        start = datetime(2026, 5, 27, 23, 59, 59, 999999, tzinfo=UTC)
        events = [
            make_event(
                seq=seq,
                event_id=f"id{seq}",
                received_at=start + timedelta(microseconds=seq // 2),  # ties broken by seq
                event_name=name,
            )
            for seq, name in zip([8, 9, 10, 11, 99], "ZYXWV", strict=True)
        ]
        assert sorted(events, key=file_stem) == events


class TestDeliver:
    """Each event becomes one file, written atomically and idempotently."""

    async def test_writes_body_verbatim(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path / "out")
        event = make_event()
        await sink.deliver(event)
        assert names(tmp_path / "out") == [STEM + ".json"]
        assert (tmp_path / "out" / (STEM + ".json")).read_bytes() == event.body

    async def test_xml_extension(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path)
        await sink.deliver(make_event(content_type="application/xml; charset=UTF-8", body=b"<a/>"))
        assert names(tmp_path) == [STEM + ".xml"]

    async def test_redelivery_is_idempotent(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path)
        event = make_event()
        await sink.deliver(event)
        await sink.deliver(Event.from_stored(event))
        assert names(tmp_path) == [STEM + ".json"]

    async def test_subfolders_per_kind(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path, subfolders=True)
        await sink.deliver(make_event())
        await sink.deliver(make_event(kind=EventKind.SHIPMENT, event_id="s1", shipment_number="S9"))
        assert names(tmp_path) == ["order", "shipment"]
        assert names(tmp_path / "order") == [STEM + ".json"]
        assert len(names(tmp_path / "shipment")) == 1

    async def test_failed_write_leaves_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = FilesSink("drop", tmp_path)

        def full_disk(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(TransientError, match="No space left on device"):
            await sink.deliver(make_event())
        assert names(tmp_path) == []

    async def test_directory_gone_is_transient(self, tmp_path: Path) -> None:
        target = tmp_path / "out"
        sink = FilesSink("drop", target)
        target.rmdir()
        target.write_text("a file where the folder was")
        with pytest.raises(TransientError, match="cannot write"):
            await sink.deliver(make_event())

    async def test_directory_recreated_when_removed(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path / "out")
        (tmp_path / "out").rmdir()
        await sink.deliver(make_event())
        assert names(tmp_path / "out") == [STEM + ".json"]


class TestBatch:
    """A batch of events: every file written and fsync'd, each folder fsync'd once for all."""

    async def test_one_folder_fsync_for_the_batch(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = FilesSink("drop", tmp_path, subfolders=True)
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append("folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        events = [make_event(seq=i, event_id=f"E{i}") for i in range(5)]
        events.append(make_event(kind=EventKind.SHIPMENT, event_id="S1", shipment_number="S9"))
        assert await sink.deliver_batch(events) == [None] * 6
        assert len(names(tmp_path / "order")) == 5 and len(names(tmp_path / "shipment")) == 1
        for event in events:
            assert sink.path_for(event).read_bytes() == event.body
        assert sorted(synced) == ["file"] * 6 + ["folder"] * 2  # order/ and shipment/, once each

    async def test_all_written_before_the_first_fsync(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Written, then fsync'd, then renamed: the kernel writes the batch out together, and no
        # final name appears before every file of the batch is on disk.
        sink = FilesSink("drop", tmp_path)
        seen: list[tuple[int, int]] = []  # (temp files, final files) at each file fsync
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if not os.path.isdir(f"/proc/self/fd/{fd}"):
                listed = os.listdir(tmp_path)
                seen.append((sum(n.endswith(".tmp") for n in listed), sum(not n.startswith(".") for n in listed)))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        events = [make_event(seq=i, event_id=f"E{i}") for i in range(4)]
        assert await sink.deliver_batch(events) == [None] * 4
        assert seen == [(4, 0)] * 4
        assert names(tmp_path) == sorted(sink.path_for(e).name for e in events)

    async def test_a_failed_file_fails_alone(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = FilesSink("drop", tmp_path)
        real_fsync = os.fsync
        calls = 0

        def second_fails(fd: int) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError(28, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", second_fails)
        events = [make_event(seq=i, event_id=f"E{i}") for i in range(3)]
        results = await sink.deliver_batch(events)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], TransientError) and "No space left" in str(results[1])
        assert names(tmp_path) == sorted(sink.path_for(events[i]).name for i in (0, 2))  # no temp file left

    async def test_folder_fsync_failure_fails_its_files(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        sink = FilesSink("drop", tmp_path)
        real_fsync = os.fsync

        def folder_fails(fd: int) -> None:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", folder_fails)
        results = await sink.deliver_batch([make_event(seq=i, event_id=f"E{i}") for i in range(2)])
        assert all(isinstance(r, TransientError) and "Input/output error" in str(r) for r in results)


class TestAttachments:
    """Attachments sit beside the event file, under the same stem."""

    async def test_bytes(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path, subfolders=True)
        path = await sink.write_attachment(make_event(), "invoice 2025.pdf", b"%PDF-1.7")
        assert path == tmp_path / "order" / f"{STEM}.invoice-2025.pdf"
        assert path.read_bytes() == b"%PDF-1.7"

    async def test_stream(self, tmp_path: Path) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield bytes([65 + i]) * 1000

        sink = FilesSink("drop", tmp_path)
        path = await sink.write_attachment_stream(make_event(), "big.bin", chunks())
        assert path.read_bytes() == b"A" * 1000 + b"B" * 1000 + b"C" * 1000
        assert names(tmp_path) == [path.name]

    async def test_broken_stream_leaves_nothing(self, tmp_path: Path) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"half"
            raise ConnectionError("download interrupted")

        sink = FilesSink("drop", tmp_path)
        with pytest.raises(ConnectionError):
            await sink.write_attachment_stream(make_event(), "doc.pdf", chunks())
        assert names(tmp_path) == []

    async def test_never_replaces_the_event_file(self, tmp_path: Path) -> None:
        sink = FilesSink("drop", tmp_path)
        path = await sink.write_attachment(make_event(), "json", b"{}")
        assert path != sink.path_for(make_event())


class TestStartup:
    """The folder is created at start-up; an unusable one is a StartupError."""

    def test_creates_nested_folder(self, tmp_path: Path) -> None:
        FilesSink("drop", tmp_path / "a" / "b")
        assert (tmp_path / "a" / "b").is_dir()

    def test_path_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("x")
        with pytest.raises(StartupError, match="cannot create the directory"):
            FilesSink("drop", tmp_path / "f")

    @pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
    def test_read_only_folder(self, tmp_path: Path) -> None:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        with pytest.raises(StartupError, match="not writable"):
            FilesSink("drop", folder)
