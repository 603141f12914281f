"""Prefect tasks for the backup and prune flows: thin wrappers over :mod:`envsteward.backup`.

Backups touch secrets (database passwords, Vault and SSM values in the stream): no task persists its result,
and results hold ids, sizes and timings only.
"""

from __future__ import annotations

from uuid import UUID

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key, retry_transient
from envsteward.tasks.limits import backup_systems, storage_systems, system_slots_sync
from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from envsteward.backup.leftovers import LeftoverReport, clean_leftovers
from envsteward.backup.progress_estimate import PercentTracker, previous_plaintext_size
from envsteward.backup.prune import (
    PrunePlan,
    PruneResult,
    catalog_policies,
    execute_prune,
    plan_prune,
)
from envsteward.backup.replica import ReplicaResult
from envsteward.backup.runner import BackupOutcome, TargetRunResult, replicate, run_backup
from envsteward.backup.stores import backup_stores
from envsteward.ports import Notification
from envsteward.services import get_services

BACKUP_TASK_TIMEOUT_SECONDS = 6 * 3600.0
"""A backup may take hours on a large database; the next scheduled run starts 6 hours later."""
REPLICA_TASK_TIMEOUT_SECONDS = 2 * 3600.0


@task(
    name="backup-target",
    task_run_name="backup-{environment}-{target}",
    **retry_transient(retries=2, first_delay_seconds=30),  # a slow step: 30 s, 60 s (jittered)
    timeout_seconds=BACKUP_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
def backup_target(environment: str, target: str) -> BackupOutcome:
    """Back up one catalog target into the primary store (audited), showing a progress artifact.

    Calls the target's system, its key provider, the object store and the audit log. Raises their errors;
    transient ones are retried (each attempt writes a new backup id; a failed attempt leaves nothing).
    """
    services = get_services()
    stores = backup_stores(services)
    artifact_id = create_progress_artifact(
        progress=0.0,
        key=artifact_key("backup-progress", environment, target),
        description=f"backup of {environment}/{target}",
    )

    def emit(percent: float, description: str) -> None:
        update_progress_artifact(artifact_id=artifact_id, progress=percent, description=description)

    tracker = PercentTracker(emit, previous_plaintext_size(stores.primary, environment, target))
    with system_slots_sync(backup_systems(environment, target)):
        outcome = run_backup(services, environment, target, stores=stores, progress=tracker)
    update_progress_artifact(
        artifact_id=artifact_id, progress=100.0, description=f"done: {outcome.backup_id}"
    )
    return outcome


@task(
    name="replicate-backup",
    task_run_name="replicate-{environment}-{target}",
    **retry_transient(retries=3, first_delay_seconds=10),  # 10 s, 20 s, 40 s (jittered)
    timeout_seconds=REPLICA_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
def replicate_target(environment: str, target: str, backup_id: str) -> ReplicaResult:
    """Copy one backup to the DR store and verify the copy's checksum (audited); idempotent, so retrying
    is safe. Calls both object stores and the audit log."""
    with system_slots_sync(storage_systems()):
        return replicate(get_services(), environment, target, backup_id)


@task(
    name="send-backup-alert",
    persist_result=False,
    **RETRY_TRANSIENT,
)
def send_backup_alert(channel: str, notification: Notification) -> str:
    """Send one notification to one catalog channel. Raises the notifier's errors."""
    (notifier,) = get_services().notifiers([channel])
    notifier.send(notification)
    return channel


@task(name="update-run-progress", persist_result=False)
def update_run_progress(artifact_id: UUID, percent: float, description: str) -> None:
    """Move the flow's overall progress artifact."""
    update_progress_artifact(artifact_id=artifact_id, progress=percent, description=description)


@task(name="write-backup-artifact", persist_result=False)
def write_backup_artifact(results: list[TargetRunResult]) -> None:
    """Publish one row per target (id, sizes, duration, replica) as the ``backup-run`` table artifact."""
    rows = []
    for result in results:
        rows.append(
            {
                "target": f"{result.environment}/{result.target}",
                "status": result.status,
                "backup_id": result.backup.backup_id if result.backup else "-",
                "stored_bytes": result.backup.stored_bytes if result.backup else 0,
                "seconds": result.duration_seconds,
                "replica": result.replica_status,
                "lag_seconds": result.replica.lag_seconds if result.replica else None,
                "error": result.error or "",
            }
        )
    create_table_artifact(key="backup-run", table=rows, description="envsteward backups: one row per target")


@task(
    name="plan-prune",
    persist_result=False,
    **RETRY_TRANSIENT,
)
def plan_prune_task() -> PrunePlan:
    """Decide what retention removes in both regions (reads only). Calls the object stores."""
    services = get_services()
    return plan_prune(backup_stores(services), catalog_policies(services.catalog()))


@task(name="write-prune-artifact", persist_result=False)
def write_prune_artifact(plan: PrunePlan, dry_run: bool) -> None:
    """Publish the plan (what goes, what stays and why) BEFORE anything is removed."""
    heading = "Prune plan (dry run: nothing is removed)" if dry_run else "Prune plan"
    lines = [f"# {heading}", "", f"primary: `{plan.primary}`, DR: `{plan.dr}`", "", "```"]
    lines += plan.render_text()
    lines.append("```")
    create_markdown_artifact(key="prune-plan", markdown="\n".join(lines), description="envsteward prune plan")


@task(name="execute-prune", persist_result=False)
def execute_prune_task(plan: PrunePlan) -> PruneResult:
    """Remove what the plan says in both regions; audit ``backup.pruned`` per backup. Not retried as a
    whole (a failed deletion is reported; the next run's plan picks it up again)."""
    services = get_services()
    return execute_prune(plan, backup_stores(services), services.audit_log())


@task(name="clean-backup-leftovers", persist_result=False)
def clean_leftovers_task(dry_run: bool) -> LeftoverReport:
    """Remove (unless ``dry_run``) what interrupted backups left in both regions, once older than the grace
    period; the same core call as ``envsteward backup prune``. Calls both object stores. Not retried as a
    whole (a failed removal is reported; the next run tries again)."""
    return clean_leftovers(backup_stores(get_services()), dry_run=dry_run)
