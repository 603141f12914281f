"""The recovery point actually achieved, and the live exposure of an archive. Pure except
:func:`archive_status` (which lists the store).

RPO of a restore = failure time - the commit time of the last transaction the restore replayed (when the
restore replayed none after its base backup, the base backup's end). A drill that restores "latest"
right after a simulated failure measures exactly the data a real failure would have lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from envsteward.pitr.walnames import wal_kind, wal_name_of_key
from envsteward.ports import ObjectStore


@dataclass(frozen=True)
class AchievedRpo:
    failure_at: datetime
    recovered_to: datetime
    seconds: float
    target_seconds: float | None
    met: bool | None
    """None when there is no target to compare with."""

    def as_json(self) -> dict[str, Any]:
        return {
            "failure_at": self.failure_at.isoformat(),
            "recovered_to": self.recovered_to.isoformat(),
            "seconds": self.seconds,
            "target_seconds": self.target_seconds,
            "met": self.met,
        }


def achieved_rpo(
    failure_at: datetime,
    last_replayed_commit: datetime | None,
    base_backup_end: datetime,
    target_seconds: float | None = None,
) -> AchievedRpo:
    """The data-loss window of a restore (see the module docstring), compared with ``target_seconds``."""
    recovered_to = last_replayed_commit or base_backup_end
    seconds = round(max(0.0, (failure_at - recovered_to).total_seconds()), 3)
    met = None if target_seconds is None else seconds <= target_seconds
    return AchievedRpo(failure_at, recovered_to, seconds, target_seconds, met)


@dataclass(frozen=True)
class ArchiveStatus:
    newest_segment: str | None
    newest_at: datetime | None
    age_seconds: float | None
    """How long ago the newest segment was archived: the live RPO exposure (plus archive_timeout)."""
    segments: int

    def as_json(self) -> dict[str, Any]:
        return {
            "newest_segment": self.newest_segment,
            "newest_at": self.newest_at.isoformat() if self.newest_at else None,
            "age_seconds": self.age_seconds,
            "segments": self.segments,
        }


def archive_status(store: ObjectStore, prefix: str, now: datetime | None = None) -> ArchiveStatus:
    """The newest archived segment under ``prefix`` and its age. Calls the store (list)."""
    newest: tuple[str, datetime] | None = None
    count = 0
    for info in store.list(prefix + "wal/"):
        name = wal_name_of_key(prefix, info.key)
        if name is None or wal_kind(name) != "segment":
            continue
        count += 1
        if newest is None or name > newest[0]:
            newest = (name, info.modified)
    if newest is None:
        return ArchiveStatus(None, None, None, 0)
    age = ((now or datetime.now(UTC)) - newest[1]).total_seconds()
    return ArchiveStatus(newest[0], newest[1], round(max(0.0, age), 3), count)
