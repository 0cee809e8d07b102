from __future__ import annotations

import tcwebhook
import tcwebhook.sinks


class TestExports:
    """The sinks package exports a sorted, complete list of its public names."""

    def test_sorted_and_present(self) -> None:
        names = tcwebhook.sinks.__all__
        assert names == sorted(names)
        assert all(hasattr(tcwebhook.sinks, name) for name in names)

    def test_event_is_the_top_level_event(self) -> None:
        assert tcwebhook.sinks.Event is tcwebhook.Event
