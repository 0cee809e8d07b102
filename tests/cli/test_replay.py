"""`events replay` with --sink, --dry-run and its confirmation, through the installed binary."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.conftest import event

from tcwebhook.config import load_settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.inbox import AttemptOutcome, AttemptResult, DeliveryStatus, open_inbox

BINARY = Path(sys.executable).parent / "tcwebhook"
DEAD_AT_ARCHIVE = 12


def run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("TCWEBHOOK_")}
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
                          input=stdin, env={**clean, "COLUMNS": "200"})


def shipment(i: int, updated: str) -> object:
    return event(i, kind=EventKind.SHIPMENT, event_name="ShipmentIssuedBySupplier", key="shipment:s-1",
                 order_id=None, shipment_id="s-1", shipment_number="SN-1", purchase_order_number=None,
                 last_updated_at=updated, body=b'{"shipment": %d}' % i)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """Two sinks: erp has every order delivered, archive has them dead; two states of one shipment."""
    config = tmp_path / "site" / "tcwebhook.toml"
    config.parent.mkdir()
    config.write_text(
        'data_dir = "data"\n'
        '[[sinks]]\nname = "erp"\ntype = "files"\ndirectory = "erp-out"\n'
        '[[sinks]]\nname = "archive"\ntype = "files"\ndirectory = "archive-out"\n'
    )

    async def main() -> dict[str, list[str]]:
        inbox = open_inbox(load_settings(config))
        await inbox.open()
        try:
            orders = [(await inbox.store(event(i))).event_id for i in range(DEAD_AT_ARCHIVE)]
            old = (await inbox.store(shipment(100, "2025-01-01T10:00:00Z"))).event_id
            new = (await inbox.store(shipment(101, "2025-01-01T11:00:00Z"))).event_id
            for _ in range(40):
                claims = await inbox.claim_due(owner="t", sinks=["erp", "archive"], limit=100, lease=60,
                                               stale_kinds=frozenset())
                if not claims:
                    break
                for claim in claims:
                    if claim.sink == "archive" and claim.event.kind is EventKind.ORDER:
                        result = AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, 0.0, 0.01, "refused")
                    else:
                        result = AttemptResult(DeliveryStatus.DELIVERED, AttemptOutcome.DELIVERED, 0.0, 0.01)
                    await inbox.finish(claim, result)
            return {"orders": orders, "old": [old], "new": [new]}
        finally:
            await inbox.close()

    return config, asyncio.run(main())


def statuses(config: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(config.parent / "data" / "inbox.db") as conn:
        rows = conn.execute(
            "SELECT e.event_id, d.sink, d.status FROM deliveries d JOIN events e ON e.seq = d.seq"
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


class TestReplay:
    """Replay asks before many, shows what it would do, and keeps to one sink when told."""

    def test_dry_run_per_sink_changes_nothing(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, _ids = site
        before = statuses(config)
        out = run("events", "replay", "--dead", "--dry-run", "--json", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert plan["selected"] == DEAD_AT_ARCHIVE
        assert plan["sinks"]["archive"]["requeue"] == DEAD_AT_ARCHIVE
        assert plan["sinks"]["erp"] == {"requeue": 0, "skipped_delivered": DEAD_AT_ARCHIVE,
                                        "skipped_in_flight": 0, "superseded": []}
        assert statuses(config) == before
        table = run("events", "replay", "--dead", "--dry-run", "--config", str(config), cwd=tmp_path)
        assert "nothing changed" in table.stdout and "archive" in table.stdout

    def test_asks_above_ten_and_refusal_changes_nothing(self, site: tuple[Path, dict[str, list[str]]],
                                                         tmp_path: Path) -> None:
        config, _ = site
        before = statuses(config)
        out = run("events", "replay", "--dead", "--config", str(config), cwd=tmp_path, stdin="n\n")
        assert out.returncode == 1
        assert f"Re-queue {DEAD_AT_ARCHIVE} deliveries of {DEAD_AT_ARCHIVE} events" in out.stderr
        assert "Nothing was re-queued" in out.stderr
        assert statuses(config) == before
        # No answer at all (a script without --yes) is a refusal too.
        assert run("events", "replay", "--dead", "--config", str(config), cwd=tmp_path).returncode == 1
        assert statuses(config) == before

    def test_one_sink_with_yes(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        out = run("events", "replay", "--dead", "--sink", "archive", "--yes", "--json", "--config", str(config),
                  cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["requeued"] == DEAD_AT_ARCHIVE and list(summary["sinks"]) == ["archive"]
        after = statuses(config)
        assert all(after[(i, "archive")] == "pending" for i in ids["orders"])
        assert all(after[(i, "erp")] == "delivered" for i in ids["orders"])

    def test_summary_counts_skipped_deliveries(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        out = run("events", "replay", *ids["orders"][:3], "--dead", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 2  # ids and --dead together: wrong usage
        out = run("events", "replay", "--dead", "--yes", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert f"Re-queued {DEAD_AT_ARCHIVE} deliveries" in out.stdout
        assert f"skipped {DEAD_AT_ARCHIVE} already delivered to that sink" in out.stdout

    def test_unknown_sink_is_wrong_usage(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        out = run("events", "replay", ids["orders"][0], "--sink", "erpp", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 2
        assert "no sink 'erpp'" in out.stderr

    def test_superseded_by_a_newer_state(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        out = run("events", "replay", ids["old"][0], ids["new"][0], "--sink", "erp", "--dry-run", "--json",
                  "--config", str(config), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)["sinks"]["erp"]
        assert plan["requeue"] == 2 and plan["superseded"] == ids["old"]
        forced = run("events", "replay", ids["old"][0], "--sink", "erp", "--dry-run", "--force", "--json",
                     "--config", str(config), cwd=tmp_path)
        assert json.loads(forced.stdout)["sinks"]["erp"]["superseded"] == []

    def test_show_names_the_outbox_file(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        out = run("events", "show", ids["new"][0], "--json", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        files = json.loads(out.stdout)["files"]
        assert set(files) == {"erp", "archive"}
        assert files["erp"].startswith(str(config.parent / "erp-out") + "/")
        table = run("events", "show", ids["new"][0], "--config", str(config), cwd=tmp_path)
        assert f"file of sink erp: {files['erp']}" in table.stdout


class TestIdsAndJunk:
    """Event ids by a unique prefix; junk bodies deleted after a question; attempts counted across replays."""

    def test_prefix(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        full = ids["new"][0]
        everyone = [i for group in ids.values() for i in group]
        shared = full[:8]
        # Time-ordered ids of events stored within a minute share their first 8 characters.
        assert sum(i.startswith(shared) for i in everyone) > 1
        ambiguous = run("events", "show", shared, "--config", str(config), cwd=tmp_path)
        assert ambiguous.returncode == 1 and "starts several event ids" in ambiguous.stderr
        whole = run("events", "show", full.upper(), "--json", "--config", str(config), cwd=tmp_path)
        assert json.loads(whole.stdout)["event_id"] == full
        short = run("events", "show", full[:7], "--config", str(config), cwd=tmp_path)
        assert short.returncode == 1 and "at least 8 characters" in short.stderr
        unique = _unique_prefix(full, everyone)
        out = run("events", "show", unique, "--json", "--config", str(config), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["event_id"] == full
        replay = run("events", "replay", unique, "--dry-run", "--json", "--config", str(config), cwd=tmp_path)
        assert replay.returncode == 0 and json.loads(replay.stdout)["selected"] == 1
        nothing = run("events", "replay", "ffffffff-0000", "--yes", "--config", str(config), cwd=tmp_path)
        assert nothing.returncode == 1 and "no event id starts with ffffffff-0000" in nothing.stderr

    def test_quarantine_delete_asks(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, _ = site

        async def junk() -> str:
            inbox = open_inbox(load_settings(config))
            await inbox.open()
            try:
                return await inbox.quarantine(route="orders", content_type="text/plain", body=b"hello", headers={},
                                              reason="unsupported media type", status_code=415)
            finally:
                await inbox.close()

        qid = asyncio.run(junk())
        refused = run("quarantine", "delete", qid, "--config", str(config), cwd=tmp_path, stdin="n\n")
        assert refused.returncode == 1 and "Nothing was deleted" in refused.stderr
        assert "415 unsupported media type" in refused.stderr
        assert run("quarantine", "show", qid, "--config", str(config), cwd=tmp_path).returncode == 0
        done = run("quarantine", "delete", qid, "--config", str(config), cwd=tmp_path, stdin="y\n")
        assert done.returncode == 0, done.stderr
        assert "Deleted 1 quarantined body" in done.stdout
        assert run("quarantine", "show", qid, "--config", str(config), cwd=tmp_path).returncode == 1
        assert run("quarantine", "delete", qid, "--yes", "--config", str(config), cwd=tmp_path).returncode == 1

    def test_attempts_count_across_replays(self, site: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
        config, ids = site
        event_id = ids["orders"][0]
        for _ in range(2):
            assert run("events", "replay", event_id, "--sink", "archive", "--config", str(config),
                       cwd=tmp_path).returncode == 0

            async def fail_again() -> None:
                inbox = open_inbox(load_settings(config))
                await inbox.open()
                try:
                    (claim,) = await inbox.claim_due(owner="t", sinks=["archive"], limit=1, lease=60,
                                                     stale_kinds=frozenset())
                    await inbox.finish(claim, AttemptResult(DeliveryStatus.DEAD, AttemptOutcome.PERMANENT, 0.0,
                                                            0.01, "refused"))
                finally:
                    await inbox.close()

            asyncio.run(fail_again())
        shown = json.loads(run("events", "show", event_id, "--json", "--config", str(config), cwd=tmp_path).stdout)
        assert [a["number"] for a in shown["attempts"] if a["sink"] == "archive"] == [1, 2, 3]
        table = run("events", "show", event_id, "--config", str(config), cwd=tmp_path).stdout
        assert "3 (1 since the last replay)" in table


def _unique_prefix(full: str, others: list[str]) -> str:
    for length in range(8, len(full) + 1):
        if sum(o.startswith(full[:length]) for o in others) == 1:
            return full[:length]
    return full
