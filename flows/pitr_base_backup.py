"""The PITR base-backup flow: a fresh base backup of every PostgreSQL target with ``pitr.enabled``.

Runbook:
1. Read the catalog; pick the PITR targets (one environment, or all).
2. Per target (task ``pitr-base-backup``, transient errors retried): ``pg_basebackup`` through the
   encrypted pipeline (checked against PostgreSQL's backup_manifest, manifest last), the DR copy, then
   ``pitr.keep_base_backups`` applied in both regions (WAL a kept base backup needs is never removed).
3. Publish the ``pitr-base-backups`` table and the ``pitr-archive-status-<env|all>`` table (newest
   archived segment and its age against the RPO target, ``wal push`` failures, DR lag); the run ends
   Failed when any target failed.

WAL itself is archived continuously by PostgreSQL's ``archive_command`` (``envsteward wal push``), not by
this flow. Scheduled daily by ``prefect.yaml`` (deployment ``pitr-base-backup``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.pitr import (
    pitr_archive_status_task,
    pitr_base_backup_task,
    plan_pitr_targets_task,
    write_pitr_artifact,
)
from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State


@flow(
    name="pitr-base-backup", description="Base backups of the PostgreSQL targets with point-in-time recovery."
)
def pitr_base_backup(environment: str | None = None) -> State[Any]:
    """Take a base backup of every PITR target of ``environment`` (all environments when None).

    Returns Completed with the per-target summaries, or Failed (same data) when any target failed. Raises
    CatalogError for an unknown environment."""
    logger = get_run_logger()
    selectors = plan_pitr_targets_task(environment)
    futures = {selector: pitr_base_backup_task.submit(selector) for selector in selectors}
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for selector, future in futures.items():
        value = future.result(raise_on_failure=False)
        if isinstance(value, BaseException):
            failed.append(selector)
            logger.error("base backup of %s failed: %s", selector, value)
            rows.append({"target": selector, "status": "failed", "backup_id": "", "end_time": ""})
        else:
            rows.append(
                {
                    "target": selector,
                    "status": "ok",
                    "backup_id": value["backup_id"],
                    "end_time": value["pitr"].get("end_time", ""),
                }
            )
    write_pitr_artifact(rows)
    archive = pitr_archive_status_task(environment, return_state=True)
    if not archive.is_completed():
        logger.error("the WAL archive status could not be read: %s", archive.message)
    summary = {
        "targets": len(selectors),
        "failed": failed,
        "results": rows,
        "archive": archive.result() if archive.is_completed() else None,
    }
    if failed:
        return Failed(message=f"{len(failed)} PITR base backup(s) failed: {', '.join(failed)}", data=summary)
    return Completed(message=f"{len(selectors)} PITR base backup(s) done", data=summary)
