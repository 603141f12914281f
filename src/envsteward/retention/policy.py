"""The retention policy: restic's ``forget --keep-*`` options as one validated, frozen model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from envsteward.retention.duration import Duration, parse_duration


def _coerce_duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


DurationField = Annotated[
    Duration,
    BeforeValidator(_coerce_duration),
    PlainSerializer(str, return_type=str),
]
"""A :class:`Duration` that also accepts restic's spelling (``"1y2m"``) and serialises back to it."""

Count = Annotated[int, Field(default=0, ge=-1, strict=True)]
"""How many periods a count rule keeps: 0 = rule off, -1 = unlimited."""

_COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WITHIN_FIELDS = ("within_hourly", "within_daily", "within_weekly", "within_monthly", "within_yearly")


class RetentionPolicy(BaseModel):
    """Which backups to keep, with restic ``forget`` semantics (see ``restic_forget``).

    Counts: 0 turns a rule off, -1 keeps every period, other negative values are refused. Durations accept
    ``"1y2m3d4h"`` strings; a zero duration (``"0d"``) turns the rule off and is stored as None.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    last: Count = 0
    hourly: Count = 0
    daily: Count = 0
    weekly: Count = 0
    monthly: Count = 0
    yearly: Count = 0
    within: DurationField | None = None
    within_hourly: DurationField | None = None
    within_daily: DurationField | None = None
    within_weekly: DurationField | None = None
    within_monthly: DurationField | None = None
    within_yearly: DurationField | None = None

    @field_validator("within", *_WITHIN_FIELDS)
    @classmethod
    def _zero_means_off(cls, value: Duration | None) -> Duration | None:
        return None if value is not None and value.is_zero else value

    @property
    def is_empty(self) -> bool:
        """True when no rule is set. An empty policy keeps everything in :func:`apply_retention`."""
        counts_off = all(getattr(self, name) == 0 for name in _COUNT_FIELDS)
        durations_off = all(getattr(self, name) is None for name in ("within", *_WITHIN_FIELDS))
        return counts_off and durations_off

    def describe(self) -> str:
        """One line for people, e.g. ``keep 7 daily, all weekly; daily within 7d``."""
        counts = []
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if value == -1:
                counts.append(f"all {name}")
            elif value > 0:
                counts.append(f"{value} {name}")
        windows = [
            f"{name.removeprefix('within_')} within {getattr(self, name)}"
            for name in _WITHIN_FIELDS
            if getattr(self, name) is not None
        ]
        if self.within is not None:
            windows.append(f"everything within {self.within} of the newest")
        if not counts and not windows:
            return "empty policy (keeps everything)"
        clauses = [f"keep {', '.join(counts)}"] if counts else []
        return "; ".join([*clauses, *windows])


DEFAULT_POLICY = RetentionPolicy(daily=7, weekly=4, monthly=6, yearly=2)
"""The policy envsteward uses when the catalog sets none: 7 daily, 4 weekly, 6 monthly, 2 yearly."""
