"""The disaster-recovery drill flow: restore a backup from the DR region into a scratch target and prove it.

Runbook (each phase is its own task run, retried on transient errors and timed on its own; the first
phase that fails ends the drill, teardown always runs):
1. ``start-dr-drill``: sweep abandoned drills (killed ones older than every phase's timeouts: their
   scratch targets removed, ``drill.abandoned`` audited, an ``abandoned`` row in the history; younger
   leftovers only reported), check the request, record the drill in the ledger, audit ``drill.started``.
2. ``drill-prepare``: resolve the target, the region's store and the scratch target.
3. ``drill-choose``: choose the backup (an id, ``latest``, or ``random`` among those retention keeps) in the
   region's store and measure RPO.
4. ``drill-fetch-verify``: read and authenticate the whole backup (an integrity failure ends the drill,
   nothing is restored).
5. ``drill-restore``: create the scratch target and decrypt/restore into it.
6. ``drill-verify-data``: row counts and per-table checksums against the manifest.
7. ``drill-health``: health checks and smoke queries against the restored target (RTO ends here).
8. ``drill-teardown`` (in ``finally``): remove the scratch target and confirm it is gone.
9. ``drill-report``: the verdict, RTO/RPO against the targets, the verified-by-drill mark, and the audit
   record (``drill.passed`` / ``drill.target_missed`` / ``drill.failed``).
10. Keep the record in the environment's drill history (``record-dr-drill``); publish the report (markdown
    with phase times, targets and the RTO/RPO chart), the verification table and the history table.
11. Alert: a failed drill to every channel of the environment (PagerDuty included); a missed RTO/RPO
    target to Slack and email; a pass after a failure resolves the page. One task per channel.
12. Record the run for the status view, emit ``envsteward.drill.failed`` for a failed drill, refresh
    ``platform-status``.
13. Return the record as JSON. The run ends Failed when the drill failed (a missed target is a finding,
    reported and alerted, and the run Completes with ``status: target_missed``).

Scheduled monthly (plus manual runs) by ``prefect.yaml`` (deployment ``dr-drill``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import flow_run_link
from envsteward.tasks.drill import (
    choose_task,
    fetch_verify_task,
    finish_drill_task,
    health_task,
    plan_drill_alerts,
    prepare_task,
    record_drill_task,
    restore_task,
    send_drill_alert,
    start_drill_task,
    teardown_task,
    verify_data_task,
    write_drill_artifacts,
)
from envsteward.tasks.status import publish_changes, record_drill_status
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, Failed, State

from envsteward.drill import DrillStatus
from envsteward.drill.phases import safe_error

PHASES = (prepare_task, choose_task, fetch_verify_task, restore_task, verify_data_task, health_task)
"""The drill's phases before teardown, in runbook order."""


@flow(name="dr-drill", description="Restore a backup from the DR region into a scratch target; verify it.")
def dr_drill(environment: str, backup: str = "latest", region: str = "dr") -> State[Any]:
    """Drill ``environment``: ``backup`` is an id, ``latest`` or ``random``; ``region`` is ``dr`` (default:
    rehearse losing the primary) or ``primary``.

    Returns a Completed state whose result is the drill record (JSON), or a Failed one (same result) when
    the drill failed. Raises CatalogError / ConfigurationError for an unknown environment or bad input.
    """
    logger = get_run_logger()
    drill = start_drill_task(environment, backup, region)
    if drill.sweep is not None:
        for line in drill.sweep.lines():
            logger.warning("sweep of abandoned drills: %s", line)
    try:
        for phase in PHASES:
            # a failed phase is recorded in the drill (and shown failed in the UI); it ends the drill
            if not phase(drill, return_state=True).is_completed():
                break
    finally:
        teardown = teardown_task(drill, return_state=True)
        if not teardown.is_completed():
            logger.error("the scratch target of drill %s was not removed", drill.drill_id)
    record = finish_drill_task(drill)
    logger.info(
        "drill %s of %s: %s (RTO %s s, RPO %s s)",
        record.drill_id,
        record.label(),
        record.status.value,
        record.rto_seconds,
        record.rpo_seconds,
    )
    history = record_drill_task(record)
    write_drill_artifacts(record, history)

    deliveries: list[PrefectFuture[Any]] = [
        send_drill_alert.submit(channel, notification)
        for channel, notification in plan_drill_alerts(record, history, flow_run_link())
    ]
    wait(deliveries)
    publish_changes(record_drill_status(record, flow_run_link(), return_state=True))
    undelivered = [delivery for delivery in deliveries if not delivery.state.is_completed()]
    for delivery in undelivered:
        logger.error("drill alert not delivered: %s", _describe(delivery.result(raise_on_failure=False)))

    summary = record.as_json()
    summary["alerts_undelivered"] = len(undelivered)
    if record.status is DrillStatus.FAILED:
        return Failed(
            message=f"DR drill of {record.label()} failed in {record.failed_phase}: {record.error}",
            data=summary,
        )
    if record.status is DrillStatus.TARGET_MISSED:
        return Completed(
            message=f"DR drill of {record.label()} verified, but missed {', '.join(record.missed_targets)}",
            data=summary,
        )
    return Completed(message=f"DR drill of {record.label()} passed", data=summary)


def _describe(outcome: object) -> str:
    return safe_error(outcome) if isinstance(outcome, BaseException) else type(outcome).__name__
