"""The disaster-recovery drill flow: restore a backup from the DR region into a scratch target and prove it.

Runbook:
1. Run the drill (task ``run-dr-drill``, one call into :func:`envsteward.drill.run_drill`): choose the
   backup (an id, ``latest``, or ``random`` among those retention keeps) in the region's store and measure
   RPO; read and verify the whole backup (an integrity failure ends the drill, nothing is restored);
   create the scratch target and restore into it; compare row counts and per-table checksums with the
   manifest; run the health checks and smoke queries against it; measure RTO; ALWAYS tear the scratch
   target down. Audited (``drill.started`` / ``drill.passed`` / ``drill.target_missed`` / ``drill.failed``);
   a drill that verified its backup marks it verified-by-drill.
2. Keep the record in the environment's drill history (task ``record-dr-drill``).
3. Publish the report (markdown with phase times, targets and the RTO/RPO chart), the verification table
   and the history table.
4. Alert: a failed drill to every channel of the environment (PagerDuty included); a missed RTO/RPO
   target to Slack and email; a pass after a failure resolves the page.
5. Return the record as JSON. The run ends Failed when the drill failed (a missed target is a finding,
   reported and alerted, and the run Completes with ``status: target_missed``).

Scheduled monthly (plus manual runs) by ``prefect.yaml`` (deployment ``dr-drill``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.drill import (
    plan_drill_alerts,
    record_drill_task,
    run_drill_task,
    send_drill_alert,
    write_drill_artifacts,
)
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, Failed, State

from envsteward.drill import DrillStatus


@flow(name="dr-drill", description="Restore a backup from the DR region into a scratch target; verify it.")
def dr_drill(environment: str, backup: str = "latest", region: str = "dr") -> State[Any]:
    """Drill ``environment``: ``backup`` is an id, ``latest`` or ``random``; ``region`` is ``dr`` (default:
    rehearse losing the primary) or ``primary``.

    Returns a Completed state whose result is the drill record (JSON), or a Failed one (same result) when
    the drill failed. Raises CatalogError / ConfigurationError for an unknown environment or bad input.
    """
    logger = get_run_logger()
    record = run_drill_task(environment, backup, region)
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
        for channel, notification in plan_drill_alerts(record, history, _flow_run_link())
    ]
    wait(deliveries)
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
    from envsteward.drill.engine import safe_error

    return safe_error(outcome) if isinstance(outcome, BaseException) else type(outcome).__name__


def _flow_run_link() -> str | None:
    from prefect.runtime import flow_run

    url = flow_run.ui_url
    return str(url) if url else None
