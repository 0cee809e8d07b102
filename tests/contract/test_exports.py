from __future__ import annotations

import pytest

import tcwebhook.contract as contract


class TestExports:
    """The package exports a sorted ``__all__`` whose names all resolve, lazily."""

    def test_sorted_and_resolvable(self) -> None:
        assert contract.__all__ == sorted(contract.__all__, key=lambda n: (n[0].islower(), n))
        for name in contract.__all__:
            assert getattr(contract, name) is not None

    def test_unknown_name(self) -> None:
        with pytest.raises(AttributeError):
            _ = contract.nothing_here
