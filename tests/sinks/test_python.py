from __future__ import annotations

import importlib
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from uuid import uuid4

import pytest
import structlog

from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.sinks.event import Event
from tcwebhook.sinks.python import PythonSink, resolve_callable

from .conftest import make_event

pytestmark = pytest.mark.anyio

HANDLERS = """
import asyncio
import threading

import structlog

from tcwebhook.errors import PermanentError, TransientError

received = []
threads = []
context = []
release = threading.Event()


def sync_handler(event):
    received.append(event)
    threads.append(threading.current_thread().name)
    context.append(structlog.contextvars.get_contextvars())


async def async_handler(event):
    received.append(event)
    threads.append(threading.current_thread().name)


def refuse(event):
    raise PermanentError("ERP rejects order " + str(event.purchase_order_number))


def later(event):
    raise TransientError("ERP in maintenance")


def crash(event):
    raise ValueError("boom")


async def async_crash(event):
    raise KeyError("missing")


def block(event):
    release.wait(5)


async def hang(event):
    await asyncio.sleep(5)


class Handlers:
    @staticmethod
    def on_event(event):
        received.append(event)


class Callable:
    async def __call__(self, event):
        received.append(event)


instance = Callable()
not_callable = 42
"""


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A fresh module of handlers under a unique name, importable by dotted path."""
    package = f"erp_hooks_{uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / package / "broken.py").write_text("raise RuntimeError('bad config')\n")
    (tmp_path / package / "needs_dep.py").write_text("import not_installed_pkg_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{package}.handlers")
    yield module
    module.release.set()


class TestCallables:
    """Sync and async callables get an Event; sync ones run off the event loop."""

    async def test_sync_runs_in_a_thread(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:sync_handler")
        try:
            await sink.deliver(make_event())
        finally:
            await sink.close()
        (event,) = handlers.received
        assert isinstance(event, Event)
        assert event.purchase_order_number == "PO-2025-000123"
        assert event.body == make_event().body
        assert handlers.threads[0].startswith("sink-erp")

    async def test_async_runs_on_the_loop(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}.async_handler")
        await sink.deliver(make_event())
        await sink.close()
        assert handlers.threads == [threading.current_thread().name]

    async def test_log_context_reaches_the_thread(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:sync_handler")
        with structlog.contextvars.bound_contextvars(event_id="e-1"):
            await sink.deliver(make_event())
        await sink.close()
        assert handlers.context[0]["event_id"] == "e-1"

    @pytest.mark.parametrize("path", [":Handlers.on_event", ".Handlers.on_event", ":instance"])
    async def test_other_callables(self, handlers: ModuleType, path: str) -> None:
        sink = PythonSink("erp", handlers.__name__ + path)
        await sink.deliver(make_event())
        await sink.close()
        assert len(handlers.received) == 1

    async def test_extras_pass_through(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:sync_handler")
        event = Event.from_stored(make_event(), extras={"order": {"orderId": "3b0c2a0e"}})
        await sink.deliver(event)
        await sink.close()
        assert handlers.received[0] is event
        assert handlers.received[0].extras == {"order": {"orderId": "3b0c2a0e"}}

    async def test_plain_function_object(self) -> None:
        seen: list[Event] = []

        async def handler(event: Event) -> None:
            seen.append(event)

        await PythonSink("erp", handler).deliver(make_event())
        assert seen[0].event_id == make_event().event_id


class TestOutcomes:
    """PermanentError dead-letters; everything else is retried."""

    async def test_permanent_passes_through(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:refuse")
        with pytest.raises(PermanentError, match="ERP rejects order PO-2025-000123"):
            await sink.deliver(make_event())
        await sink.close()

    async def test_transient_passes_through(self, handlers: ModuleType) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:later")
        with pytest.raises(TransientError, match=r"^ERP in maintenance$"):
            await sink.deliver(make_event())
        await sink.close()

    @pytest.mark.parametrize(
        ("name", "message", "cause"),
        [("crash", "ValueError: boom", ValueError), ("async_crash", "KeyError", KeyError)],
    )
    async def test_other_exceptions_are_retried(
        self, handlers: ModuleType, name: str, message: str, cause: type[Exception]
    ) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:{name}")
        with pytest.raises(TransientError, match=f"handler raised {message}") as info:
            await sink.deliver(make_event())
        await sink.close()
        assert isinstance(info.value.__cause__, cause)

    @pytest.mark.parametrize("name", ["block", "hang"])
    async def test_timeout(self, handlers: ModuleType, name: str) -> None:
        sink = PythonSink("erp", f"{handlers.__name__}:{name}", timeout=0.2)
        with pytest.raises(TransientError, match=r"did not finish within 0\.2 s"):
            await sink.deliver(make_event())
        handlers.release.set()
        await sink.close()


class TestResolve:
    """A bad dotted path is a StartupError with one sentence naming the problem."""

    @pytest.mark.parametrize(
        ("suffix", "message"),
        [
            (":missing", "has no attribute 'missing'"),
            (".missing", "has no attribute 'missing'"),
            (":Handlers.nope", "'Handlers' has no attribute 'nope'"),
            (":not_callable", "names a int, not a callable"),
        ],
    )
    def test_bad_attribute(self, handlers: ModuleType, suffix: str, message: str) -> None:
        with pytest.raises(StartupError, match=message):
            resolve_callable(handlers.__name__ + suffix, sink="erp")

    def test_missing_module(self) -> None:
        with pytest.raises(StartupError, match="cannot be imported; check the name"):
            resolve_callable("no_such_pkg_xyz.handlers:run", sink="erp")
        with pytest.raises(StartupError, match="cannot be imported"):
            resolve_callable("no_such_pkg_xyz.run", sink="erp")

    def test_module_fails_on_import(self, handlers: ModuleType) -> None:
        package = handlers.__name__.rsplit(".", 1)[0]
        with pytest.raises(StartupError, match=r"failed \(RuntimeError: bad config\)"):
            resolve_callable(f"{package}.broken:run", sink="erp")
        with pytest.raises(StartupError, match="No module named 'not_installed_pkg_xyz'"):
            resolve_callable(f"{package}.needs_dep.run", sink="erp")

    @pytest.mark.parametrize("path", ["", "handler", "a b:c", "mod:", "mod:1x", "a..b"])
    def test_not_a_dotted_path(self, path: str) -> None:
        with pytest.raises(StartupError, match="is not a dotted path"):
            resolve_callable(path, sink="erp")

    def test_message_is_one_sentence(self) -> None:
        with pytest.raises(StartupError) as info:
            PythonSink("erp", "no_such_pkg_xyz:run")
        text = str(info.value)
        assert text.startswith("Sink 'erp': ")
        assert text.endswith(".")
        assert "\n" not in text
