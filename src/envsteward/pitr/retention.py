"""PITR retention: keep the newest base backups, and exactly the WAL that a kept base backup can need.

:func:`plan_pitr_prune` is pure: given the base backups (oldest first), how many to keep, and the names of
the archived WAL files, it returns what to delete and why everything else stays. A WAL segment is removed
only when it lies before the start segment of the OLDEST kept base backup (compared by segment number, so
every timeline is covered); timeline history files are always kept (they are tiny and a restore that
crosses timelines needs every one). No kept base backup (an empty archive, ``keep_base < 1``) removes
nothing at all (fail safe).

:func:`execute_pitr_prune` deletes in every store given (primary and DR): base backups manifest first,
then WAL. External calls: the object stores (execute only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envsteward.backup.pipeline import delete_backup
from envsteward.backup.replica import REPLICA_RECORD_NAME
from envsteward.pitr.base import BaseBackupInfo
from envsteward.pitr.walnames import SegmentName, wal_kind, wal_name_of_key, wal_object_key
from envsteward.ports import ObjectStore


@dataclass(frozen=True)
class PitrPrunePlan:
    keep_base: tuple[str, ...]
    remove_base: tuple[str, ...]
    remove_wal: tuple[str, ...]
    keep_wal_from: str | None
    """The first segment kept (the oldest kept base backup's start segment); None: nothing is removed."""
    reasons: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "keep_base": list(self.keep_base),
            "remove_base": list(self.remove_base),
            "remove_wal": len(self.remove_wal),
            "keep_wal_from": self.keep_wal_from,
            "reasons": dict(self.reasons),
        }


def plan_pitr_prune(
    bases: Sequence[BaseBackupInfo], keep_base: int, wal_names: Iterable[str]
) -> PitrPrunePlan:
    """What to delete (see the module docstring). Pure."""
    names = list(wal_names)
    if keep_base < 1 or not bases:
        why = "no base backup" if not bases else f"keep_base is {keep_base}"
        return PitrPrunePlan((), (), (), None, {"*": f"{why}: nothing is removed (fail safe)"})
    kept = list(bases[-keep_base:])
    removed = [item.backup_id for item in bases[: max(0, len(bases) - keep_base)]]
    reasons = {item.backup_id: f"one of the newest {keep_base} base backups" for item in kept}
    start = min(SegmentName.parse(item.start_wal_file).segno() for item in kept)
    first = min(kept, key=lambda item: SegmentName.parse(item.start_wal_file).segno())
    remove_wal = []
    for name in names:
        if wal_kind(name) == "history":
            continue
        if SegmentName.parse(name).segno() < start:
            remove_wal.append(name)
    return PitrPrunePlan(
        keep_base=tuple(item.backup_id for item in kept),
        remove_base=tuple(removed),
        remove_wal=tuple(sorted(remove_wal)),
        keep_wal_from=first.start_wal_file,
        reasons=reasons,
    )


def archived_wal(store: ObjectStore, prefix: str) -> list[str]:
    """Names of the WAL files archived under ``prefix``. Calls the store (list)."""
    found = (wal_name_of_key(prefix, info.key) for info in store.list(prefix + "wal/"))
    return sorted(name for name in found if name is not None)


def execute_pitr_prune(stores: Sequence[ObjectStore], prefix: str, plan: PitrPrunePlan) -> int:
    """Delete what ``plan`` says from each store (a missing object is fine); returns objects deleted.

    Calls the stores (delete)."""
    deleted = 0
    for store in stores:
        for backup_id in plan.remove_base:
            delete_backup(store, backup_id)
            store.delete(f"{backup_id}/{REPLICA_RECORD_NAME}")
            deleted += 1
        for name in plan.remove_wal:
            store.delete(wal_object_key(prefix, name))
            deleted += 1
    return deleted
