"""Fixtures for the simulator tests: a test PKI and scripted loopback HTTPS servers."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Iterator

import pytest

from .servers import Pki, ScriptedServer, Step

StartServer = Callable[..., ScriptedServer]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def serve() -> Iterator[StartServer]:
    """Start a scripted server with a given server context; all are stopped after the test."""
    started: list[ScriptedServer] = []

    def start(context: ssl.SSLContext | None, script: Iterable[Step] = (), default: Step = 200) -> ScriptedServer:
        server = ScriptedServer(context, list(script), default).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def good_context(pki: Pki) -> ssl.SSLContext:
    return pki.good()
