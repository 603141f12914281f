"""The backup flow: every backup target of an environment (or all), each its own retried task.

Runbook:
1. Read the catalog; pick the targets (one environment, one target, or everything).
2. Back up every target at once (task ``backup-target``: transient errors retried; each shows a progress
   artifact). A target that fails does not stop the others.
3. As each backup completes, replicate it to the DR region when the target asks for a replica (task
   ``replicate-backup``: copy, verify the copy's checksum, record the replication lag).
4. Publish the ``backup-run`` table and move the overall ``backup-environment-progress`` artifact.
5. Alert each affected environment's channels (Slack...) about failed targets; record each target's run
   for the status view, emit ``envsteward.backup.failed`` per failure, refresh ``platform-status``.
6. Return the JSON summary: per target the backup id, sizes, duration and replica status (no secrets).
   The run ends Failed (with that summary as its result) when any target failed.

Scheduled every 6 hours by ``prefect.yaml`` (deployment ``backup-environment``).
"""

from __future__ import annotations

import time
from typing import Any

from envsteward.tasks.backup import (
    backup_target,
    replicate_target,
    send_backup_alert,
    update_run_progress,
    write_backup_artifact,
)
from envsteward.tasks.common import flow_run_link
from envsteward.tasks.status import publish_changes, record_backup_status
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact
from prefect.futures import PrefectFuture, as_completed, wait
from prefect.states import Completed, Failed, State

from envsteward.backup.keys import local_key_warning
from envsteward.backup.runner import (
    PlannedBackup,
    TargetRunResult,
    failure_notification,
    plan_backups,
    run_summary,
    target_result,
)
from envsteward.services import get_services


@flow(name="backup-environment", description="Back up an environment's targets and replicate them to DR.")
def backup_environment(environment: str | None = None, target: str | None = None) -> State[Any]:
    """Back up ``environment``'s targets (every environment when None; only ``target`` when given).

    Returns a Completed state whose result is the JSON summary, or a Failed one (same result) when any
    target's backup or replica failed. Raises CatalogError / ConfigurationError for an unknown
    environment or target.
    """
    logger = get_run_logger()
    services = get_services()
    catalog = services.catalog()
    planned = plan_backups(catalog, environment, target)
    if key_warning := local_key_warning(services.settings.home, planned):
        logger.warning("%s", key_warning)
    steps = sum(2 if item.wants_replica else 1 for item in planned) or 1
    progress_id = create_progress_artifact(
        progress=0.0,
        key="backup-environment-progress",
        description=f"backups of {environment or 'every environment'}",
    )
    started = {item.label(): time.monotonic() for item in planned}

    backups: dict[PrefectFuture[Any], PlannedBackup] = {
        backup_target.submit(item.environment, item.name): item for item in planned
    }
    replicas: dict[str, PrefectFuture[Any]] = {}
    outcomes: dict[str, Any] = {}
    backup_errors: dict[str, BaseException] = {}
    for done, future in enumerate(as_completed(list(backups)), start=1):
        item = backups[future]
        value = future.result(raise_on_failure=False)
        if isinstance(value, BaseException):
            backup_errors[item.label()] = value
            logger.error("backup of %s failed: %s", item.label(), _describe(value))
        else:
            outcomes[item.label()] = value
            if item.wants_replica:
                replicas[item.label()] = replicate_target.submit(item.environment, item.name, value.backup_id)
        update_run_progress(progress_id, 100.0 * done / steps, f"{done} of {steps} step(s) done")
    wait(list(replicas.values()))

    results: list[TargetRunResult] = []
    for item in planned:
        label = item.label()
        replica_value = replicas[label].result(raise_on_failure=False) if label in replicas else None
        replica_error = replica_value if isinstance(replica_value, BaseException) else None
        results.append(
            target_result(
                item,
                backup=outcomes.get(label),
                replica=None if replica_error is not None else replica_value,
                backup_error=backup_errors.get(label),
                replica_error=replica_error,
                seconds=time.monotonic() - started[label],
            )
        )
    update_run_progress(progress_id, 100.0, f"{len(results)} target(s) done")
    write_backup_artifact(results)
    _alert(results)
    publish_changes(record_backup_status(results, flow_run_link(), return_state=True))

    summary = run_summary(results)
    if not summary["ok"]:
        failed = ", ".join(f"{r.environment}/{r.target}" for r in results if r.status != "ok")
        return Failed(
            message=f"{summary['failed']} of {summary['targets']} backup target(s) failed: {failed}",
            data=summary,
        )
    return Completed(message=f"{summary['targets']} backup target(s) done", data=summary)


def _alert(results: list[TargetRunResult]) -> None:
    """One notification per environment with failures, to each of its channels."""
    services = get_services()
    catalog = services.catalog()
    logger = get_run_logger()
    deliveries: list[PrefectFuture[Any]] = []
    for environment in sorted({r.environment for r in results if r.status != "ok"}):
        mine = [r for r in results if r.environment == environment]
        notification = failure_notification(environment, mine, link=flow_run_link())
        for channel in catalog.environment(environment).notify:
            deliveries.append(send_backup_alert.submit(channel, notification))
    wait(deliveries)
    for delivery in deliveries:
        if not delivery.state.is_completed():
            logger.error("backup alert not delivered: %s", _describe(delivery.result(raise_on_failure=False)))


def _describe(outcome: object) -> str:
    from envsteward.backup.runner import safe_error

    return safe_error(outcome) if isinstance(outcome, BaseException) else type(outcome).__name__
