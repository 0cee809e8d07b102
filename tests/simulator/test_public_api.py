"""The simulator package's public names."""

from __future__ import annotations

import tcwebhook.simulator as simulator


def test_exported_members() -> None:
    """``__all__`` is sorted and every name exists."""
    assert simulator.__all__ == sorted(simulator.__all__)
    for name in simulator.__all__:
        assert hasattr(simulator, name), name
