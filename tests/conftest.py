"""Fixtures that start the real receiver (``tests.support.servers``) and a PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.postgres import PgCluster, new_cluster
from tests.support.servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    CLI,
    TOKEN,
    TOKEN_NEXT,
    RunningServer,
    ServerFactory,
    free_port,
    logged_port,
    refused_port,
    wait_ready,
)

# Test modules import these from tests.support.servers; the names stay here for older imports.
__all__ = [
    "BASIC_PASSWORD",
    "BASIC_USER",
    "CLI",
    "TOKEN",
    "TOKEN_NEXT",
    "RunningServer",
    "ServerFactory",
    "free_port",
    "logged_port",
    "refused_port",
    "wait_ready",
]


# Whole suites whose tests start several servers or run for many seconds each: `pytest -m "not slow"`
# leaves them out (make test runs everything). A single long test elsewhere carries @pytest.mark.slow.
SLOW_PATHS = (
    "tests/reliability/",
    "tests/deploy/",
    "tests/transport/test_acme.py",
    "tests/console/test_browser.py",
    "tests/dispatch/test_end_to_end.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if where.startswith(SLOW_PATHS) or item.get_closest_marker("reliability"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def anyio_backend() -> str:
    # asyncio only: the service runs on asyncio (uvloop), and trio may be installed (selenium needs it).
    return "asyncio"


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_factory(test_ca: trustme.CA, tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(test_ca, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def live_server(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `tcwebhook serve` shared by the tests that only send requests to it."""
    factory = ServerFactory(test_ca, tmp_path_factory.mktemp("live"))
    server = factory.start()
    yield server
    factory.stop_all()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`tcwebhook dev` exactly as the README's first command runs it, on ports it picks."""
    directory = tmp_path_factory.mktemp("dev")
    log_path = directory / "dev.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "dev", "--data-dir", str(directory / "data"), "--port", "0", "--console-port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    creds_path = directory / "data" / "dev" / "credentials.json"
    port = logged_port(log_path, "listening", proc)
    server = RunningServer(proc, port, directory / "data" / "dev" / "ca.pem", "", "", directory / "data", log_path)
    wait_ready(server)  # healthy means the credentials file was written before listening
    creds = json.loads(creds_path.read_text())
    server.token = creds["bearer_token"]
    server.basic = f"{creds['basic_username']}:{creds['basic_password']}"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throw-away PostgreSQL server for the session (tests that stop it make their own)."""
    cluster = new_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's server, as a libpq URL with its password."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)
