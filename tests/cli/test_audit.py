"""`tcwebhook audit` through the real binary: actions of the CLI recorded, the chain verified, exported."""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
from pathlib import Path

import psycopg
from tests.cli.conftest import seed
from tests.support.servers import CLI

from tcwebhook.config import load_settings


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # From another directory: the config file alone says where the store is.
    return subprocess.run([*CLI, *args, "--config", str(config)], capture_output=True, text=True, timeout=60,
                          cwd=config.parent.parent, check=False)


def _edit(config: Path, sql: str) -> None:
    settings = load_settings(config)
    if settings.store_url.startswith("postgres"):
        with psycopg.connect(settings.store_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
    else:
        with sqlite3.connect(config.parent / "data" / "inbox.db") as conn:
            conn.execute(sql)


def test_actions_are_listed_verified_and_exported(config: Path) -> None:
    ids = seed(config)
    assert _run(config, "events", "replay", ids["dead"], "--yes").returncode == 0
    assert _run(config, "db", "prune", "--delivered-older-than", "1d").returncode == 0

    listed = _run(config, "audit", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [e["action"] for e in entries] == ["events.replay", "db.prune"]
    replay = entries[0]
    assert replay["actor"] == getpass.getuser() and replay["source"].startswith("cli@")
    assert ids["dead"] in replay["target"] and replay["detail"]["requeued"] == 1
    assert json.loads(_run(config, "audit", "list", "--json", "--actor", "nobody-else").stdout) == []

    verified = _run(config, "audit", "verify")
    assert verified.returncode == 0 and "holds: 2 entries" in verified.stdout

    exported = _run(config, "audit", "export", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["hash"] for line in exported] == [e["hash"] for e in entries]

    _edit(config, "UPDATE audit SET target = 'nothing to see' WHERE action = 'events.replay'")
    broken = _run(config, "audit", "verify")
    assert broken.returncode == 1
    assert f"entry {replay['seq']}" in broken.stderr and "edited" in broken.stderr
