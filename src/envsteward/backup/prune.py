"""Prune: apply each target's retention policy to its backups in BOTH regions, plan first, then delete.

:func:`plan_prune` (reads only) collects the complete backups of the primary and DR stores from their
manifests, groups them by (environment, target), reads the verified-by-drill marks of both stores, and
calls :func:`envsteward.retention.apply_retention` per group with the target's policy (a ``retention``
field on the catalog target when there is one, else :data:`DEFAULT_POLICY`). The safety floor applies:
the newest backup and the newest drill-verified backup of every target are always kept, and an empty
policy deletes nothing. A backup is one id whether it is in one region or both, so both copies share one
decision. Backups of targets that are no longer in the catalog are KEPT (fail safe; remove them by hand).

:func:`execute_prune` deletes what the plan says (manifest first, then data, then sidecars, in each region
that holds the backup) and audits one ``backup.pruned`` record per removed backup. Dry-run is simply not
calling it. The plan carries the reasons for every kept backup, for printing before anything is removed.

External calls: the object stores (list, get, delete), the audit log (execute only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.backup.drill_marks import DRILL_MARK_NAME, is_verified_by_drill
from envsteward.backup.manifest import Manifest, data_object_key, manifest_object_key
from envsteward.backup.pipeline import list_backups
from envsteward.backup.replica import REPLICA_RECORD_NAME
from envsteward.backup.stores import BackupStores
from envsteward.errors import EnvstewardError
from envsteward.retention import DEFAULT_POLICY, Backup, RetentionPolicy, apply_retention

if TYPE_CHECKING:
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.ports import ObjectStore

SIDECARS = (REPLICA_RECORD_NAME, DRILL_MARK_NAME)
REASON_NOT_IN_CATALOG = "target not in the catalog: kept (fail safe)"


@dataclass(frozen=True)
class PruneItem:
    backup_id: str
    time: datetime
    regions: tuple[str, ...]
    """``primary`` and/or ``dr``: where the backup exists."""
    verified_by_drill: bool
    reasons: tuple[str, ...] = ()
    """Why it is kept (empty for a removed backup)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "time": self.time.isoformat(),
            "regions": list(self.regions),
            "verified_by_drill": self.verified_by_drill,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class PruneGroup:
    environment: str
    target: str
    policy: str
    """The policy in words (``keep 7 daily, ...``)."""
    keep: tuple[PruneItem, ...]
    remove: tuple[PruneItem, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "target": self.target,
            "policy": self.policy,
            "keep": [item.as_json() for item in self.keep],
            "remove": [item.as_json() for item in self.remove],
        }


@dataclass(frozen=True)
class PrunePlan:
    groups: tuple[PruneGroup, ...]
    decided_at: datetime
    primary: str
    dr: str

    @property
    def to_remove(self) -> list[tuple[PruneGroup, PruneItem]]:
        return [(group, item) for group in self.groups for item in group.remove]

    def as_json(self) -> dict[str, Any]:
        return {
            "decided_at": self.decided_at.isoformat(),
            "primary": self.primary,
            "dr": self.dr,
            "remove": len(self.to_remove),
            "keep": sum(len(group.keep) for group in self.groups),
            "groups": [group.as_json() for group in self.groups],
        }

    def render_text(self) -> list[str]:
        """Lines for people: what will be removed (and where), and what is kept with its reasons."""
        lines: list[str] = []
        for group in self.groups:
            lines.append(f"{group.environment}/{group.target}: policy {group.policy}")
            for item in group.remove:
                lines.append(f"  REMOVE {item.backup_id}  ({', '.join(item.regions)})")
            for item in group.keep:
                lines.append(f"  keep   {item.backup_id}  ({'; '.join(item.reasons)})")
        if not self.groups:
            lines.append("no backups found")
        return lines


PolicyLookup = Callable[[str, str], RetentionPolicy | None]
"""``(environment, target) -> policy``; None when the target is not in the catalog."""


def catalog_policies(catalog: Catalog) -> PolicyLookup:
    """Policy lookup from the catalog: the target's ``retention`` when it has one, else DEFAULT_POLICY;
    None for a target the catalog does not know."""

    def lookup(environment: str, target: str) -> RetentionPolicy | None:
        spec = catalog.environments.get(environment)
        if spec is None:
            return None
        item = next((backup for backup in spec.backups if backup.name == target), None)
        if item is None:
            return None
        policy = getattr(item, "retention", None)
        if policy is None:
            return DEFAULT_POLICY
        return policy if isinstance(policy, RetentionPolicy) else RetentionPolicy.model_validate(policy)

    return lookup


@dataclass
class _Found:
    manifest: Manifest
    regions: list[str] = field(default_factory=list)


def collect_backups(stores: BackupStores) -> dict[str, _Found]:
    """Every complete backup (by manifest) in the primary and DR stores, keyed by id. Calls the stores."""
    found: dict[str, _Found] = {}
    for region, store in (("primary", stores.primary), ("dr", stores.dr)):
        if store is None:
            continue
        for manifest in list_backups(store):
            entry = found.setdefault(manifest.backup_id, _Found(manifest))
            entry.regions.append(region)
    return found


def plan_prune(
    stores: BackupStores,
    policies: PolicyLookup | Mapping[tuple[str, str], RetentionPolicy],
    now: datetime | None = None,
) -> PrunePlan:
    """Decide what prune removes in both regions (reads only; see the module docstring).

    ``policies``: a lookup ``(environment, target) -> policy | None`` (:func:`catalog_policies`) or a
    mapping; a group without a policy is kept whole. Calls the stores (list, get). Raises
    IntegrityError for a damaged manifest (prune then stops before deleting anything), the stores' errors.
    """
    moment = now or datetime.now(UTC)
    lookup: PolicyLookup
    if isinstance(policies, Mapping):
        table = dict(policies)
        lookup = lambda environment, target: table.get((environment, target))  # noqa: E731
    else:
        lookup = policies
    found = collect_backups(stores)
    by_group: dict[tuple[str, str], list[_Found]] = {}
    for entry in found.values():
        key = (entry.manifest.environment, entry.manifest.source.name)
        by_group.setdefault(key, []).append(entry)

    groups: list[PruneGroup] = []
    for (environment, target), entries in sorted(by_group.items()):
        verified = {
            entry.manifest.backup_id: is_verified_by_drill(
                stores.primary, stores.dr, backup_id=entry.manifest.backup_id
            )
            for entry in entries
        }
        backups = [
            Backup(
                id=entry.manifest.backup_id,
                time=entry.manifest.consistent_at,
                verified_by_drill=verified[entry.manifest.backup_id],
            )
            for entry in entries
        ]
        regions = {entry.manifest.backup_id: tuple(entry.regions) for entry in entries}
        policy = lookup(environment, target)
        if policy is None:
            keep = [
                PruneItem(b.id, b.time, regions[b.id], b.verified_by_drill, (REASON_NOT_IN_CATALOG,))
                for b in sorted(backups, key=lambda b: b.time, reverse=True)
            ]
            groups.append(PruneGroup(environment, target, "none (not in the catalog)", tuple(keep), ()))
            continue
        decision = apply_retention(backups, policy, moment)
        groups.append(
            PruneGroup(
                environment=environment,
                target=target,
                policy=policy.describe(),
                keep=tuple(
                    PruneItem(b.id, b.time, regions[b.id], b.verified_by_drill, tuple(decision.reasons[b.id]))
                    for b in decision.keep
                ),
                remove=tuple(
                    PruneItem(b.id, b.time, regions[b.id], b.verified_by_drill) for b in decision.remove
                ),
            )
        )
    from envsteward.backup.stores import describe_store

    return PrunePlan(
        groups=tuple(groups),
        decided_at=moment,
        primary=describe_store(stores.primary),
        dr=describe_store(stores.dr) if stores.dr is not None else "<none>",
    )


def remove_backup(store: ObjectStore, backup_id: str) -> None:
    """Delete one backup from one store: manifest first (it stops counting as complete), then the data
    object, then the sidecars. Missing objects are fine. Calls the store (delete)."""
    store.delete(manifest_object_key(backup_id))
    store.delete(data_object_key(backup_id))
    for name in SIDECARS:
        store.delete(f"{backup_id}/{name}")


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    """(backup id, safe error message) for every backup that could not be removed completely."""
    kept: int

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "removed": list(self.removed),
            "failed": [{"backup_id": backup_id, "error": error} for backup_id, error in self.failed],
            "kept": self.kept,
        }


def execute_prune(
    plan: PrunePlan,
    stores: BackupStores,
    audit: AuditLog | None,
    *,
    on_removed: Callable[[str], None] | None = None,
) -> PruneResult:
    """Delete every backup the plan removes, in each region that holds it; audit ``backup.pruned`` for each.

    A failure on one backup is recorded and the others go on. Calls the stores (delete) and the audit log.
    """
    removed: list[str] = []
    failed: list[tuple[str, str]] = []
    for group, item in plan.to_remove:
        try:
            for region in item.regions:
                store = stores.primary if region == "primary" else stores.dr
                if store is not None:
                    remove_backup(store, item.backup_id)
        except EnvstewardError as exc:
            failed.append((item.backup_id, str(exc)))
            continue
        removed.append(item.backup_id)
        if on_removed is not None:
            on_removed(item.backup_id)
        if audit is not None:
            details = {
                "target": group.target,
                "regions": list(item.regions),
                "backup_time": item.time.isoformat(),
                "policy": group.policy,
                "verified_by_drill": item.verified_by_drill,
            }
            try:
                audit.append(
                    "backup.pruned", target=item.backup_id, environment=group.environment, details=details
                )
            except EnvstewardError as exc:
                failed.append((item.backup_id, f"removed, but the audit record failed: {exc}"))
    kept = sum(len(group.keep) for group in plan.groups)
    return PruneResult(removed=tuple(removed), failed=tuple(failed), kept=kept)


def prune_summary(plan: PrunePlan, result: PruneResult | None, *, dry_run: bool) -> dict[str, Any]:
    """The JSON result of a prune run (the flow's return value)."""
    summary: dict[str, Any] = {"dry_run": dry_run, "plan": plan.as_json()}
    if result is not None:
        summary["result"] = result.as_json()
        summary["ok"] = result.ok
    else:
        summary["ok"] = True
    return summary


__all__ = [
    "PruneGroup",
    "PruneItem",
    "PrunePlan",
    "PruneResult",
    "catalog_policies",
    "collect_backups",
    "execute_prune",
    "plan_prune",
    "prune_summary",
    "remove_backup",
]
