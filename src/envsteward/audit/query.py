"""Filters for reading the audit log: ``--since`` parsing and action matching. Pure functions."""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, date, datetime, timedelta

_DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """Turn ``--since`` text into an aware UTC datetime.

    Accepts a duration back from ``now`` (``30m``, ``24h``, ``7d``, ``2w``, ``90s``), a date (``2026-01-01``,
    midnight UTC) or an ISO 8601/RFC 3339 time (``2026-01-01T12:00:00Z``; without an offset it is UTC).
    Raises ValueError naming the accepted forms.
    """
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        amount = int(match.group("amount"))
        return now.astimezone(UTC) - timedelta(**{_UNITS[match.group("unit")]: amount})
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not understood: use a duration (30m, 24h, 7d, 2w), "
            "a date (2026-01-01) or a time (2026-01-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def action_matches(pattern: str, action: str) -> bool:
    """True when ``action`` matches ``pattern``: exactly, as a dotted prefix, or as a glob.

    ``promotion.approved`` matches ``promotion.approved``, ``promotion``, ``promotion.*`` and ``*.approved``.
    """
    if pattern == action or action.startswith(pattern + "."):
        return True
    return any(char in pattern for char in "*?[") and fnmatch.fnmatchcase(action, pattern)
