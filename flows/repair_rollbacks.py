"""The repair-rollbacks flow: finish every promotion rollback that its run could not finish.

Runbook:
1. ``sweep-rollbacks``: for every target with a rollback journal (of ``target`` only, when given), decide
   (:func:`~envsteward.promotion.repair.decide_repair`): a rollback that ran out of budget, a run that died
   or is finished, or an apply deadline that passed is rolled back from the journal; a run the Prefect API
   calls running, or cannot answer for, is left alone. Each repaired target is verified, audited
   (``promotion.rolled_back`` with the original run id) and its lease released.
2. Tell each target's channels (:func:`~envsteward.promotion.repair.repair_notification`): a repaired
   rollback always; a still-pending one only when this sweep is the first to find it.
3. Emit ``envsteward.promotion.rolled-back`` for each repaired target and, when any target was repaired or
   is still pending, refresh the ``platform-status`` artifact.
4. ``sweep-rotations`` (a full sweep only): every secret rotation whose run died mid-way
   (:mod:`envsteward.rotation.journal`) has its consumer set back to what the store holds as current,
   audited ``rotation.repaired`` and told to the environment's channels.
5. Return one line per target and one record per repaired rotation (no values).

Deployment ``repair-rollbacks`` in ``prefect.yaml`` (every minute, one run at a time). The drift scan runs
it before it heals; ``envsteward promote --repair TARGET`` runs it now.
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import flow_run_link
from envsteward.tasks.events import emit_promotion_rolled_back
from envsteward.tasks.promotion import notify, sweep_rollbacks
from envsteward.tasks.secret_rotation import sweep_rotations
from envsteward.tasks.status import refresh_platform_status
from prefect import flow, get_run_logger

from envsteward.promotion import runbook
from envsteward.promotion.repair import RepairReport, repair_notification
from envsteward.scan.live import describe_failure
from envsteward.services import get_services


@flow(
    name="repair-rollbacks",
    description="Finish pending promotion rollbacks and repair secret rotations whose run died mid-way.",
)
def repair_rollbacks(target: str | None = None) -> dict[str, Any]:
    """Finish the pending rollbacks of every target (or of ``target``).

    Returns ``{"repaired": [...], "pending": [...], "skipped": [...], "lines": [...]}`` (target names and
    one line per target; no values). A still-pending rollback does not fail the run (the run that gave up
    already failed and alerted); ``envsteward promote --repair`` exits 1 for it.
    """
    logger = get_run_logger()
    reports = sweep_rollbacks(target)
    link = flow_run_link()
    for report in reports:
        if report.outcome == "pending":
            logger.warning("%s", report.line())
        else:
            logger.info("%s", report.line())
        for warning in report.warnings:
            logger.warning("%s: %s", report.target, warning)
        if report.outcome == "repaired":
            emit_promotion_rolled_back(report.source, report.target, report.run_id, keys_left=0)
        _tell(report, link)
    rotations = sweep_rotations(link) if target is None else []
    for rotation in rotations:
        log = logger.info if rotation["outcome"] == "repaired" else logger.error
        log(
            "rotation of %s in %s (flow run %s): %s: %s",
            rotation["reference"],
            rotation["environment"],
            rotation["run_id"],
            rotation["outcome"],
            rotation["detail"],
        )
    if any(report.outcome != "skipped" for report in reports):
        refresh_platform_status(return_state=True)
    return {
        outcome: [report.target for report in reports if report.outcome == outcome]
        for outcome in ("repaired", "pending", "skipped")
    } | {"lines": [report.line() for report in reports], "rotations": rotations}


def _tell(report: RepairReport, link: str | None) -> None:
    """Send the report's notification to each of the target's channels (a failed one is logged)."""
    notification = repair_notification(report, link)
    if notification is None:
        return
    logger = get_run_logger()
    try:
        channels = runbook.notify_channels(
            get_services(), report.target, include_paging=report.outcome == "pending"
        )
    except Exception as exc:  # noqa: BLE001 - a target no longer in the catalog: the audit log has it
        logger.warning("cannot tell %s's channels: %s", report.target, describe_failure(exc))
        return
    for channel in channels:
        sent = notify(channel, notification, return_state=True)
        if not sent.is_completed():
            error = sent.result(raise_on_failure=False)
            logger.warning(
                "rollback notification to %s failed: %s",
                channel,
                describe_failure(error) if isinstance(error, BaseException) else "unknown",
            )
