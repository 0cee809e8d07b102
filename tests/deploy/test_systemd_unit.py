"""deploy/systemd/tcwebhook.service passes systemd-analyze: verify, and the security exposure score."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "tcwebhook.service"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs it)")


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The shipped unit, with ExecStart pointing at this environment's tcwebhook (verify checks it exists)."""
    text = UNIT.read_text().replace("/opt/tcwebhook/bin/tcwebhook", str(Path(sys.executable).parent / "tcwebhook"))
    path = tmp_path / "tcwebhook.service"
    path.write_text(text)
    return path


def test_verify(unit: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run([ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "tcwebhook.service" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_security_exposure(unit: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for tcwebhook\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    print(f"systemd-analyze security exposure: {match.group(1)}")
    assert float(match.group(1)) <= 2.0, result.stdout  # "OK" on systemd's scale


def test_notify_type_and_reload() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "StateDirectory=tcwebhook",
                 "User=tcwebhook", "RestartPreventExitStatus=3"):
        assert line in text.splitlines()
