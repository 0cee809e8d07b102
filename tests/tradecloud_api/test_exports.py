"""The package's public surface."""

from __future__ import annotations

import tcwebhook.tradecloud_api as api


class TestExports:
    """``__all__`` is sorted and names only real members."""

    def test_all_is_sorted_and_complete(self) -> None:
        assert api.__all__ == sorted(api.__all__)
        for name in api.__all__:
            assert getattr(api, name) is not None
