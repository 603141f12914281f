"""Prefect tasks for the promote flow: thin wrappers over :mod:`envsteward.promotion`.

Caching: a suspended flow re-runs from the start when it is resumed, so every task that runs *before or
at* an approval gate (plan, plan artifact, request record and notification, each answer's audit record) is
cached per flow run (its key is the flow run id and the step) with a persisted result. Those results hold
no secret value: a plan carries only non-secret values and secret *references*.

Tasks that touch live values (snapshot, apply, verify, rollback, health) never persist their result and
are never cached (a cache key would hash their inputs).

Retries: reads, the lease and audit/notification steps take the one transient-error policy
(``tasks/common.py``). Apply and rollback are not retried as tasks: each write is retried in the core on
transient errors, and a whole-task retry after a timeout would race the first attempt's thread; both get a
timeout and pass the same deadline into the core, which makes no write after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
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
from envsteward.scan.live import Deadline
from envsteward.services import get_services

LOCK_MARGIN = timedelta(hours=1)
"""How long a promotion's lease outlives its approval deadline (time to apply, verify and roll back)."""
APPLY_TIMEOUT_SECONDS = 15 * 60.0
"""Writing a plan's changes (each write retried on transient errors in the core)."""
ROLLBACK_TIMEOUT_SECONDS = 20 * 60.0
"""Restoring and re-reading every snapshotted source."""
VERIFY_TIMEOUT_SECONDS = 5 * 60.0


def _per_run(step: str) -> Callable[[TaskRunContext, dict[str, Any]], str]:
    """A cache key unique to this flow run and step (and approval gate): the step runs once per run, and a
    resumed run reads its persisted result instead of running it again."""

    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        gate, channel = parameters.get("gate"), parameters.get("channel")
        suffix = f"-gate{gate}" if gate is not None else ""
        suffix += f"-{channel}" if channel is not None else ""
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
    **RETRY_TRANSIENT,
    persist_result=True,
    cache_key_fn=_per_run("plan"),
)(_plan)
"""Read source and target, plan the promotion (reads every source of both environments; the result holds
no secret value, so it is persisted for a resumed run)."""

replan = task(
    name="replan-promotion",
    task_run_name="replan-{source}-to-{target}",
    **RETRY_TRANSIENT,
    persist_result=False,
    cache_policy=NO_CACHE,
)(_plan)
"""The stale-plan guard's fresh plan, right before applying (never cached)."""


@task(name="publish-plan", persist_result=True, cache_key_fn=_per_run("publish"))
def publish_plan(plan: PromotionPlan, dry_run: bool) -> str:
    """Publish the plan (diff, secret checks, tier rules, skipped keys) as a markdown artifact; its key."""
    key = artifact_key("promotion-plan", plan.source, "to", plan.target)
    create_markdown_artifact(
        key=key,
        markdown=render_plan_markdown(plan, dry_run=dry_run),
        description=f"envsteward promotion plan {plan.source} → {plan.target} ({plan.plan_hash[:16]})",
    )
    return key


@task(
    name="lock-target",
    **RETRY_TRANSIENT,
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
    """Whether the lease holder's flow run may still be promoting. Fails closed: only a run the API says
    is finished, or does not know at all, is inactive; an API that cannot be asked means "active" (the
    lease stays held). Calls the Prefect API."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        return False  # not a flow run id: no run can be holding the lease with it
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return False
    except Exception:  # noqa: BLE001 - unknown = held: a blip of the API must not hand over a live lease
        return True
    return run.state is None or not run.state.is_final()


@task(name="release-target", persist_result=False, cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def release_target(target: str, run_id: str) -> bool:
    """Release the target's lease held by this run. Calls the state store."""
    return promotion_lock.release(get_services().state_store(), target, run_id)


@task(
    name="record-request",
    **RETRY_TRANSIENT,
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
    task_run_name="notify-{channel}",
    **RETRY_TRANSIENT,
    persist_result=True,
    cache_key_fn=_per_run("notify-request"),
)
def notify_request(channel: str, notification: Notification) -> str:
    """Send the approval request to one channel (once per run and channel). Raises the notifier's errors."""
    return _send(channel, notification)


@task(
    name="notify",
    task_run_name="notify-{channel}",
    **RETRY_TRANSIENT,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def notify(channel: str, notification: Notification) -> str:
    """Send a notification to one channel (one task per channel: a retry never resends to another one).
    Raises the notifier's errors."""
    return _send(channel, notification)


def _send(channel: str, notification: Notification) -> str:
    (notifier,) = get_services().notifiers([channel])
    notifier.send(notification)
    return channel


@task(
    name="record-answer",
    task_run_name="record-answer-gate-{gate}",
    **RETRY_TRANSIENT,
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
    **RETRY_TRANSIENT,
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
    **RETRY_TRANSIENT,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def snapshot_target(plan: PromotionPlan) -> TargetSnapshot:
    """Snapshot the target's touched keys (Vault KV: current versions). Reads the target's sources; the
    snapshot holds live values in memory only."""
    services = get_services()
    return take_snapshot(services, plan, runbook.target_sources(services, plan))


@task(
    name="apply-changes", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=APPLY_TIMEOUT_SECONDS
)
def apply_changes(plan: PromotionPlan) -> ApplyReport:
    """Write the plan's changes (each write retried on transient errors; keys already holding the value
    are no-ops; no write after the task's timeout). Raises ApplyError with the report so far."""
    deadline = Deadline(APPLY_TIMEOUT_SECONDS)
    services = get_services()
    return apply_plan(plan, runbook.target_sources(services, plan), deadline=deadline)


@task(
    name="verify-changes", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=VERIFY_TIMEOUT_SECONDS
)
def verify_changes(plan: PromotionPlan) -> list[str]:
    """Re-read the target and check every change landed; the problems (empty: verified)."""
    services = get_services()
    return verify_plan(plan, runbook.target_sources(services, plan))


@task(name="check-target-health", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=300)
def check_target_health(target: str) -> list[str]:
    """Run the target's health checks; the problems (empty: healthy). Calls every checked system."""
    return runbook.health_problems(get_services(), target)


@task(
    name="rollback-target",
    persist_result=False,
    cache_policy=NO_CACHE,
    timeout_seconds=ROLLBACK_TIMEOUT_SECONDS,
)
def rollback_target(plan: PromotionPlan, snapshot: TargetSnapshot) -> list[str]:
    """Restore the snapshot (no restore after the task's timeout); the problems (empty: all restored)."""
    deadline = Deadline(ROLLBACK_TIMEOUT_SECONDS)
    services = get_services()
    return rollback(snapshot, runbook.target_sources(services, plan), deadline=deadline)


@task(
    name="verify-rollback",
    persist_result=False,
    cache_policy=NO_CACHE,
    timeout_seconds=VERIFY_TIMEOUT_SECONDS,
    **RETRY_TRANSIENT,
)
def verify_rollback_task(plan: PromotionPlan, snapshot: TargetSnapshot) -> list[str]:
    """Re-read every snapshotted source and compare it with the snapshot; the paths that differ (empty:
    the target is exactly as it was). Read-only."""
    services = get_services()
    return verify_rollback(snapshot, runbook.target_sources(services, plan))
