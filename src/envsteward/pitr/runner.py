"""One base-backup run of a PITR target: base backup, DR copy, PITR prune, audit. Shared by the CLI
(``pitr base-backup``) and the ``pitr-base-backup`` flow.

External calls: PostgreSQL (pg_basebackup), the key provider, the object stores and the audit log, all
through ``services``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.pitr.context import PitrServices, pitr_target, target_keys, target_stores

if TYPE_CHECKING:
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.catalog.models import PostgresBackup


class PitrRunServices(PitrServices, Protocol):
    def audit_log(self) -> AuditLog: ...


def plan_pitr_targets(catalog: Catalog, environment: str | None = None) -> list[str]:
    """``ENV/TARGET`` of every PostgreSQL target with ``pitr.enabled`` (in one environment, or all). Pure
    over the catalog; raises CatalogError for an unknown environment."""
    names = [environment] if environment is not None else list(catalog.environments)
    found = []
    for name in names:
        for spec in catalog.environment(name).backups:
            if spec.kind == "postgres" and spec.pitr.enabled:
                found.append(f"{name}/{spec.name}")
    return found


def _password(services: PitrServices, spec: PostgresBackup) -> Any:
    return services.resolve_secret(spec.password) if spec.password is not None else None


def run_pitr_base_backup(services: PitrRunServices, selector: str, *, prune: bool = True) -> dict[str, Any]:
    """Take a base backup of ``ENV/TARGET``, copy it to the DR store (targets with a ``replica_region``),
    then (``prune``) apply ``pitr.keep_base_backups`` in both regions; audit ``pitr.base_backup``.

    Returns a JSON summary (ids, times, sizes; no secret). Raises the errors of
    :func:`envsteward.pitr.base.take_base_backup`, :func:`envsteward.backup.replica.replicate_backup` and
    the stores'."""
    from envsteward.backup.replica import replicate_backup
    from envsteward.pitr.base import list_base_backups, take_base_backup
    from envsteward.pitr.retention import archived_wal, execute_pitr_prune, plan_pitr_prune
    from envsteward.pitr.walnames import archive_prefix

    environment, spec = pitr_target(services, selector)
    stores = target_stores(services, spec)
    manifest = take_base_backup(
        stores.primary,
        target_keys(services, spec, write=True),
        environment=environment,
        target=spec.name,
        dsn=spec.dsn,
        password=_password(services, spec),
        key_provider_kind=spec.key_provider,
        pg_bin=Path(spec.pitr.pg_bin) if spec.pitr.pg_bin else None,
    )
    pitr = {key: value for key, value in manifest.extra.get("pitr", {}).items() if key != "wal_files"}
    summary: dict[str, Any] = {
        "target": selector,
        "backup_id": manifest.backup_id,
        "pitr": pitr,
        "replica": None,
    }
    regions = [stores.primary]
    if spec.replica_region is not None and stores.dr is not None:
        replica = replicate_backup(stores.primary, stores.dr, manifest.backup_id, dr_region=stores.dr_region)
        summary["replica"] = replica.as_json()
        regions.append(stores.dr)
    if prune:
        prefix = archive_prefix(environment, spec.name)
        plan = plan_pitr_prune(
            list_base_backups(stores.primary, prefix),
            spec.pitr.keep_base_backups,
            archived_wal(stores.primary, prefix),
        )
        summary["prune"] = {**plan.as_json(), "deleted": execute_pitr_prune(regions, prefix, plan)}
    services.audit_log().append(
        "pitr.base_backup", target=manifest.backup_id, environment=environment, details=summary
    )
    return summary
