"""Verified-by-drill marks: a small JSON object next to a backup, ``<backup-id>/verified-by-drill.json``.

A DR drill that restored a backup and verified it (checksums, health) calls :func:`mark_verified_by_drill`
on the store it restored from (usually the DR store). Retention never removes the newest drill-verified
backup of a target (:func:`envsteward.retention.apply_retention`); prune reads the marks of BOTH stores,
so a mark in either region counts.

Document::

    {"backup_id": "...", "drill_id": "...", "verified_at": "2024-05-01T02:00:00+00:00"}

External calls: the object store passed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from envsteward.backup.manifest import check_backup_id
from envsteward.errors import ConfigurationError, IntegrityError, NotFoundError
from envsteward.ports import ObjectStore

DRILL_MARK_NAME = "verified-by-drill.json"


def drill_mark_key(backup_id: str) -> str:
    """The object key of a backup's verified-by-drill mark."""
    return f"{check_backup_id(backup_id)}/{DRILL_MARK_NAME}"


@dataclass(frozen=True)
class DrillMark:
    backup_id: str
    drill_id: str
    verified_at: datetime

    def to_json(self) -> bytes:
        document = {
            "backup_id": self.backup_id,
            "drill_id": self.drill_id,
            "verified_at": self.verified_at.astimezone(UTC).isoformat(),
        }
        return (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")


def mark_verified_by_drill(store: ObjectStore, backup_id: str, drill_id: str, at: datetime) -> DrillMark:
    """Record that drill ``drill_id`` restored and verified ``backup_id`` at ``at`` (replaces an older mark).

    Raises ConfigurationError for a bad id, an empty drill id or a naive ``at``; NotFoundError when the
    backup has no manifest in ``store``; the store's errors. Calls the object store (head, put_bytes).
    """
    from envsteward.backup.manifest import manifest_object_key

    if not drill_id:
        raise ConfigurationError("mark_verified_by_drill: drill_id must not be empty")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ConfigurationError("mark_verified_by_drill: at must be timezone-aware (use datetime.now(UTC))")
    if store.head(manifest_object_key(backup_id)) is None:
        raise NotFoundError(f"backup {backup_id} not found: no manifest, so it cannot be marked verified")
    mark = DrillMark(backup_id=backup_id, drill_id=drill_id, verified_at=at.astimezone(UTC))
    store.put_bytes(drill_mark_key(backup_id), mark.to_json(), {"envsteward-backup-id": backup_id})
    return mark


def read_drill_mark(store: ObjectStore, backup_id: str) -> DrillMark | None:
    """The backup's verified-by-drill mark in ``store``, or None when it has none.

    Raises IntegrityError naming the object when the mark is not valid (it is then NOT counted: callers
    that must fail safe treat the error as "not verified"). Calls the object store (get_bytes).
    """
    key = drill_mark_key(backup_id)
    try:
        raw = store.get_bytes(key)
    except NotFoundError:
        return None
    try:
        document = json.loads(raw)
        mark = DrillMark(
            backup_id=str(document["backup_id"]),
            drill_id=str(document["drill_id"]),
            verified_at=datetime.fromisoformat(str(document["verified_at"])),
        )
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{key} is not a valid verified-by-drill mark") from None
    if mark.backup_id != backup_id or mark.verified_at.tzinfo is None:
        raise IntegrityError(f"{key} does not describe backup {backup_id}")
    return mark


def is_verified_by_drill(*stores: ObjectStore | None, backup_id: str) -> bool:
    """True when any of ``stores`` holds a valid mark for ``backup_id`` (an invalid mark counts as none)."""
    for store in stores:
        if store is None:
            continue
        try:
            if read_drill_mark(store, backup_id) is not None:
                return True
        except IntegrityError:
            continue
    return False
