"""The expire-promotions flow: record the approval timeouts of promotions no process is waiting for.

A promotion run from the ``promote`` deployment suspends at its approval gate; when nobody answers, the
Prefect server fails it ("The flow was paused and never resumed") and no promotion code runs. This flow
does what the promotion would have done (:mod:`envsteward.promotion.expiry`):

1. ``expire-timed-out-promotions``: for the promotion lease of ``run_id`` (or every lease), decide whether
   its approval timed out; if so release the lease, audit ``promotion.timed_out``.
2. Tell the target's channels (Slack, email), one task per channel.
3. ``mark-timed-out``: give the promotion run the final state ``Timed out``, so the runs list says so.

Deployment ``expire-promotions`` in ``prefect.yaml``: triggered by every failed run of the ``promote``
deployment (``run_id`` from the event), and every minute as a sweep (it catches what a trigger missed, and
the embedded runner, which has no triggers).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import flow_run_link
from envsteward.tasks.promotion import expire_timed_out, mark_timed_out, notify
from prefect import flow, get_run_logger

from envsteward.promotion import runbook
from envsteward.promotion.expiry import expiry_notification, timeout_reason
from envsteward.scan.live import describe_failure
from envsteward.services import get_services

RUN_RESOURCE_PREFIX = "prefect.flow-run."
"""A trigger passes the event's resource id (``prefect.flow-run.<uuid>``); the flow run id follows it."""


@flow(
    name="expire-promotions",
    description="Audit, announce and release the promotions whose approval timed out with no run waiting.",
)
def expire_promotions(run_id: str | None = None) -> dict[str, Any]:
    """Expire the timed-out promotion of ``run_id`` (a flow run id or ``prefect.flow-run.<id>``), or of
    every target when not given.

    Returns ``{"expired": [run ids], "left": [run ids], "lines": [...]}`` (no values).
    """
    logger = get_run_logger()
    wanted = run_id.removeprefix(RUN_RESOURCE_PREFIX).strip() if run_id else None
    link = flow_run_link()
    found = expire_timed_out(wanted or None)
    for report, lease in found:
        if not report.expired:
            logger.info("%s", report.line())
            continue
        logger.warning("%s", report.line())
        _tell(report.target, expiry_notification(report, lease, link))
        marked = mark_timed_out(report.run_id, timeout_reason(lease), return_state=True)
        if not marked.is_completed():
            logger.warning(
                "could not mark flow run %s as timed out: %s",
                report.run_id,
                _why(marked.result(raise_on_failure=False)),
            )
    return {
        "expired": [report.run_id for report, _ in found if report.expired],
        "left": [report.run_id for report, _ in found if not report.expired],
        "lines": [report.line() for report, _ in found],
    }


def _tell(target: str, notification: Any) -> None:
    """Send to each of the target's promotion channels; a failed notification is logged (the audit log is
    the record)."""
    logger = get_run_logger()
    for channel in runbook.notify_channels(get_services(), target):
        sent = notify(channel, notification, return_state=True)
        if not sent.is_completed():
            logger.warning(
                "timeout notification to %s failed: %s",
                channel,
                _why(sent.result(raise_on_failure=False)),
            )


def _why(error: object) -> str:
    if isinstance(error, BaseException):
        return describe_failure(error)
    return f"unexpected {type(error).__name__}"
