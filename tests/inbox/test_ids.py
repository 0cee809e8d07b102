"""Event ids and lastUpdatedAt ordering values."""

from __future__ import annotations

import time
import uuid

import pytest

from tcwebhook.inbox.ids import new_id, updated_micros


class TestNewId:
    """Ids are RFC 9562 UUIDv7: unique and ordered by creation time."""

    def test_version_and_uniqueness(self) -> None:
        ids = [new_id() for _ in range(2000)]
        assert len(set(ids)) == 2000
        parsed = uuid.UUID(ids[0])
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122

    def test_time_prefix(self) -> None:
        before = time.time_ns() // 1_000_000
        value = new_id()
        after = time.time_ns() // 1_000_000
        assert before <= uuid.UUID(value).int >> 80 <= after


class TestUpdatedMicros:
    """Zoned and zone-less timestamps compare on one UTC scale."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2025-05-02T08:15:29.987Z", 1746173729987000),
            ("2025-05-02T10:15:29.987+02:00", 1746173729987000),
            ("2025-05-02T08:15:29.987", 1746173729987000),
            ("1969-12-31T23:59:59Z", -1_000_000),
        ],
    )
    def test_parse(self, text: str, expected: int) -> None:
        assert updated_micros(text) == expected

    @pytest.mark.parametrize("text", [None, "", "yesterday", "2025-13-01T00:00:00Z"])
    def test_unreadable(self, text: str | None) -> None:
        assert updated_micros(text) is None
