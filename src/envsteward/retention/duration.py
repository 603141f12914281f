"""Retention durations (``1y2m3d4h``) and the calendar arithmetic restic applies to them.

restic measures ``--keep-within*`` windows with Go's ``time.AddDate(-years, -months, -days)`` followed by
``Add(-hours)``. ``AddDate`` does not clamp a day that falls past the end of a month: it *normalises* it,
so 31 March minus one month is "31 February", which is 3 March (2 March in a leap year). Python's
``dateutil.relativedelta`` would clamp to 28 February instead and keep different backups; this module
reproduces Go's behaviour.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from envsteward.errors import PermanentError


class RetentionInputError(PermanentError, ValueError):
    """A retention policy, duration or backup list is malformed; the message says where and how to fix it.

    It is also a :class:`ValueError`, so pydantic validators can raise it directly.
    """


_UNITS = {"y": "years", "m": "months", "d": "days", "h": "hours"}
_TOKEN = re.compile(r"(?P<number>[0-9]+)(?P<unit>[a-zA-Z]?)")
_EXPECTED = "expected a duration such as 7d, 12h, 1y6m or 1y2m3d4h (units y, m, d, h; no sign, no spaces)"


class Duration(BaseModel):
    """A calendar duration of whole years, months, days and hours (restic's ``Duration``; never negative)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    years: int = Field(default=0, ge=0)
    months: int = Field(default=0, ge=0)
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)

    @property
    def is_zero(self) -> bool:
        """True when every part is 0: restic treats such a ``--keep-within*`` rule as not set."""
        return self.years == 0 and self.months == 0 and self.days == 0 and self.hours == 0

    def __str__(self) -> str:
        """restic's spelling: non-zero parts in the order y, m, d, h (``1y2m``, ``7d``); ``0h`` if zero."""
        text = "".join(
            f"{value}{unit}"
            for value, unit in (
                (self.years, "y"),
                (self.months, "m"),
                (self.days, "d"),
                (self.hours, "h"),
            )
            if value
        )
        return text or "0h"

    def start_before(self, moment: datetime) -> datetime | None:
        """The start of the window of this length that ends at ``moment``, computed as restic does.

        Calendar parts are subtracted on ``moment``'s own wall clock (in its own UTC offset) with Go's
        ``AddDate`` normalisation, then the hours as elapsed time. Returns None when the start would lie
        before year 1 (Python's ``datetime`` cannot represent it): the window then reaches back forever.
        """
        try:
            wall = go_add_date(moment.replace(tzinfo=None), -self.years, -self.months, -self.days)
            return wall.replace(tzinfo=moment.tzinfo) - timedelta(hours=self.hours)
        except OverflowError:
            return None


def go_add_date(wall: datetime, years: int, months: int, days: int) -> datetime:
    """Go's ``time.AddDate`` on a wall-clock time: shift the fields, then normalise month and day overflow.

    ``go_add_date(datetime(2023, 3, 31), 0, -1, 0)`` is 3 March 2023 (Go), not 28 February (dateutil).
    The time of day is kept. Raises OverflowError when the result is outside years 1..9999.
    """
    month_index = (wall.year + years) * 12 + (wall.month - 1) + months
    year, month0 = divmod(month_index, 12)
    try:
        first_of_month = wall.replace(year=year, month=month0 + 1, day=1)
        return first_of_month + timedelta(days=wall.day - 1 + days)
    except (ValueError, OverflowError) as exc:
        shift = f"{years}y{months}m{days}d"
        raise OverflowError(f"date out of range: {wall.isoformat()} shifted by {shift}") from exc


def parse_duration(text: str) -> Duration:
    """Parse a retention duration such as ``7d``, ``12h``, ``1y6m`` or ``1y2m3d4h``.

    The grammar is restic's (``<number><unit>`` pairs, units y/m/d/h in any order, surrounding whitespace
    ignored) with two deliberate restrictions, because an ambiguous retention policy must not delete
    anything: negative numbers are refused (restic's ``forget`` refuses them too) and a unit given twice
    (``1d2d``, which restic silently reads as ``2d``) is refused. ``0d`` is valid and means "rule off".

    Raises:
        RetentionInputError: the text is empty or not a valid duration; the message says what is wrong.
    """
    if not isinstance(text, str):
        raise RetentionInputError(f"duration must be a string, got {type(text).__name__}; {_EXPECTED}")
    stripped = text.strip()
    if not stripped:
        raise RetentionInputError(f"empty duration; {_EXPECTED}")
    parts: dict[str, int] = {}
    position = 0
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            found = stripped[position]
            if found == "-":
                what = "negative durations are not allowed"
            elif found in _UNITS:
                what = f"unit {found!r} without a number before it"
            else:
                what = f"unexpected {found!r}"
            raise RetentionInputError(f"invalid duration {text!r}: {what}; {_EXPECTED}")
        number, unit = match.group("number"), match.group("unit")
        if not unit:
            raise RetentionInputError(f"invalid duration {text!r}: no unit after {number}; {_EXPECTED}")
        field = _UNITS.get(unit)
        if field is None:
            raise RetentionInputError(f"invalid duration {text!r}: unknown unit {unit!r}; {_EXPECTED}")
        if field in parts:
            raise RetentionInputError(f"invalid duration {text!r}: unit {unit!r} given twice; {_EXPECTED}")
        parts[field] = int(number)
        position = match.end()
    return Duration(**parts)
