from __future__ import annotations

from pathlib import Path

import pytest

from tcwebhook.config import Settings
from tcwebhook.contract.kinds import EventKind
from tcwebhook.errors import StartupError
from tcwebhook.sinks.base import Sink
from tcwebhook.sinks.factory import build_sinks
from tcwebhook.sinks.files import FilesSink
from tcwebhook.sinks.http import HttpSink
from tcwebhook.sinks.python import PythonSink

from .conftest import make_event


def settings(*sinks: dict[str, object]) -> Settings:
    return Settings(sinks=sinks)  # plain tables, validated as the TOML file is


class TestBuildSinks:
    """Every [[sinks]] table becomes a sink of its type, in order."""

    def test_all_types(self, tmp_path: Path) -> None:
        sinks = build_sinks(
            settings(
                {"name": "h", "type": "python", "callable": "json:dumps", "events": ["order"]},
                {
                    "name": "erp",
                    "type": "http",
                    "url": "https://erp.example/in",
                    "bearer_token": "t0ken-123456",
                    "permanent_codes": [400, 410],
                    "timeout": 3,
                },
                {"name": "drop", "type": "files", "directory": str(tmp_path), "subfolders": True},
            )
        )
        assert [type(s) for s in sinks] == [PythonSink, HttpSink, FilesSink]
        assert all(isinstance(s, Sink) for s in sinks)
        python, http, files = sinks
        assert isinstance(python, PythonSink)
        assert python.timeout == 60.0  # bounded unless a timeout is set
        assert not python.accepts(make_event(kind=EventKind.SHIPMENT))
        assert isinstance(http, HttpSink)
        assert http.permanent_codes == {400, 410}
        assert http.timeout == 3
        assert isinstance(files, FilesSink)
        assert files.subfolders

    def test_python_timeout_only_when_set(self) -> None:
        (sink,) = build_sinks(settings({"name": "h", "type": "python", "callable": "json:dumps", "timeout": 2}))
        assert isinstance(sink, PythonSink)
        assert sink.timeout == 2

    def test_bad_sink_is_startup_error(self) -> None:
        with pytest.raises(StartupError, match="Sink 'h'"):
            build_sinks(settings({"name": "h", "type": "python", "callable": "json:nope"}))

    def test_no_sinks(self) -> None:
        assert build_sinks(Settings()) == []
