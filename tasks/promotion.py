"""Prefect tasks for the promote flow: thin wrappers over :mod:`envsteward.promotion`.

Caching: a suspended flow re-runs from the start when it is resumed, so every task that runs *before or
at* an approval gate (plan, plan artifact, request record and notification, each answer's audit record) is
cached per flow run (its key is the flow run id and the step) with a persisted result. Those results hold
no secret value: a plan carries only non-secret values and secret *references*.

Tasks that touch live values (snapshot, apply, verify, rollback, health) never persist their result and
are never cached (a cache key would hash their inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from envsteward.tasks.common import retry_if_transient
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from envsteward.ports import Notification
from envsteward.promotion import (
    ApplyReport,
    PromotionPlan,
    TargetSnapshot,
    apply_plan,
    rollback,
    runbook,
    take_snapshot,
    verify_plan,
    verify_rollback,
)
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.approval import ApprovalState, Ruling
from envsteward.promotion.render import render_plan_markdown
from envsteward.services import get_services

LOCK_MARGIN = timedelta(hours=1)
"""How long a promotion's lease outlives its approval deadline (time to apply, verify and roll back)."""


def _per_run(step: str) -> Callable[[TaskRunContext, dict[str, Any]], str]:
    """A cache key unique to this flow run and step (and approval gate): the step runs once per run, and a
    resumed run reads its persisted result instead of running it again."""

    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        gate = parameters.get("gate")
        suffix = f"-gate{gate}" if gate is not None else ""
        return f"envsteward-promote-{context.task_run.flow_run_id}-{step}{suffix}"

    return key


# ---------------------------------------------------------------------------------------------------------
# Before the gate (cached per run)
# ---------------------------------------------------------------------------------------------------------


def _plan(source: str, target: str, select: Sequence[str] | None) -> PromotionPlan:
    return runbook.make_plan(get_services(), source, target, select)


plan_for_approval = task(
    name="plan-promotion",
    task_run_name="plan-{source}-to-{target}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=True,
    cache_key_fn=_per_run("plan"),
)(_plan)
"""Read source and target, plan the promotion (reads every source of both environments; the result holds
no secret value, so it is persisted for a resumed run)."""

replan = task(
    name="replan-promotion",
    task_run_name="replan-{source}-to-{target}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)(_plan)
"""The stale-plan guard's fresh plan, right before applying (never cached)."""


@task(name="publish-plan", persist_result=True, cache_key_fn=_per_run("publish"))
def publish_plan(plan: PromotionPlan, dry_run: bool) -> str:
    """Publish the plan (diff, secret checks, tier rules, skipped keys) as a markdown artifact; its key."""
    key = f"promotion-plan-{plan.source}-to-{plan.target}".lower().replace("_", "-").replace(".", "-")
    title = f"{'Dry run: ' if dry_run else ''}promotion {plan.source} → {plan.target}"
    create_markdown_artifact(
        key=key,
        markdown=render_plan_markdown(plan, title=title),
        description=f"envsteward promotion plan {plan.source} → {plan.target} ({plan.plan_hash[:16]})",
    )
    return key


@task(
    name="lock-target",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def lock_target(plan: PromotionPlan, run_id: str, requested_by: str) -> dict[str, Any]:
    """Take the target's promotion lease (re-entrant for this run). Raises PromotionLockedError naming the run
    that holds it. Calls the state store, the Prefect API (is the holder still running?), the audit log."""
    services = get_services()
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=plan.timeout_hours) + LOCK_MARGIN
    lease = promotion_lock.acquire(
        services.state_store(),
        target=plan.target,
        source=plan.source,
        run_id=run_id,
        requested_by=requested_by,
        now=now,
        expires_at=deadline,
        is_active=_run_is_active,
    )
    if lease.replaced is not None:
        runbook.audit(
            services,
            "promotion.lock_taken_over",
            plan,
            run_id=run_id,
            details={"previous": lease.replaced},
        )
    return {"run_id": lease.run_id, "expires_at": lease.expires_at.isoformat()}


def _run_is_active(run_id: str) -> bool:
    """False when the holder's flow run is finished or unknown (its lease is stale). Calls the Prefect API."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
    except Exception:  # noqa: BLE001 - unknown run or id: nobody is promoting with it
        return False
    return bool(run.state is not None and not run.state.is_final())


@task(name="release-target", persist_result=False, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def release_target(target: str, run_id: str) -> bool:
    """Release the target's lease held by this run. Calls the state store."""
    return promotion_lock.release(get_services().state_store(), target, run_id)


@task(
    name="record-request",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=True,
    cache_key_fn=_per_run("request"),
)
def record_request(plan: PromotionPlan, run_id: str, requested_by: str, reason: str) -> datetime:
    """Audit ``promotion.requested``; return the request time (the approval deadline counts from it, and a
    resumed run reads the same time back). Calls the audit log."""
    runbook.audit(
        get_services(),
        "promotion.requested",
        plan,
        run_id=run_id,
        actor=requested_by,
        details={
            "reason": reason,
            "select": list(plan.select),
            "approvals_needed": plan.approvals_needed,
            "secret_references": [check.reference for check in plan.secret_checks if check.reference],
        },
    )
    return datetime.now(UTC)


@task(
    name="notify",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    persist_result=True,
    cache_key_fn=_per_run("notify-request"),
)
def notify_request(channels: list[str], notification: Notification) -> list[str]:
    """Send the approval request to the channels (once per run). Raises the notifiers' errors."""
    return _send(channels, notification)


@task(
    name="notify",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def notify(channels: list[str], notification: Notification) -> list[str]:
    """Send a notification to the channels. Raises the notifiers' errors."""
    return _send(channels, notification)


def _send(channels: list[str], notification: Notification) -> list[str]:
    for notifier in get_services().notifiers(channels):
        notifier.send(notification)
    return channels


@task(
    name="record-answer",
    task_run_name="record-answer-gate-{gate}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=True,
    cache_key_fn=_per_run("answer"),
)
def record_answer(plan: PromotionPlan, run_id: str, gate: int, ruling: Ruling, state: ApprovalState) -> int:
    """Audit one answer: ``promotion.approved``, ``promotion.rejected`` or ``promotion.approval_refused``
    (self-approval, not an approver...), with reviewer and comment. Once per gate. Calls the audit log."""
    if not ruling.accepted:
        action = "promotion.approval_refused"
    elif ruling.answer.decision == "reject":
        action = "promotion.rejected"
    else:
        action = "promotion.approved"
    return runbook.audit(
        get_services(),
        action,
        plan,
        run_id=run_id,
        actor=ruling.answer.reviewer.strip() or None,
        details=runbook.ruling_details(ruling, state, gate),
    )


# ---------------------------------------------------------------------------------------------------------
# After the gate (never cached; live values stay in memory)
# ---------------------------------------------------------------------------------------------------------


@task(
    name="audit-promotion",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def audit_event(
    plan: PromotionPlan, run_id: str, action: str, details: dict[str, Any], actor: str | None = None
) -> int:
    """Append one ``promotion.*`` record. Calls the audit log."""
    return runbook.audit(get_services(), action, plan, run_id=run_id, actor=actor, details=details)


@task(
    name="snapshot-target",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def snapshot_target(plan: PromotionPlan) -> TargetSnapshot:
    """Snapshot the target's touched keys (Vault KV: current versions). Reads the target's sources; the
    snapshot holds live values in memory only."""
    services = get_services()
    return take_snapshot(services, plan, runbook.target_sources(services, plan))


@task(name="apply-changes", persist_result=False, cache_policy=NO_CACHE)
def apply_changes(plan: PromotionPlan) -> ApplyReport:
    """Write the plan's changes (each write retried on transient errors; keys already holding the value
    are no-ops). Raises ApplyError with the report so far."""
    services = get_services()
    return apply_plan(plan, runbook.target_sources(services, plan))


@task(name="verify-changes", persist_result=False, cache_policy=NO_CACHE)
def verify_changes(plan: PromotionPlan) -> list[str]:
    """Re-read the target and check every change landed; the problems (empty: verified)."""
    services = get_services()
    return verify_plan(plan, runbook.target_sources(services, plan))


@task(name="check-target-health", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=300)
def check_target_health(target: str) -> list[str]:
    """Run the target's health checks; the problems (empty: healthy). Calls every checked system."""
    return runbook.health_problems(get_services(), target)


@task(name="rollback-target", persist_result=False, cache_policy=NO_CACHE)
def rollback_target(plan: PromotionPlan, snapshot: TargetSnapshot) -> list[str]:
    """Restore the snapshot and verify it; the problems (empty: the target is exactly as it was)."""
    services = get_services()
    sources = runbook.target_sources(services, plan)
    problems = rollback(snapshot, sources)
    problems += verify_rollback(snapshot, sources)
    return problems
