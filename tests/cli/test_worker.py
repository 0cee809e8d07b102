"""The `worker` command."""

from __future__ import annotations

from pathlib import Path

import typer
from tests.cli.conftest import invoke


class TestWorkerCommand:
    """worker refuses to start without sinks (exit 3, one sentence)."""

    def test_no_sinks(self, app: typer.Typer, tmp_path: Path) -> None:
        config = tmp_path / "empty.toml"
        config.write_text(f'data_dir = "{tmp_path}"\n')
        result = invoke(app, "worker", "-c", str(config))
        assert result.exit_code == 3
        assert "nothing to deliver" in result.output
