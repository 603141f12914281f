"""Crash leftovers: what a backup killed at the wrong moment leaves behind, and removing it safely.

A backup that is killed (``kill -9``, OOM, a lost machine) cannot clean up after itself. Depending on the
moment it leaves, in the primary or the DR store:

* ``upload``: an unfinished write: a ``.data.bin.<hex>.tmp`` file (filesystem store) or an incomplete S3
  multipart upload whose parts cost storage but are invisible to listings;
* ``no-manifest``: a complete ``<id>/data.bin`` without its manifest (killed while verifying, or before the
  manifest was written); never restorable, since the manifest holds the wrapped key.

:func:`find_leftovers` lists them with age and size (``envsteward backup list --incomplete``);
:func:`remove_leftovers` removes those older than the grace period (``envsteward backup prune``). A backup
running right now looks exactly like a leftover, so the grace period is never shorter than
:data:`BACKUP_TIMEOUT_SECONDS`, the longest a backup may run (the backup task's timeout): anything younger
may still be running and is kept. Backup runs take no lease, so age is the only safe test.

The S3 lifecycle rule ``AbortIncompleteMultipartUpload`` (README, "Backups") does the same for multipart
uploads without envsteward; temp files and manifest-less objects need this module.

External calls: the object stores (list, head, delete, abort upload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from envsteward.backup.limits import BACKUP_TIMEOUT_SECONDS
from envsteward.backup.manifest import DATA_OBJECT_NAME, data_object_key
from envsteward.backup.pipeline import find_incomplete_backups
from envsteward.backup.stores import BackupStores, describe_store
from envsteward.errors import EnvstewardError
from envsteward.ports import ObjectInfo, ObjectStore

# A leftover younger than the backup timeout may belong to a backup still running.
DEFAULT_GRACE_SECONDS = BACKUP_TIMEOUT_SECONDS + 3600.0
"""How old a leftover must be before prune removes it: the backup timeout plus an hour of slack."""

LeftoverKind = Literal["upload", "no-manifest"]


@runtime_checkable
class IncompleteUploads(Protocol):
    """What a store offers to find and abort unfinished writes (both adapters implement it)."""

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def abort_incomplete_upload(self, upload: ObjectInfo) -> None: ...


@dataclass(frozen=True)
class Leftover:
    """One leftover of an interrupted backup. JSON-able; no secret in it."""

    region: str
    """``primary`` or ``dr``."""
    store: str
    kind: LeftoverKind
    backup_id: str | None
    """The backup it belonged to, when the key says (``<id>/data.bin``)."""
    key: str
    size: int
    since: datetime
    """When the write started (S3 upload) or last wrote (file), or when the data object was written."""
    age_seconds: float
    upload: ObjectInfo | None = None

    @property
    def what(self) -> str:
        if self.kind == "no-manifest":
            return "data object without a manifest"
        return "unfinished multipart upload" if self.store.startswith("s3://") else "unfinished temp file"

    def as_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "store": self.store,
            "kind": self.kind,
            "what": self.what,
            "backup_id": self.backup_id,
            "key": self.key,
            "size": self.size,
            "since": self.since.isoformat(),
            "age_seconds": round(self.age_seconds, 1),
        }


def _backup_id_of(key: str) -> str | None:
    head, _, name = key.rpartition("/")
    return head if name == DATA_OBJECT_NAME and head else None


def find_leftovers(stores: BackupStores, now: datetime | None = None) -> list[Leftover]:
    """Every leftover in the primary and DR stores, oldest first. Reads only.

    Calls the stores (list, head; ListMultipartUploads/ListParts on S3). Raises the stores' errors.
    """
    moment = now or datetime.now(UTC)
    found: list[Leftover] = []
    for region, store in (("primary", stores.primary), ("dr", stores.dr)):
        if store is None:
            continue
        where = describe_store(store)
        if isinstance(store, IncompleteUploads):
            for upload in store.list_incomplete_uploads():
                found.append(
                    Leftover(
                        region=region,
                        store=where,
                        kind="upload",
                        backup_id=_backup_id_of(upload.key),
                        key=upload.key,
                        size=upload.size,
                        since=upload.modified,
                        age_seconds=(moment - upload.modified).total_seconds(),
                        upload=upload,
                    )
                )
        for backup_id in find_incomplete_backups(store):
            info = store.head(data_object_key(backup_id))
            if info is None:
                continue  # completed or removed since the listing
            found.append(
                Leftover(
                    region=region,
                    store=where,
                    kind="no-manifest",
                    backup_id=backup_id,
                    key=info.key,
                    size=info.size,
                    since=info.modified,
                    age_seconds=(moment - info.modified).total_seconds(),
                )
            )
    return sorted(found, key=lambda item: (item.since, item.region, item.key))


def removable(leftover: Leftover, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> bool:
    """True when ``leftover`` is older than the grace period, which is never shorter than the backup
    timeout (a younger one may belong to a backup still running). Pure."""
    return leftover.age_seconds > max(grace_seconds, BACKUP_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class LeftoverCleanup:
    removed: tuple[Leftover, ...]
    kept: tuple[Leftover, ...]
    """Too young: may belong to a backup still running."""
    failed: tuple[tuple[Leftover, str], ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "removed": [item.as_json() for item in self.removed],
            "kept": [item.as_json() for item in self.kept],
            "failed": [{**item.as_json(), "error": error} for item, error in self.failed],
        }


def remove_leftovers(
    stores: BackupStores,
    leftovers: list[Leftover],
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    on_removed: Callable[[Leftover], None] | None = None,
) -> LeftoverCleanup:
    """Remove the leftovers older than the grace period (see :func:`removable`); keep the others.

    Unfinished uploads are aborted (S3: AbortMultipartUpload; filesystem: the temp file is deleted); a data
    object without a manifest is deleted unless its manifest appeared meanwhile. A failure on one is
    recorded and the others go on. Calls the stores (head, delete, abort upload).
    """
    removed: list[Leftover] = []
    kept: list[Leftover] = []
    failed: list[tuple[Leftover, str]] = []
    for item in leftovers:
        if not removable(item, grace_seconds):
            kept.append(item)
            continue
        store: ObjectStore | None = stores.primary if item.region == "primary" else stores.dr
        try:
            if store is None:
                continue
            if item.kind == "upload" and item.upload is not None and isinstance(store, IncompleteUploads):
                store.abort_incomplete_upload(item.upload)
            elif item.kind == "no-manifest" and item.backup_id is not None:
                if find_incomplete_backups(store, item.backup_id + "/") != [item.backup_id]:
                    kept.append(item)  # its manifest was written after all: a complete backup now
                    continue
                store.delete(item.key)
        except EnvstewardError as exc:
            failed.append((item, str(exc)))
            continue
        removed.append(item)
        if on_removed is not None:
            on_removed(item)
    return LeftoverCleanup(removed=tuple(removed), kept=tuple(kept), failed=tuple(failed))


@dataclass(frozen=True)
class LeftoverReport:
    """What :func:`clean_leftovers` found and, unless a dry run, removed. JSON-able; no secret in it."""

    found: tuple[Leftover, ...]
    cleanup: LeftoverCleanup | None
    """None: a dry run, or nothing old enough to remove."""
    grace_seconds: float = DEFAULT_GRACE_SECONDS

    @property
    def ok(self) -> bool:
        return self.cleanup is None or self.cleanup.ok

    def removable(self) -> list[Leftover]:
        return [item for item in self.found if removable(item, self.grace_seconds)]

    def as_json(self) -> dict[str, Any]:
        """``found`` (each with ``removable``) and ``cleanup`` (what :meth:`LeftoverCleanup.as_json` says)."""
        return {
            "found": [
                item.as_json() | {"removable": removable(item, self.grace_seconds)} for item in self.found
            ],
            "cleanup": self.cleanup.as_json() if self.cleanup is not None else None,
        }

    def render_text(self) -> list[str]:
        """One line per leftover (``REMOVE`` or ``keep``) and a total, for a log. Pure."""
        lines = []
        for item in self.found:
            verdict = "REMOVE" if removable(item, self.grace_seconds) else "keep  "
            why = "" if verdict == "REMOVE" else ": may still be running"
            lines.append(
                f"  {verdict} {item.what} {item.key} ({item.region}, {item.size} bytes, "
                f"{item.age_seconds / 3600:.1f} h old{why})"
            )
        lines.append(f"{len(self.removable())} leftover(s) of interrupted backups to remove")
        if self.cleanup is not None:
            lines.extend(f"  error: {item.key}: {error}" for item, error in self.cleanup.failed)
        return lines


def clean_leftovers(
    stores: BackupStores,
    *,
    dry_run: bool = False,
    found: list[Leftover] | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    on_removed: Callable[[Leftover], None] | None = None,
) -> LeftoverReport:
    """Find the leftovers in both stores (or take ``found``) and, unless ``dry_run``, remove those older
    than the grace period (:func:`remove_leftovers`); what ``backup prune`` and the ``prune-backups`` flow
    do. Calls the stores (list, head, delete, abort upload). Raises the stores' errors while finding; a
    failed removal is recorded in the report instead.
    """
    leftovers = find_leftovers(stores) if found is None else found
    to_clean = [item for item in leftovers if removable(item, grace_seconds)]
    cleanup = None
    if not dry_run and to_clean:
        cleanup = remove_leftovers(stores, to_clean, grace_seconds=grace_seconds, on_removed=on_removed)
    return LeftoverReport(found=tuple(leftovers), cleanup=cleanup, grace_seconds=grace_seconds)
