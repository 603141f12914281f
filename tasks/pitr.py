"""Prefect tasks for the ``pitr-base-backup`` flow: thin wrappers over :mod:`envsteward.pitr.runner`.

A base backup streams database files: the task persists no result; results hold ids, times and sizes.
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key, retry_transient
from prefect import task
from prefect.artifacts import create_table_artifact

from envsteward.pitr.runner import plan_pitr_targets, run_pitr_base_backup
from envsteward.services import get_services

BASE_BACKUP_TASK_TIMEOUT_SECONDS = 6 * 3600.0


@task(name="plan-pitr-targets", persist_result=False)
def plan_pitr_targets_task(environment: str | None) -> list[str]:
    """``ENV/TARGET`` of every PostgreSQL target with pitr enabled. Reads the catalog."""
    return plan_pitr_targets(get_services().catalog(), environment)


@task(
    name="pitr-base-backup",
    task_run_name="pitr-base-backup-{selector}",
    **retry_transient(retries=2, first_delay_seconds=30),  # a failed attempt leaves no manifest
    timeout_seconds=BASE_BACKUP_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
def pitr_base_backup_task(selector: str) -> dict[str, Any]:
    """Base backup, DR copy, PITR prune and audit of one target. Calls pg_basebackup, the key provider,
    the stores and the audit log; transient errors are retried."""
    return run_pitr_base_backup(get_services(), selector)


@task(name="pitr-base-backup-artifact", persist_result=False)
def write_pitr_artifact(rows: list[dict[str, Any]]) -> None:
    """The ``pitr-base-backups`` table artifact (ids, times, status; no secret)."""
    create_table_artifact(key="pitr-base-backups", table=rows, description="PITR base backups of this run")


@task(name="pitr-archive-status", persist_result=False, **RETRY_TRANSIENT)
def pitr_archive_status_task(environment: str | None) -> list[dict[str, str]]:
    """The WAL archive of every PITR target (newest segment, its age against the RPO target, ``wal push``
    failures, DR lag) as the ``pitr-archive-status`` table artifact; returns its rows. Reads the catalog,
    lists the stores, reads the state store."""
    from envsteward.pitr.status import catalog_statuses, status_notes, status_row

    statuses = catalog_statuses(get_services(), environment)
    rows = [status_row(item) | {"notes": " ".join(status_notes(item))} for item in statuses]
    create_table_artifact(
        key=artifact_key("pitr-archive-status", environment or "all"),
        table=rows or [{"target": "-", "state": "no target enables pitr"}],
        description="WAL archive of the PITR targets: newest segment, age/RPO target, push failures, DR lag",
    )
    return rows


@task(name="pitr-slot-watch", persist_result=False, **RETRY_TRANSIENT)
def pitr_slot_watch_task(environments: list[str]) -> list[Any]:
    """The replication slot of every PITR target of ``environments`` as health results (check
    ``pitr-slot.<target>``): an inactive slot holding WAL is degraded or down. A server that cannot be
    read gives no result and a warning in the run's log. Calls PostgreSQL (read-only), the secret
    resolver and the state store (:mod:`envsteward.pitr.slot_watch`)."""
    from prefect import get_run_logger

    from envsteward.pitr.slot_watch import watch_slots

    services = get_services()
    run = watch_slots(services, services.state_store(), environments)
    for line in run.unreadable:
        get_run_logger().warning("replication slot not read: %s", line)
    return list(run.results)
