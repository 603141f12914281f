"""--since parsing and action matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from envsteward.audit import action_matches, parse_since

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T12:30:00Z", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ("2026-01-01T12:30:00+02:00", datetime(2026, 1, 1, 10, 30, tzinfo=UTC)),
        ("2026-01-01T12:30:00", datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    result = parse_since(text, NOW)
    assert result == expected
    assert result.tzinfo is not None


def test_parse_since_converts_now_to_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=5)))
    assert parse_since("1h", local) == NOW - timedelta(hours=1)


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-1d", "1y", "2026-13-01", ""])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration \(30m, 24h, 7d, 2w\)"):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("promotion.approved", "promotion.approved", True),
        ("promotion", "promotion.approved", True),
        ("promo", "promotion.approved", False),
        ("promotion.approve", "promotion.approved", False),
        ("promotion.*", "promotion.approved", True),
        ("*.healed", "drift.healed", True),
        ("*.healed", "drift.detected", False),
        ("drift", "drift", True),
    ],
)
def test_action_matches(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected
