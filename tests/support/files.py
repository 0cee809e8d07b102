"""Files as the tests look at them: permission bits."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
