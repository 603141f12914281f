"""Run the catalog's backups: one target at a time, from source to a verified primary copy and its replica.

:func:`plan_backups` picks the targets; :func:`run_backup` dumps one target through the encrypted pipeline
into the primary store and audits ``backup.completed`` (or ``backup.failed``); :func:`replicate` copies it
to the DR store and audits ``backup.replicated`` (or ``backup.failed`` with ``stage: replica``);
:func:`run_backup_target` does both and never raises for a failure of the target (the CLI's path; the
flow calls the two steps as separate retried tasks). Results are JSON-able and hold no secret value.

envsteward never writes a plaintext backup: ``encrypted: false`` on a catalog target is ignored (the
target's key provider, ``local`` by default, wraps the data key).

A target asks for a replica with ``replica_region`` (catalog): None means no replica, as the catalog
documents; the DR store is the one from :mod:`envsteward.backup.stores`.

External calls: the target's system (PostgreSQL, SQLite file, Vault, SSM, catalog), its key provider
(local key, Vault transit, KMS), the object stores and the audit log, all through ``services``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from envsteward.backup.manifest import Manifest
from envsteward.backup.pipeline import new_backup_id, write_backup
from envsteward.backup.progress import ProgressCallback
from envsteward.backup.replica import ReplicaResult, replicate_backup
from envsteward.backup.stores import BackupStores, backup_stores
from envsteward.errors import ConfigurationError, EnvstewardError
from envsteward.ports import AlertEvent, Notification, ObjectStore, Severity

if TYPE_CHECKING:
    from envsteward.backup.ports import BackupServices
    from envsteward.catalog import BackupTarget, Catalog


@dataclass(frozen=True)
class PlannedBackup:
    """One catalog backup target of one environment."""

    environment: str
    target: BackupTarget

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def wants_replica(self) -> bool:
        return self.target.replica_region is not None

    def label(self) -> str:
        return f"{self.environment}/{self.target.name}"


RUNNER_ZSTD_LEVEL = 2
"""zstd level of scheduled backups. Measured (benchmarks/backup/README.md): on a pg_dump of generated
orders level 2 compresses 1.9x faster than level 3 AND 18% smaller; on source-code text 1.25x faster and
6% larger. Level 3 stays the library default of ``write_backup``."""

RUNNER_ZSTD_THREADS = 1
"""zstd worker threads of scheduled backups: ONE worker moves compression off the thread that reads and
scans the dump, so a backup uses a second core (benchmarks/backup/README.md, issue 16 third pass). One
worker costs about 15-20 MiB and no extra CPU; more would only compete with pg_dump's backend on small
hosts, and the embedded runner may run several backups at once. ``write_backup``'s default stays 0."""


def plan_backups(
    catalog: Catalog, environment: str | None = None, target: str | None = None
) -> list[PlannedBackup]:
    """The backup targets to run: every target of every environment by default, else those named.

    Pure over the catalog. Raises CatalogError for an unknown environment (naming the known ones) and
    ConfigurationError for an unknown target (naming the environment's targets).
    """
    names = [environment] if environment is not None else list(catalog.environments)
    planned: list[PlannedBackup] = []
    for name in names:
        spec = catalog.environment(name)
        planned.extend(
            PlannedBackup(name, item) for item in spec.backups if target is None or item.name == target
        )
    if target is not None and not planned:
        where = f"environment {environment!r}" if environment else "any environment"
        known = sorted({f"{env}/{item.name}" for env in names for item in catalog.environment(env).backups})
        raise ConfigurationError(
            f"no backup target {target!r} in {where}; known targets: {', '.join(known) or 'none'}"
        )
    return planned


def find_target(catalog: Catalog, environment: str, target: str) -> BackupTarget:
    """The catalog's backup target. Raises CatalogError / ConfigurationError naming the known ones."""
    (planned,) = plan_backups(catalog, environment, target)
    return planned.target


@dataclass(frozen=True)
class BackupOutcome:
    """A completed primary backup. JSON-able via :meth:`as_json`; no secret in it."""

    environment: str
    target: str
    kind: str
    backup_id: str
    key_provider: str
    key_id: str
    store: str
    started_at: datetime
    consistent_at: datetime
    completed_at: datetime
    duration_seconds: float
    plaintext_bytes: int
    compressed_bytes: int
    stored_bytes: int
    chunks: int
    tables: int | None
    wants_replica: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "target": self.target,
            "kind": self.kind,
            "backup_id": self.backup_id,
            "key_provider": self.key_provider,
            "key_id": self.key_id,
            "store": self.store,
            "started_at": self.started_at.isoformat(),
            "consistent_at": self.consistent_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "sizes": {
                "plaintext": self.plaintext_bytes,
                "compressed": self.compressed_bytes,
                "stored": self.stored_bytes,
            },
            "chunks": self.chunks,
            "tables": self.tables,
        }


def safe_error(exc: BaseException) -> str:
    """A message for results, audit records and alerts: envsteward errors carry safe messages (they never
    hold secret values); anything else is named by its type only, since its text is unknown."""
    if isinstance(exc, EnvstewardError):
        return str(exc)
    return f"{type(exc).__name__} (unexpected error; see the logs of the run)"


def _audit(
    services: BackupServices, action: str, environment: str, target: str, details: dict[str, Any]
) -> None:
    services.audit_log().append(action, target=target, environment=environment, details=details)


def run_backup(
    services: BackupServices,
    environment: str,
    target: str | BackupTarget,
    *,
    stores: BackupStores | None = None,
    progress: ProgressCallback | None = None,
) -> BackupOutcome:
    """Back up one catalog target into the primary store and audit ``backup.completed``.

    On any failure ``backup.failed`` is audited (best effort) and the error re-raised; the pipeline has
    then removed the partial data object (S3: aborted the multipart upload) and written no manifest.
    Raises CatalogError/ConfigurationError (unknown target, bad regions, missing key), the source's,
    key provider's and store's errors (TransientError is worth retrying), IntegrityError.
    """
    spec = find_target(services.catalog(), environment, target) if isinstance(target, str) else target
    clock = time.monotonic()
    key_ref = spec.key_id or ""
    try:
        stores = stores or backup_stores(services)
        stores.check_target(spec)
        source = services.backup_source(spec, environment)
        keys = services.key_provider(spec.key_provider, spec.key_id)
        backup_id = new_backup_id(environment, spec.name)
        with source.dump() as stream:
            started_at = stream.started_at or datetime.now(UTC)
            manifest = write_backup(
                stores.primary,
                keys,
                backup_id,
                stream,
                environment=environment,
                source=stream.source_info(),
                started_at=started_at,
                consistent_at=stream.consistent_at,
                tables=lambda: stream.tables,
                tools=lambda: stream.tools,
                extra={
                    "key_provider": spec.key_provider,
                    "target": source.describe(),
                    "replica_region": spec.replica_region,
                },
                progress=progress,
                zstd_level=RUNNER_ZSTD_LEVEL,
                zstd_threads=RUNNER_ZSTD_THREADS,
            )
    except BaseException as exc:
        _audit_failure(services, environment, spec, stage="backup", exc=exc, seconds=time.monotonic() - clock)
        raise
    outcome = _outcome(spec, environment, manifest, stores, key_ref, time.monotonic() - clock)
    _audit(services, "backup.completed", environment, outcome.backup_id, outcome.as_json())
    return outcome


def _outcome(  # noqa: PLR0917
    spec: BackupTarget,
    environment: str,
    manifest: Manifest,
    stores: BackupStores,
    key_ref: str,
    seconds: float,
) -> BackupOutcome:
    return BackupOutcome(
        environment=environment,
        target=spec.name,
        kind=spec.kind,
        backup_id=manifest.backup_id,
        key_provider=spec.key_provider,
        key_id=manifest.encryption.key_id or key_ref,
        store=stores.describe_primary(),
        started_at=manifest.started_at,
        consistent_at=manifest.consistent_at,
        completed_at=manifest.completed_at,
        duration_seconds=round(seconds, 3),
        plaintext_bytes=manifest.sizes.plaintext,
        compressed_bytes=manifest.sizes.compressed,
        stored_bytes=manifest.sizes.ciphertext,
        chunks=manifest.format.chunks,
        tables=len(manifest.tables) if manifest.tables is not None else None,
        wants_replica=spec.replica_region is not None,
    )


def _audit_failure(
    services: BackupServices,
    environment: str,
    spec: BackupTarget,
    *,
    stage: str,
    exc: BaseException,
    seconds: float,
    backup_id: str | None = None,
) -> None:
    details = {
        "target": spec.name,
        "kind": spec.kind,
        "stage": stage,
        "error": safe_error(exc),
        "transient": bool(getattr(exc, "transient", False)),
        "seconds": round(seconds, 3),
    }
    if backup_id is not None:
        details["backup_id"] = backup_id
    # the backup's own error is the one to report; the audit log's failure shows in its own checks
    with contextlib.suppress(EnvstewardError):
        _audit(services, "backup.failed", environment, backup_id or f"{environment}/{spec.name}", details)


def _dr_store(stores: BackupStores, spec: BackupTarget) -> ObjectStore:
    if stores.dr is None:
        raise ConfigurationError(
            f"backup target {spec.name!r} asks for a replica in {spec.replica_region}, but no DR store "
            "is configured: set storage.dr_bucket (ENVSTEWARD_STORAGE__DR_BUCKET)"
        )
    return stores.dr


def replicate(
    services: BackupServices,
    environment: str,
    target: str | BackupTarget,
    backup_id: str,
    *,
    stores: BackupStores | None = None,
) -> ReplicaResult:
    """Copy backup ``backup_id`` to the DR store, verify the copy and audit ``backup.replicated``.

    On failure ``backup.failed`` (``stage: replica``) is audited and the error re-raised. Raises
    ConfigurationError when no DR store is configured (``storage.dr_bucket``) or the regions disagree,
    and what :func:`envsteward.backup.replica.replicate_backup` raises.
    """
    spec = find_target(services.catalog(), environment, target) if isinstance(target, str) else target
    clock = time.monotonic()
    try:
        stores = stores or backup_stores(services)
        stores.check_target(spec)
        result = replicate_backup(
            stores.primary, _dr_store(stores, spec), backup_id, dr_region=stores.dr_region
        )
    except BaseException as exc:
        _audit_failure(
            services,
            environment,
            spec,
            stage="replica",
            exc=exc,
            seconds=time.monotonic() - clock,
            backup_id=backup_id,
        )
        raise
    _audit(services, "backup.replicated", environment, backup_id, result.as_json())
    return result


TargetStatus = Literal["ok", "failed"]
ReplicaStatus = Literal["ok", "failed", "not-requested", "skipped"]


@dataclass(frozen=True)
class TargetRunResult:
    """What happened to one target in a run (backup and replica). JSON-able; no secret in it."""

    environment: str
    target: str
    kind: str
    status: TargetStatus
    duration_seconds: float
    backup: BackupOutcome | None = None
    replica: ReplicaResult | None = None
    replica_status: ReplicaStatus = "not-requested"
    error: str | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "environment": self.environment,
            "target": self.target,
            "kind": self.kind,
            "status": self.status,
            "backup_id": self.backup.backup_id if self.backup else None,
            "sizes": self.backup.as_json()["sizes"] if self.backup else None,
            "duration_seconds": self.duration_seconds,
            "replica_status": self.replica_status,
            "replica": self.replica.as_json() if self.replica else None,
            "replication_lag_seconds": self.replica.lag_seconds if self.replica else None,
            "error": self.error,
        }
        return document


def target_result(
    planned: PlannedBackup,
    *,
    backup: BackupOutcome | None,
    replica: ReplicaResult | None,
    backup_error: BaseException | None,
    replica_error: BaseException | None,
    seconds: float,
) -> TargetRunResult:
    """Fold a target's backup and replica outcomes into its result (pure). A target fails when its backup
    failed, or when it asked for a replica that failed."""
    errors: list[str] = []
    if backup_error is not None:
        errors.append(f"backup: {safe_error(backup_error)}")
    if replica_error is not None:
        errors.append(f"replica: {safe_error(replica_error)}")
    replica_status: ReplicaStatus
    if not planned.wants_replica:
        replica_status = "not-requested"
    elif backup is None:
        replica_status = "skipped"
    elif replica is not None and replica_error is None:
        replica_status = "ok"
    else:
        replica_status = "failed"
    ok = backup is not None and replica_status in ("ok", "not-requested")
    return TargetRunResult(
        environment=planned.environment,
        target=planned.name,
        kind=planned.kind,
        status="ok" if ok else "failed",
        duration_seconds=round(seconds, 3),
        backup=backup,
        replica=replica,
        replica_status=replica_status,
        error="; ".join(errors) or None,
        errors=tuple(errors),
    )


def run_backup_target(
    services: BackupServices,
    planned: PlannedBackup,
    *,
    stores: BackupStores | None = None,
    progress: ProgressCallback | None = None,
) -> TargetRunResult:
    """Backup then (when asked for) replicate one target; a failure is returned, never raised (other
    targets go on). Calls what :func:`run_backup` and :func:`replicate` call."""
    clock = time.monotonic()
    backup: BackupOutcome | None = None
    replica: ReplicaResult | None = None
    backup_error: BaseException | None = None
    replica_error: BaseException | None = None
    try:
        backup = run_backup(services, planned.environment, planned.target, stores=stores, progress=progress)
    except Exception as exc:  # noqa: BLE001 - one target's failure must not stop the others
        backup_error = exc
    if backup is not None and planned.wants_replica:
        try:
            replica = replicate(
                services, planned.environment, planned.target, backup.backup_id, stores=stores
            )
        except Exception as exc:  # noqa: BLE001
            replica_error = exc
    return target_result(
        planned,
        backup=backup,
        replica=replica,
        backup_error=backup_error,
        replica_error=replica_error,
        seconds=time.monotonic() - clock,
    )


def run_summary(results: Sequence[TargetRunResult]) -> dict[str, Any]:
    """The JSON result of a backup run: ``ok``, counts, and one entry per target (no secrets)."""
    failed = [result for result in results if result.status != "ok"]
    return {
        "ok": not failed,
        "targets": len(results),
        "failed": len(failed),
        "results": [result.as_json() for result in results],
    }


def failure_notification(
    environment: str, results: Sequence[TargetRunResult], link: str | None = None
) -> Notification:
    """The alert for an environment whose backup run had failures (pure; messages hold no secret)."""
    failed = [result for result in results if result.status != "ok"]
    lines = [f"- {result.target} ({result.kind}): {result.error}" for result in failed]
    return Notification(
        title=f"Backups failed in {environment}: {len(failed)} of {len(results)} target(s)",
        text="\n".join(lines),
        severity=Severity.HIGH,
        event=AlertEvent.TRIGGER,
        environment=environment,
        dedup_key=f"envsteward-backup-{environment}",
        link=link,
        fields={result.target: result.replica_status for result in failed},
    )
