"""The python sink: hand each event to a user callable (sync or async) inside the service."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from tcwebhook.config import DEFAULT_PYTHON_SINK_TIMEOUT
from tcwebhook.errors import PermanentError, StartupError, TransientError
from tcwebhook.formats import Output
from tcwebhook.inbox.base import StoredEvent
from tcwebhook.sinks.event import Event, EventLike
from tcwebhook.sinks.filters import SinkFilter

log = structlog.get_logger(__name__)

Handler = Callable[[Event], Any]

OUTPUT_KEY = "output"
"""``Event.extras`` key of the sink's rendered output (a ``formats.Rendered``) when its format is not body."""

_MESSAGE_LIMIT = 200


def _import(name: str, path: str, sink: str) -> Any | None:
    """Import module ``name``; None when that module (or a parent package) does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # "This very module is missing" means: try another split. A module that exists but
        # fails to import one of its own dependencies is a real error.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise StartupError(f"Sink {sink!r}: importing {name!r} for callable {path!r} failed ({exc}).") from None
    except Exception as exc:
        raise StartupError(
            f"Sink {sink!r}: importing {name!r} for callable {path!r} failed ({type(exc).__name__}: {exc})."
        ) from None


def resolve_callable(path: str, *, sink: str = "python") -> Handler:
    """Resolve ``package.module:attr`` or ``package.module.attr`` to a callable (StartupError)."""
    module_part, colon, attr_part = path.strip().partition(":")
    modules = module_part.split(".")
    attrs = attr_part.split(".") if colon else []
    if not all(n.isidentifier() for n in [*modules, *attrs]) or len(modules) + len(attrs) < 2:
        raise StartupError(f"Sink {sink!r}: callable {path!r} is not a dotted path like 'package.module:function'.")
    module: Any | None = None
    if colon:
        module = _import(module_part, path, sink)
    else:
        # Without ':' the split is unknown: take the longest prefix that is a module.
        for cut in range(len(modules) - 1, 0, -1):
            module = _import(".".join(modules[:cut]), path, sink)
            if module is not None:
                modules, attrs = modules[:cut], modules[cut:]
                break
    if module is None:
        raise StartupError(
            f"Sink {sink!r}: the module of callable {path!r} cannot be imported; check the name "
            "and that it is installed in the service's environment."
        )
    target: Any = module
    for attr in attrs:
        try:
            target = getattr(target, attr)
        except AttributeError:
            owner = getattr(target, "__name__", type(target).__name__)
            raise StartupError(f"Sink {sink!r}: {owner!r} has no attribute {attr!r} (callable {path!r}).") from None
    if not callable(target):
        raise StartupError(f"Sink {sink!r}: {path!r} names a {type(target).__name__}, not a callable.")
    handler: Handler = target
    return handler


def _is_async(handler: Handler) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - want the method, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class PythonSink:
    """Calls ``handler(event)`` with an :class:`Event`.

    ``PermanentError`` and ``TransientError`` raised by the handler pass through unchanged; any
    other exception becomes a ``TransientError`` (retried). Sync handlers run in the sink's own
    thread pool so a blocking ERP call does not stall the event loop; ``timeout`` (seconds,
    60 unless set; ``None`` for none) bounds each call, though a sync handler's thread cannot be
    stopped and runs on.
    """

    def __init__(
        self,
        name: str,
        handler: str | Handler,
        *,
        events: Iterable[str] = (),
        timeout: float | None = DEFAULT_PYTHON_SINK_TIMEOUT,
        max_threads: int = 16,
        output: Output | None = None,
    ) -> None:
        self.name = name
        self.output = output or Output(sink=name)
        self.filter = SinkFilter.parse(events, sink=name)
        self.handler = resolve_callable(handler, sink=name) if isinstance(handler, str) else handler
        self.timeout = timeout
        self._async = _is_async(self.handler)
        self._threads = (
            None if self._async else ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=f"sink-{name}")
        )

    def accepts(self, event: EventLike) -> bool:
        return self.filter.accepts(event)

    async def _call(self, event: Event) -> None:
        if self._threads is None:
            result = self.handler(event)
        else:
            run = functools.partial(contextvars.copy_context().run, self.handler, event)
            result = await asyncio.get_running_loop().run_in_executor(self._threads, run)
        # A sync callable may still hand back an awaitable (a partial of a coroutine function).
        if inspect.isawaitable(result):
            await result

    async def deliver(self, event: StoredEvent | Event) -> None:
        ev = event if isinstance(event, Event) else Event.from_stored(event)
        if not self.output.is_body:
            # Rendered before the handler runs: a template error dead-letters without a call.
            ev.extras[OUTPUT_KEY] = self.output.render(ev)
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await self._call(ev)
        except (PermanentError, TransientError):
            raise
        except TimeoutError as exc:
            if deadline.expired():
                if self._threads is not None:
                    log.warning("sink.python.thread_still_running", sink=self.name, event_id=ev.event_id)
                raise TransientError(f"handler did not finish within {self.timeout:g} s") from None
            raise TransientError(f"handler raised {_short(exc)}") from exc
        except Exception as exc:
            raise TransientError(f"handler raised {_short(exc)}") from exc

    async def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
