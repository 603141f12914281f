"""The promote flow: development → staging → production, with a diff, validation, approval and rollback.

Runbook:
1. Plan: read source and target, compute the changes (environment-specific keys never, secrets by reference
   only), run the target's tier rules on the result; publish the plan as an artifact.
2. Dry run: stop here (nothing written anywhere). Blocked plan: audit it and fail with the reasons.
3. Lock the target (one promotion per target), audit ``promotion.requested``, tell Slack (plan + run link).
4. Approval gates: wait for the Resume form (approve/reject, reviewer, comment) until the target's
   ``approvals_needed`` distinct approvers approve, one rejects, or the deadline passes. From a deployment
   the run *suspends* (no worker held; it re-runs from the start when resumed and reads its cached steps);
   run locally it pauses in place. Every answer is audited, refused ones included.
5. Stale-plan guard: plan again; a different hash aborts without writing and says what changed.
6. Snapshot the touched keys, apply (retried, idempotent), re-read to verify, run the target's health
   checks. Any failure: roll back to the snapshot, verify the rollback, alert.

Deployment ``promote`` in ``prefect.yaml`` (no schedule). Answer from the UI's Resume form or with
``envsteward approve RUN_ID --reviewer NAME`` / ``envsteward reject RUN_ID --reviewer NAME``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from envsteward.tasks.promotion import (
    apply_changes,
    audit_event,
    check_target_health,
    lock_target,
    notify,
    notify_request,
    plan_for_approval,
    publish_plan,
    record_answer,
    record_request,
    release_target,
    replan,
    rollback_target,
    snapshot_target,
    verify_changes,
)
from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from envsteward.catalog import ApprovalPolicy
from envsteward.ports import Severity
from envsteward.promotion import (
    ApplyError,
    ApprovalState,
    PromotionOutcome,
    PromotionPlan,
    Status,
    describe_staleness,
    render_approval_description,
    render_plan_markdown,
    runbook,
)
from envsteward.promotion import approval as approvals
from envsteward.promotion.errors import (
    PromotionBlockedError,
    PromotionRolledBackError,
    RollbackFailedError,
    StalePlanError,
)
from envsteward.scan.live import describe_failure
from envsteward.services import get_services

POLL_INTERVAL_SECONDS = 10
"""How often a locally paused run asks the API whether it was resumed (tests lower it)."""
MAX_GATES = 50
"""A safety stop: after this many answers without a decision the request is rejected."""


class ApprovalForm(RunInput):
    """The Resume form: approve or reject the promotion described above."""

    decision: Literal["approve", "reject"] = Field(description="approve or reject the promotion")
    reviewer: str = Field(description="your name, as on the target's approver list")
    comment: str = Field(default="", description="why (recorded in the audit log)")


@flow(
    name="promote",
    description="Promote one environment's configuration to the next, with a diff, approval and rollback.",
    persist_result=True,
)
def promote(  # noqa: PLR0917 - the deployment's parameters, as the issue names them
    source: str,
    target: str,
    select: list[str] | None = None,
    dry_run: bool = False,
    requested_by: str = "",
    reason: str = "",
) -> dict[str, Any]:
    """Promote ``source``'s live configuration to ``target`` (the next environment on the path).

    Args:
        source: Environment to promote from, e.g. development.
        target: The next environment on the promotion path, e.g. staging.
        select: Only keys matching these path globs (e.g. services.*.image); empty: every promotable key.
        dry_run: Publish the plan and its validation as artifacts and stop; nothing is written anywhere.
        requested_by: Who asks for the promotion (default: the configured actor); never an approver of it.
        reason: Why, shown to the approvers and recorded in the audit log.

    Returns a summary (outcome, counts, hash; no values). Raises PromotionRefusedError (not the next
    environment), PromotionBlockedError, PromotionLockedError (another promotion to the target is running),
    StalePlanError, PromotionRolledBackError or RollbackFailedError.
    """
    services = get_services()
    requester = requested_by.strip() or services.settings.current_actor()
    run_id, link = _run_identity()

    plan = plan_for_approval(source, target, select)
    publish_plan(plan, dry_run)
    if dry_run:
        return _summary(
            plan,
            PromotionOutcome.DRY_RUN,
            run_id,
            "dry run: nothing was written",
            plan_markdown=render_plan_markdown(plan, title=f"Dry run: promotion {source} → {target}"),
        )
    if plan.blocked:
        audit_event(plan, run_id, "promotion.blocked", {"blockers": list(plan.blockers)}, requester)
        raise PromotionBlockedError(
            f"the promotion {source} -> {target} is blocked: " + "; ".join(plan.blockers), system="promotion"
        )
    if plan.empty:
        return _summary(
            plan, PromotionOutcome.NOTHING_TO_PROMOTE, run_id, f"{target} already matches {source}"
        )

    lock_target(plan, run_id, requester)
    suspended = False
    try:
        requested_at = record_request(plan, run_id, requester, reason)
        _tell(notify_request, services, plan, runbook.request_notification(plan, requester, reason, link))
        state = _collect_approvals(plan, run_id, requester, reason, requested_at)
        if state.status is not Status.APPROVED:
            return _not_approved(services, plan, run_id, state, link)

        fresh = replan(source, target, select)
        if fresh.plan_hash != plan.plan_hash:
            changed = describe_staleness(plan, fresh)
            audit_event(plan, run_id, "promotion.aborted", {"why": "stale plan", "changed": changed})
            _tell(
                notify,
                services,
                plan,
                runbook.outcome_notification(plan, "aborted (stale plan)", "\n".join(changed), link),
            )
            raise StalePlanError(
                f"the plan changed since it was approved; nothing was written: {'; '.join(changed)}",
                system="promotion",
            )
        return _apply(services, plan, run_id, state, link)
    except Pause:
        suspended = True
        raise
    finally:
        if not suspended:
            release_target(plan.target, run_id)


# ---------------------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------------------


def _collect_approvals(
    plan: PromotionPlan, run_id: str, requester: str, reason: str, requested_at: datetime
) -> ApprovalState:
    policy = ApprovalPolicy(
        approvers=list(plan.approvers),
        approvals_needed=plan.approvals_needed,
        timeout_hours=plan.timeout_hours,
    )
    state = approvals.start(policy)
    gate = 0
    while state.status is Status.PENDING:
        gate += 1
        left = approvals.seconds_left(requested_at, policy, datetime.now(UTC))
        if left <= 0 or gate > MAX_GATES:
            return approvals.time_out(state, policy.timeout_hours)
        description = render_approval_description(plan, state, requester, reason)
        answer = _wait_for_answer(description, f"approval-{gate}", left)
        if answer is None:
            return approvals.time_out(state, policy.timeout_hours)
        ruling = approvals.judge(answer, policy, requester, state)
        state = approvals.decide(answer, policy, requester, state)
        record_answer(plan, run_id, gate, ruling, state)
        if not ruling.accepted:
            get_run_logger().warning("answer refused: %s", ruling.reason)
    return state


def _wait_for_answer(description: str, key: str, seconds_left: float) -> approvals.Answer | None:
    """Wait at one gate. From a deployment: suspend (the process exits; the run re-runs when resumed); run
    locally: pause in place. None when the deadline passes."""
    from prefect.runtime import deployment

    form = ApprovalForm.with_initial_data(description=description)
    timeout = max(1, math.ceil(seconds_left))
    try:
        if deployment.id:
            response = suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
        else:
            response = pause_flow_run(
                wait_for_input=form, timeout=timeout, poll_interval=POLL_INTERVAL_SECONDS, key=key
            )
    except FlowPauseTimeout:
        return None
    return approvals.Answer(decision=response.decision, reviewer=response.reviewer, comment=response.comment)


def _not_approved(
    services: Any, plan: PromotionPlan, run_id: str, state: ApprovalState, link: str | None
) -> dict[str, Any]:
    if state.status is Status.TIMED_OUT:
        audit_event(
            plan,
            run_id,
            "promotion.timed_out",
            {"reason": state.reason, "approved_by": list(state.approved_by)},
        )
        outcome = PromotionOutcome.TIMED_OUT
    else:
        outcome = PromotionOutcome.REJECTED  # the rejection itself is audited by record_answer
    _tell(notify, services, plan, runbook.outcome_notification(plan, outcome.value, state.reason, link))
    return _summary(plan, outcome, run_id, state.reason, approved_by=state.approved_by)


# ---------------------------------------------------------------------------------------------------------
# Apply, verify, roll back
# ---------------------------------------------------------------------------------------------------------


def _apply(
    services: Any, plan: PromotionPlan, run_id: str, state: ApprovalState, link: str | None
) -> dict[str, Any]:
    snapshot = snapshot_target(plan)
    try:
        report = apply_changes(plan)
        audit_event(plan, run_id, "promotion.applied", runbook.apply_summary(report))
        problems = verify_changes(plan)
        if not problems:
            problems = check_target_health(plan.target)
        if problems:
            raise PromotionRolledBackError(  # noqa: TRY301 - caught below: every failure rolls back
                "; ".join(problems), system="promotion", operation="verify"
            )
    except Exception as exc:  # noqa: BLE001 - ANY failure rolls back
        return _roll_back(services, plan, run_id, snapshot, exc, link)
    audit_event(plan, run_id, "promotion.verified", {"written": report.written, "no_ops": report.no_ops})
    text = f"{report.written} key(s) written, {report.no_ops} already up to date; verified and healthy."
    _tell(notify, services, plan, runbook.outcome_notification(plan, "applied", text, link))
    return _summary(
        plan,
        PromotionOutcome.APPLIED,
        run_id,
        text,
        approved_by=state.approved_by,
        written=report.written,
        no_ops=report.no_ops,
    )


def _roll_back(  # noqa: PLR0917
    services: Any, plan: PromotionPlan, run_id: str, snapshot: Any, exc: Exception, link: str | None
) -> dict[str, Any]:
    why = describe_failure(exc)
    details: dict[str, Any] = {"error": why}
    if isinstance(exc, ApplyError):
        details.update(runbook.apply_summary(exc.report))
    audit_event(plan, run_id, "promotion.failed", details)
    problems = rollback_target(plan, snapshot)
    if problems:
        audit_event(plan, run_id, "promotion.rollback_failed", {"error": why, "problems": problems})
        _tell(
            notify,
            services,
            plan,
            runbook.outcome_notification(
                plan,
                "ROLLBACK FAILED",
                f"{why}\nRollback problems: {'; '.join(problems)}",
                link,
                severity=Severity.CRITICAL,
            ),
            paging=True,
        )
        raise RollbackFailedError(
            f"the promotion failed ({why}) and the rollback did not restore {plan.target}: "
            + "; ".join(problems),
            system="promotion",
        )
    audit_event(plan, run_id, "promotion.rolled_back", {"error": why, "verified": True})
    _tell(
        notify,
        services,
        plan,
        runbook.outcome_notification(
            plan,
            "rolled back",
            f"{why}\n{plan.target} was restored to its snapshot (verified).",
            link,
            severity=Severity.HIGH,
        ),
    )
    raise PromotionRolledBackError(
        f"the promotion {plan.source} -> {plan.target} failed and was rolled back (verified): {why}",
        system="promotion",
    ) from exc


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _tell(task: Any, services: Any, plan: PromotionPlan, notification: Any, *, paging: bool = False) -> None:
    """Send to the target's channels; a failed notification is logged, never fatal (the audit log and the
    run's state are the record)."""
    channels = runbook.notify_channels(services, plan.target, include_paging=paging)
    if not channels:
        return
    try:
        task(channels, notification)
    except Exception as exc:  # noqa: BLE001 - a notification never decides a promotion
        get_run_logger().warning("promotion notification failed: %s", describe_failure(exc))


def _run_identity() -> tuple[str, str | None]:
    from prefect.runtime import flow_run

    url = flow_run.ui_url
    return str(flow_run.id), (str(url) if url else None)


def _summary(
    plan: PromotionPlan, outcome: PromotionOutcome, run_id: str, message: str, **extra: Any
) -> dict[str, Any]:
    result = {"outcome": outcome.value, "message": message, "run_id": run_id, **plan.summary()}
    for key, value in extra.items():
        result[key] = list(value) if isinstance(value, tuple) else value
    return result
