"""Which backups to keep: restic's ``forget`` policy, exactly, plus envsteward's safety floor.

:func:`restic_forget` is a faithful re-implementation of restic's ``ApplyPolicy`` (``internal/data/
snapshot_policy.go``); :func:`apply_retention` is what prune calls: it adds the safety floor on top.

How restic decides, in the order it works:

* Backups are sorted newest first; equal times keep their input order (a stable sort).
* ``within`` keeps every backup strictly after ``newest - duration``, where "newest" is the newest backup
  that is not in the future (strictly before ``now``) and the duration is subtracted with Go's calendar
  arithmetic (:meth:`Duration.start_before`). When every backup is in the future the window has no start.
* Each count rule (last, hourly, daily, weekly, monthly, yearly) walks the list and keeps a backup whenever
  its period key differs from the key of the backup before it, until its count is used up (-1 never is).
  Keys are read on each backup's own recorded UTC offset: hour, day, ISO-8601 week with its week-year
  (2024-12-30 is 2025-W01), month, calendar year. Rules are independent: a backup another rule kept still
  uses up quota in every rule whose period it starts.
* The oldest backup is kept by every count rule that still has quota, even in a period already
  represented; the reason is then prefixed ``oldest`` ("oldest daily snapshot").
* ``within_<period>`` rules keep the newest backup of every period inside their window (no count), with
  the same oldest-backup rule.
* Reasons are listed in that order: ``within 1y2m``, then ``last snapshot``, ``hourly snapshot``, ...
  ``yearly snapshot``, then ``hourly within 7d``, ... ``yearly within 2y``.

Deliberate difference: restic reads an RFC 3339 offset that matches the machine's local zone as that zone
(with its DST rules); envsteward always keeps the fixed recorded offset, as restic does on a UTC machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, field_validator

from envsteward.retention.duration import Duration, RetentionInputError
from envsteward.retention.policy import RetentionPolicy

REASON_EMPTY_POLICY = "empty policy keeps everything"
REASON_NEWEST = "newest backup (safety floor)"
REASON_NEWEST_DRILL_VERIFIED = "newest drill-verified backup (safety floor)"

_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``: restic's "newest backup" before any backup has been looked at."""


class Backup(BaseModel):
    """One backup as retention sees it. ``time`` keeps its own UTC offset (it decides the period keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    time: AwareDatetime
    verified_by_drill: StrictBool = False

    @field_validator("time")
    @classmethod
    def _fixed_offset(cls, value: datetime) -> datetime:
        # A zoneinfo time becomes the fixed offset it had at that instant, as in restic's JSON round trip.
        if isinstance(value.tzinfo, timezone):
            return value
        offset = value.utcoffset()
        assert offset is not None  # AwareDatetime guarantees it
        return value.replace(tzinfo=timezone(offset))


class RetentionDecision(BaseModel):
    """What to keep and what to remove, newest first, and why each kept backup is kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep: list[Backup]
    remove: list[Backup]
    reasons: dict[str, list[str]]
    """Backup id -> reasons, for every kept backup (and only those)."""

    def as_json(self) -> dict[str, Any]:
        """``{"keep": [ids newest first], "remove": [ids newest first], "reasons": {id: [reasons]}}``."""
        return {
            "keep": [backup.id for backup in self.keep],
            "remove": [backup.id for backup in self.remove],
            "reasons": {backup.id: list(self.reasons[backup.id]) for backup in self.keep},
        }


def _hour_key(moment: datetime, _position: int) -> int:
    return moment.year * 1_000_000 + moment.month * 10_000 + moment.day * 100 + moment.hour


def _day_key(moment: datetime, _position: int) -> int:
    return moment.year * 10_000 + moment.month * 100 + moment.day


def _week_key(moment: datetime, _position: int) -> int:
    week_year, week, _weekday = moment.isocalendar()
    return week_year * 100 + week


def _month_key(moment: datetime, _position: int) -> int:
    return moment.year * 100 + moment.month


def _year_key(moment: datetime, _position: int) -> int:
    return moment.year


def _position_key(_moment: datetime, position: int) -> int:
    return position


_PeriodKey = Callable[[datetime, int], int]


@dataclass
class _CountRule:
    remaining: int
    key: _PeriodKey
    reason: str
    last_key: int | None = None


@dataclass
class _WindowRule:
    duration: Duration
    start: datetime | None
    key: _PeriodKey
    reason: str
    last_key: int | None = None


def newest_first(backups: Sequence[Backup]) -> list[Backup]:
    """``backups`` sorted newest first; equal instants keep their input order.

    Raises:
        RetentionInputError: two backups share an id (reasons are keyed by id).
    """
    seen: dict[str, int] = {}
    for index, backup in enumerate(backups):
        if backup.id in seen:
            raise RetentionInputError(
                f"backup {index}: duplicate id {backup.id!r} (already used by backup {seen[backup.id]})"
            )
        seen[backup.id] = index
    return sorted(backups, key=lambda backup: backup.time, reverse=True)  # reverse=True keeps it stable


def _resolve_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise RetentionInputError(f"now must carry a UTC offset, got the naive time {now.isoformat()}")
    return now


def _newest_not_in_future(ordered: Sequence[Backup], now: datetime) -> datetime:
    latest = _GO_ZERO_TIME
    for backup in ordered:
        if latest < backup.time < now:
            latest = backup.time
    return latest


def _window_start(duration: Duration, latest: datetime) -> datetime | None:
    return None if latest == _GO_ZERO_TIME else duration.start_before(latest)


def _inside(moment: datetime, start: datetime | None) -> bool:
    return start is None or moment > start


def restic_forget(
    backups: Sequence[Backup], policy: RetentionPolicy, now: datetime | None = None
) -> RetentionDecision:
    """restic's ``forget`` decision for ``backups`` under ``policy``, without envsteward's safety floor.

    Pure: no I/O. ``now`` (default: the current time) only decides which backups are "in the future" for
    the ``within*`` rules. An empty policy removes everything here, as restic's ``ApplyPolicy`` does;
    :func:`apply_retention` is the function that refuses to.

    Raises:
        RetentionInputError: duplicate backup ids, or a naive ``now``.
    """
    ordered = newest_first(backups)
    if not ordered:
        return RetentionDecision(keep=[], remove=[], reasons={})
    latest = _newest_not_in_future(ordered, _resolve_now(now))

    count_rules = [
        _CountRule(count, key, reason)
        for count, key, reason in (
            (policy.last, _position_key, "last snapshot"),
            (policy.hourly, _hour_key, "hourly snapshot"),
            (policy.daily, _day_key, "daily snapshot"),
            (policy.weekly, _week_key, "weekly snapshot"),
            (policy.monthly, _month_key, "monthly snapshot"),
            (policy.yearly, _year_key, "yearly snapshot"),
        )
    ]
    window_rules = [
        _WindowRule(duration, _window_start(duration, latest), key, reason)
        for duration, key, reason in (
            (policy.within_hourly, _hour_key, "hourly within"),
            (policy.within_daily, _day_key, "daily within"),
            (policy.within_weekly, _week_key, "weekly within"),
            (policy.within_monthly, _month_key, "monthly within"),
            (policy.within_yearly, _year_key, "yearly within"),
        )
        if duration is not None
    ]
    within_start = None if policy.within is None else _window_start(policy.within, latest)

    oldest = len(ordered) - 1
    keep: list[Backup] = []
    remove: list[Backup] = []
    reasons: dict[str, list[str]] = {}
    for position, backup in enumerate(ordered):
        matches: list[str] = []
        if policy.within is not None and _inside(backup.time, within_start):
            matches.append(f"within {policy.within}")

        for count_rule in count_rules:
            if count_rule.remaining == 0:
                continue
            key = count_rule.key(backup.time, position)
            if key != count_rule.last_key or position == oldest:
                prefix = "oldest " if key == count_rule.last_key else ""
                matches.append(prefix + count_rule.reason)
                count_rule.last_key = key
                if count_rule.remaining > 0:
                    count_rule.remaining -= 1

        for window_rule in window_rules:
            if not _inside(backup.time, window_rule.start):
                continue
            key = window_rule.key(backup.time, position)
            if key != window_rule.last_key or position == oldest:
                prefix = "oldest " if key == window_rule.last_key else ""
                matches.append(f"{prefix}{window_rule.reason} {window_rule.duration}")
                window_rule.last_key = key

        if matches:
            keep.append(backup)
            reasons[backup.id] = matches
        else:
            remove.append(backup)
    return RetentionDecision(keep=keep, remove=remove, reasons=reasons)


def apply_retention(
    backups: Sequence[Backup], policy: RetentionPolicy, now: datetime | None = None
) -> RetentionDecision:
    """The backups prune may delete: restic's ``forget`` decision with envsteward's safety floor on top.

    * An empty policy deletes nothing: every backup is kept with ``"empty policy keeps everything"``.
    * Otherwise :func:`restic_forget` decides, then the floor keeps the newest backup and the newest backup
      with ``verified_by_drill`` whatever the policy says. Their floor reasons
      (``"newest backup (safety floor)"``, ``"newest drill-verified backup (safety floor)"``) are appended
      to any reasons restic gave, so the reasons always show every protection a backup has.

    Pure: no I/O. Both lists are newest first; ``reasons`` has an entry for every kept backup.

    Raises:
        RetentionInputError: duplicate backup ids, or a naive ``now``.
    """
    ordered = newest_first(backups)
    if policy.is_empty:
        _resolve_now(now)
        reasons = {backup.id: [REASON_EMPTY_POLICY] for backup in ordered}
    else:
        decided = restic_forget(ordered, policy, now).reasons
        reasons = {backup_id: list(matches) for backup_id, matches in decided.items()}
    if ordered:
        reasons.setdefault(ordered[0].id, []).append(REASON_NEWEST)
        verified = next((backup for backup in ordered if backup.verified_by_drill), None)
        if verified is not None:
            reasons.setdefault(verified.id, []).append(REASON_NEWEST_DRILL_VERIFIED)
    return RetentionDecision(
        keep=[backup for backup in ordered if backup.id in reasons],
        remove=[backup for backup in ordered if backup.id not in reasons],
        reasons=reasons,
    )
