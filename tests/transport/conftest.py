"""Fixtures of the transport tests: a test CA, certificate files and a loopback TLS server (``tests.support.pki``)."""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.pki import IO_TIMEOUT as IO_TIMEOUT
from tests.support.pki import LoopbackTlsServer as LoopbackTlsServer
from tests.support.pki import Session as Session
from tests.support.pki import client_context as client_context
from tests.support.pki import handshake as handshake
from tests.support.pki import issue as issue
from tests.support.pki import write_pair as write_pair


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


# Helpers reach the tests as fixtures: test folders have no __init__.py to import them through.


@pytest.fixture
def leaf_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """certfile and keyfile of a trustme leaf for localhost and 127.0.0.1."""
    return write_pair(ca.issue_cert("localhost", "127.0.0.1"), tmp_path)


@pytest.fixture
def pair_writer(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    return functools.partial(write_pair, directory=tmp_path)


@pytest.fixture
def issue_cert(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    return functools.partial(issue, directory=tmp_path)


@pytest.fixture
def tls_server() -> Iterator[Callable[[ssl.SSLContext], LoopbackTlsServer]]:
    """Start loopback servers on a context; all are stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda context: stack.enter_context(LoopbackTlsServer(context))


@pytest.fixture
def client() -> Callable[..., ssl.SSLContext]:
    return client_context


@pytest.fixture
def connect() -> Callable[..., Session]:
    return handshake
