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
   What each answer means (approved, needs more / approved, final / rejected / refused) is decided by the
   core's :class:`~envsteward.promotion.approval.ApprovalSession`.
5. Stale-plan guard: plan again; :func:`~envsteward.promotion.decisions.is_stale` says why it changed,
   and a stale plan aborts without writing.
6. ``open-rollback-journal`` (before the first write: every touched key's version or reference, durably
   in the state store), ``apply-changes`` (idempotent; a deadline stops writes at the task's timeout),
   ``verify-changes``, ``check-target-health``; verified: ``discard-rollback-journal``. Any failure
   (:func:`~envsteward.promotion.decisions.rollback_reasons`): ``rollback-target`` restores and verifies
   every key from the journal within the rollback budget, and alerts as
   :func:`~envsteward.promotion.decisions.judge_rollback` says. A rollback that outlasts its budget fails
   the run naming every key left changed; the journal stays and the target's lease stays HELD (the
   ``finally`` does not release a lease while the run's journal exists), so no promotion lands on a
   half-applied target until the sweep (deployment ``repair-rollbacks``, the drift scan, ``envsteward
   promote --repair TARGET``) finishes the rollback, audits it and releases the lease.

The run ends in a named state (``Applied``, ``Rejected``, ``Timed out``, ``Blocked``, ``Rolled back``...:
:func:`~envsteward.promotion.decisions.final_state`). A suspended run nobody answers is failed by the Prefect
server with no code of ours running; the ``expire-promotions`` flow records that timeout instead.

Deployment ``promote`` in ``prefect.yaml`` (no schedule). Answer from the UI's Resume form or with
``envsteward approve RUN_ID --reviewer NAME`` / ``envsteward reject RUN_ID --reviewer NAME``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from envsteward.tasks.approval_gate import wait_for_answer
from envsteward.tasks.common import flow_run_link
from envsteward.tasks.events import awaiting_approval, emit_promotion_applied, emit_promotion_rolled_back
from envsteward.tasks.promotion import (
    apply_changes,
    artifact_link,
    audit_event,
    check_target_health,
    discard_rollback_journal,
    lock_target,
    notify,
    notify_request,
    open_rollback_journal,
    plan_for_approval,
    publish_plan,
    record_answer,
    record_request,
    release_target,
    replan,
    rollback_target,
    rollback_timeout_seconds,
    verify_changes,
)
from envsteward.tasks.status import refresh_platform_status
from prefect import flow, get_run_logger
from prefect.exceptions import Pause
from prefect.states import Completed, Failed, State

from envsteward.catalog import ApprovalPolicy
from envsteward.errors import EnvstewardError, PermanentError
from envsteward.ports import Notification
from envsteward.promotion import (
    ApplyError,
    ApplyReport,
    ApprovalState,
    PromotionOutcome,
    PromotionPlan,
    Status,
    render_approval_description,
    render_plan_markdown,
    runbook,
)
from envsteward.promotion.approval import ApprovalSession
from envsteward.promotion.decisions import (
    failure_state,
    final_state,
    is_stale,
    judge_rollback,
    rollback_reasons,
)
from envsteward.promotion.errors import (
    PromotionBlockedError,
    PromotionRolledBackError,
    StalePlanError,
)
from envsteward.promotion.journal import RollbackJournal
from envsteward.promotion.render import applied_text
from envsteward.promotion.repair import RollbackPendingError
from envsteward.scan.live import describe_failure
from envsteward.services import get_services

POLL_INTERVAL_SECONDS = 10
"""How often a locally paused run asks the API whether it was resumed (tests lower it)."""
MAX_GATES = 50
"""A safety stop: after this many answers without a decision the request is rejected."""


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
) -> State[dict[str, Any]]:
    """Promote ``source``'s live configuration to ``target`` (the next environment on the path).

    The run ends in a *named* state (:func:`~envsteward.promotion.decisions.final_state`): ``Applied``,
    ``Dry run``, ``Nothing to promote``, ``Rejected``, ``Timed out`` (completed) or ``Blocked``, ``Stale
    plan``, ``Rolled back``, ``Rollback failed``, ``Rollback pending``, ``Locked``, ``Refused`` (failed), so
    the runs list tells the story. Called as a function it returns the summary dict below (a completed
    state's data) or raises the error (a failed state's data), as before.

    Args:
        source: Environment to promote from, e.g. development.
        target: The next environment on the promotion path, e.g. staging.
        select: Only keys matching these path globs (e.g. services.*.image); empty: every promotable key.
        dry_run: Publish the plan and its validation as artifacts and stop; nothing is written anywhere.
        requested_by: Who asks for the promotion (default: the configured actor); never an approver of it.
        reason: Why, shown to the approvers and recorded in the audit log.

    Returns a summary (outcome, counts, hash; no values). Raises PromotionRefusedError (not the next
    environment), PromotionBlockedError, PromotionLockedError (another promotion to the target is running),
    StalePlanError, PromotionRolledBackError, PendingRollbackError (the target's last rollback is not
    finished) or RollbackPendingError (this run's rollback outlasted its budget: the lease stays held).
    """
    try:
        summary = _promote(source, target, select, dry_run, requested_by, reason)
    except Pause:
        raise
    except EnvstewardError as exc:
        named = failure_state(exc)
        if named is None:
            raise
        return Failed(name=named.name, message=" ".join(str(exc).split()), data=exc)
    final = final_state(PromotionOutcome(summary["outcome"]))
    make = Failed if final.failed else Completed
    return make(name=final.name, message=" ".join(str(summary["message"]).split()), data=summary)


def _promote(  # noqa: PLR0917
    source: str,
    target: str,
    select: list[str] | None,
    dry_run: bool,
    requested_by: str,
    reason: str,
) -> dict[str, Any]:
    """The runbook (see the module docstring); the summary, or the error that stopped it."""
    from prefect.runtime import flow_run

    services = get_services()
    requester = requested_by.strip() or services.settings.current_actor()
    run_id, link = str(flow_run.id), flow_run_link()

    plan = plan_for_approval(source, target, select)
    plan_key = publish_plan(plan, dry_run)
    if dry_run:
        return _summary(
            plan,
            PromotionOutcome.DRY_RUN,
            run_id,
            "dry run: nothing was written",
            plan_markdown=render_plan_markdown(plan, dry_run=True),
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
        _tell(notify_request, plan, runbook.request_notification(plan, requester, reason, link))
        awaiting_approval(source, target, run_id, requester)
        refresh_platform_status(return_state=True)
        state = _collect_approvals(plan, run_id, requester, reason, requested_at, artifact_link(plan_key))
        if state.status is not Status.APPROVED:
            return _not_approved(plan, run_id, state, link)

        changed = is_stale(plan, replan(source, target, select))
        if changed:
            audit_event(plan, run_id, "promotion.aborted", {"why": "stale plan", "changed": changed})
            _tell(
                notify,
                plan,
                runbook.outcome_notification(plan, "aborted (stale plan)", "\n".join(changed), link),
            )
            raise StalePlanError(
                f"the plan changed since it was approved; nothing was written: {'; '.join(changed)}",
                system="promotion",
            )
        return _apply(plan, run_id, state, link)
    except Pause:
        suspended = True
        raise
    finally:
        if not suspended:
            release_target(plan.target, run_id)
            refresh_platform_status(return_state=True)


# ---------------------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------------------


def _collect_approvals(  # noqa: PLR0917
    plan: PromotionPlan,
    run_id: str,
    requester: str,
    reason: str,
    requested_at: datetime,
    plan_link: str | None,
) -> ApprovalState:
    policy = ApprovalPolicy(
        approvers=list(plan.approvers),
        approvals_needed=plan.approvals_needed,
        timeout_hours=plan.timeout_hours,
    )
    session = ApprovalSession(policy, requester, requested_at, max_gates=MAX_GATES)
    while (gate := session.next_gate(datetime.now(UTC))) is not None:
        description = render_approval_description(plan, session.state, requester, reason, plan_link)
        answer = wait_for_answer(
            description, gate.key, gate.seconds_left, poll_interval=POLL_INTERVAL_SECONDS
        )
        if answer is None:
            session.no_answer()
            break
        meaning = session.answer(answer)
        # a refusal is logged by the task, which runs once per gate (a resumed run replays the gates)
        record_answer(plan, run_id, gate.number, meaning.ruling, meaning.state)
    return session.state


def _not_approved(plan: PromotionPlan, run_id: str, state: ApprovalState, link: str | None) -> dict[str, Any]:
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
    _tell(notify, plan, runbook.outcome_notification(plan, outcome.value, state.reason, link))
    return _summary(plan, outcome, run_id, state.reason, approved_by=state.approved_by)


# ---------------------------------------------------------------------------------------------------------
# Snapshot, apply, verify, roll back (each step its own task)
# ---------------------------------------------------------------------------------------------------------


def _apply(plan: PromotionPlan, run_id: str, state: ApprovalState, link: str | None) -> dict[str, Any]:
    journal = open_rollback_journal(plan, run_id)
    applied = apply_changes(plan, return_state=True)
    report: ApplyReport | None = None
    if applied.is_completed():
        report = applied.result()
        recorded = audit_event(
            plan, run_id, "promotion.applied", runbook.apply_summary(report), return_state=True
        )
        verify_problems = _problems(recorded, "audit") or _problems(
            verify_changes(plan, return_state=True), "verify"
        )
        health_problems = (
            []
            if verify_problems
            else _problems(check_target_health(plan.target, return_state=True), "health")
        )
        reasons = rollback_reasons(None, verify_problems, health_problems)
    else:
        error = applied.result(raise_on_failure=False)
        reasons = rollback_reasons(_failure(error), [], [])
        if isinstance(error, ApplyError):
            report = error.report
    if reasons:
        return _roll_back(plan, run_id, journal, "; ".join(reasons), report, link)
    assert report is not None
    discarded = discard_rollback_journal(journal, return_state=True)
    if not discarded.is_completed():
        why = _failure(discarded.result(raise_on_failure=False))
        raise PermanentError(
            f"the promotion {plan.source} -> {plan.target} was applied and verified, but its rollback "
            f"journal could not be removed ({why}): the lease stays held and the sweep will roll "
            f"{plan.target} back to the journal (`envsteward promote --status {plan.target}`)",
            system="promotion",
            operation="journal",
        )
    audit_event(plan, run_id, "promotion.verified", {"written": report.written, "no_ops": report.no_ops})
    text = applied_text(report)
    emit_promotion_applied(plan.source, plan.target, run_id, changes=len(plan.changes))
    _tell(notify, plan, runbook.outcome_notification(plan, "applied", text, link))
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
    plan: PromotionPlan,
    run_id: str,
    journal: RollbackJournal,
    why: str,
    report: ApplyReport | None,
    link: str | None,
) -> dict[str, Any]:
    details: dict[str, Any] = {"error": why}
    if report is not None:
        details.update(runbook.apply_summary(report))
    audit_event(plan, run_id, "promotion.failed", details)
    rolled = rollback_target.with_options(timeout_seconds=rollback_timeout_seconds())(
        journal, return_state=True
    )
    keys_left: tuple[str, ...] = ()
    if rolled.is_completed():
        problems: list[str] = []
    else:
        error = rolled.result(raise_on_failure=False)
        if isinstance(error, RollbackPendingError):
            keys_left, problems = error.keys_left, [str(error)]
        else:
            # the task died or timed out: the journal says what may be changed, and the sweep finishes it
            keys_left = journal.changes
            problems = [
                f"rollback: {_failure(error)}; {len(keys_left)} key(s) may still hold the promoted value: "
                f"{', '.join(keys_left)}. The journal and the promotion lease stay; the sweep finishes it "
                f"when the stores answer (`envsteward promote --repair {plan.target}`)"
            ]
    verdict = judge_rollback(plan, why, problems)
    emit_promotion_rolled_back(plan.source, plan.target, run_id, keys_left=len(keys_left))
    if verdict.restored:
        audit_event(plan, run_id, verdict.audit_action, {"error": why, "verified": True})
        text = f"{why}\n{plan.target} was restored from the rollback journal (verified)."
    else:
        audit_event(
            plan,
            run_id,
            verdict.audit_action,
            {"error": why, "problems": problems, "keys_left": list(keys_left), "pending": True},
        )
        text = f"{why}\nRollback problems: {'; '.join(problems)}"
    _tell(
        notify,
        plan,
        runbook.outcome_notification(plan, verdict.outcome, text, link, severity=verdict.severity),
        paging=verdict.page,
    )
    if verdict.restored:
        raise PromotionRolledBackError(verdict.message, system="promotion")
    raise RollbackPendingError(verdict.message, target=plan.target, run_id=run_id, keys_left=keys_left)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _problems(state: State[Any], step: str) -> list[str]:
    """A finished step's problems: its list when it completed (empty: none), else why it failed."""
    if state.is_completed():
        value = state.result()
        return list(value) if isinstance(value, list) else []
    return [f"{step}: {_failure(state.result(raise_on_failure=False))}"]


def _failure(error: object) -> str:
    return (
        describe_failure(error) if isinstance(error, BaseException) else f"unexpected {type(error).__name__}"
    )


def _tell(task: Any, plan: PromotionPlan, notification: Notification, *, paging: bool = False) -> None:
    """Send to each of the target's channels, one task per channel; a failed notification is logged,
    never fatal (the audit log and the run's state are the record)."""
    channels = runbook.notify_channels(get_services(), plan.target, include_paging=paging)
    for channel in channels:
        sent = task(channel, notification, return_state=True)
        if not sent.is_completed():
            get_run_logger().warning(
                "promotion notification to %s failed: %s",
                channel,
                _failure(sent.result(raise_on_failure=False)),
            )


def _summary(
    plan: PromotionPlan, outcome: PromotionOutcome, run_id: str, message: str, **extra: Any
) -> dict[str, Any]:
    result = {"outcome": outcome.value, "message": message, "run_id": run_id, **plan.summary()}
    for key, value in extra.items():
        result[key] = list(value) if isinstance(value, tuple) else value
    return result
