"""Prefect tasks for the promote flow: thin wrappers over :mod:`envsteward.promotion`.

Caching: a suspended flow re-runs from the start when it is resumed, so every task that runs *before or
at* an approval gate (plan, plan artifact, request record and notification, each answer's audit record) is
cached per flow run (its key is the flow run id and the step) with a persisted result. Those results hold
no secret value: a plan carries only non-secret values and secret *references*.

Tasks that touch live values (snapshot, apply, verify, rollback, health) never persist their result and
are never cached (a cache key would hash their inputs).

Retries: reads, the lease, the journal and audit/notification steps take the one transient-error policy
(``tasks/common.py``). Apply and rollback are not retried as tasks: each write is retried in the core on
transient errors, and a whole-task retry after a timeout would race the first attempt's thread. The apply
gets a timeout and passes the same deadline into the core, which makes no write after it; the rollback
retries each key for the rollback budget (``settings.promotion.rollback_budget_seconds``) and then leaves
the rest to the sweep (:func:`sweep_rollbacks`).

The rollback journal (:mod:`envsteward.promotion.journal`) is written before the first write and removed
only when the apply or the rollback is verified; while it exists the target's lease is never released by
the run (:func:`release_target`), and no new promotion takes the target (:func:`lock_target`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
from envsteward.tasks.limits import environment_systems, system_slots_sync
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from envsteward.ports import Notification
from envsteward.promotion import (
    ApplyReport,
    PromotionPlan,
    apply_plan,
    runbook,
    verify_plan,
)
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.approval import ApprovalState, Ruling
from envsteward.promotion.expiry import (
    TIMED_OUT_STATE,
    ExpiryReport,
    RunStatus,
    classify_run,
    decide_expiry,
    expire_lease,
)
from envsteward.promotion.journal import (
    RollbackJournal,
    discard,
    ensure_no_pending,
    load_journal,
    open_journal,
)
from envsteward.promotion.render import render_plan_markdown
from envsteward.promotion.repair import (
    RepairReport,
    RetryBudget,
    RollbackResult,
    repair_pending,
    roll_back_with_budget,
)
from envsteward.scan.live import Deadline
from envsteward.services import get_services

LOCK_MARGIN = timedelta(hours=1)
"""How long a promotion's lease outlives its approval deadline (time to apply, verify and roll back)."""
APPLY_TIMEOUT_SECONDS = 15 * 60.0
"""Writing a plan's changes (each write retried on transient errors in the core)."""
VERIFY_TIMEOUT_SECONDS = 5 * 60.0
HEALTH_TIMEOUT_SECONDS = 5 * 60.0
ROLLBACK_MARGIN_SECONDS = 120.0
"""The rollback task's timeout is the rollback budget plus this (the last attempt of every key)."""
JOURNAL_MARGIN = timedelta(minutes=5)


def rollback_budget() -> RetryBudget:
    """The rollback budget from settings (``ENVSTEWARD_PROMOTION__ROLLBACK_BUDGET_SECONDS``)."""
    return RetryBudget(seconds=get_services().settings.promotion.rollback_budget_seconds)


def rollback_timeout_seconds() -> float:
    return rollback_budget().seconds + ROLLBACK_MARGIN_SECONDS


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


def artifact_link(key: str) -> str | None:
    """The Prefect UI page of the latest artifact with ``key`` (None when the UI's address is unknown)."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{str(ui).rstrip('/')}/artifacts/key/{key}" if ui else None


@task(
    name="lock-target",
    **RETRY_TRANSIENT,
    persist_result=False,
    cache_policy=NO_CACHE,
)
def lock_target(plan: PromotionPlan, run_id: str, requested_by: str) -> dict[str, Any]:
    """Take the target's promotion lease (re-entrant for this run). Raises PendingRollbackError when the
    target has another run's rollback journal (a rollback still pending, or a run that died mid-apply), and
    PromotionLockedError naming the run that holds the lease. Calls the state store, the Prefect API (is the
    holder still running?), the audit log."""
    services = get_services()
    ensure_no_pending(services.state_store(), plan.target, run_id)
    now = datetime.now(UTC)
    approval_deadline = now + timedelta(hours=plan.timeout_hours)
    deadline = approval_deadline + LOCK_MARGIN
    lease = promotion_lock.acquire(
        services.state_store(),
        target=plan.target,
        source=plan.source,
        run_id=run_id,
        requested_by=requested_by,
        now=now,
        expires_at=deadline,
        is_active=_run_is_active,
        extra={
            "approval_deadline": approval_deadline.isoformat(),
            "timeout_hours": plan.timeout_hours,
            "plan_hash": plan.plan_hash,
        },
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
    """Whether the lease holder's (or a journal's) flow run may still be promoting. Fails closed: only a run
    the API says is finished is inactive. A run this API does not know counts as active too: the caller may
    be talking to another Prefect API than the run's (an ephemeral one from the command line), and taking
    over a live lease or rolling back under a live apply is worse than waiting for the lease's expiry or
    the journal's apply deadline. An API that cannot be asked means "active". Calls the Prefect API."""
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
        return True
    except Exception:  # noqa: BLE001 - unknown = held: a blip of the API must not hand over a live lease
        return True
    return run.state is None or not run.state.is_final()


run_is_active = _run_is_active
"""Public name for the other flows' journals (rotations) that ask the same question."""


@task(name="release-target", persist_result=False, cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def release_target(target: str, run_id: str) -> bool:
    """Release the target's lease held by this run, unless this run's rollback journal is still there (a
    rollback ran out of budget, or the journal could not be removed): then the lease stays held until the
    sweep finishes the rollback and releases it. True when released. Calls the state store."""
    store = get_services().state_store()
    journal = load_journal(store, target)
    if journal is not None and journal.run_id == run_id:
        get_run_logger().warning(
            "the lease on %s stays held: this run's rollback journal is %s (the sweep releases it)",
            target,
            journal.status.value,
        )
        return False
    return promotion_lock.release(store, target, run_id)


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
        get_run_logger().warning(
            "%s's %s was refused: %s",
            ruling.answer.reviewer.strip() or "(no name)",
            "approval" if ruling.answer.decision == "approve" else "rejection",
            ruling.reason,
        )
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


@task(name="open-rollback-journal", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def open_rollback_journal(plan: PromotionPlan, run_id: str) -> RollbackJournal:
    """Write the target's rollback journal before the first write (idempotent for this run): every touched
    key's version or reference (Vault KV and SSM versions, Secrets Manager version ids, a 0600 copy of each
    file), never a secret value. Its apply deadline (apply, verify and health timeouts, the rollback budget
    and a margin) is when the sweep may assume this run died. Reads the target's stores; writes the state
    store. Raises PendingRollbackError when another run's journal is there."""
    services = get_services()
    now = datetime.now(UTC)
    window = timedelta(
        seconds=APPLY_TIMEOUT_SECONDS
        + VERIFY_TIMEOUT_SECONDS
        + HEALTH_TIMEOUT_SECONDS
        + rollback_timeout_seconds()
    )
    return open_journal(
        services,
        plan,
        run_id=run_id,
        now=now,
        apply_deadline=now + window + JOURNAL_MARGIN,
        sources=runbook.target_sources(services, plan),
    )


@task(name="discard-rollback-journal", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def discard_rollback_journal(journal: RollbackJournal) -> bool:
    """Remove this run's journal (the apply is verified). Calls the state store and the local file system."""
    return discard(get_services(), journal)


@task(
    name="apply-changes", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=APPLY_TIMEOUT_SECONDS
)
def apply_changes(plan: PromotionPlan) -> ApplyReport:
    """Write the plan's changes (each write retried on transient errors; keys already holding the value
    are no-ops; no write after the task's timeout). Raises ApplyError with the report so far."""
    deadline = Deadline(APPLY_TIMEOUT_SECONDS)
    services = get_services()
    with system_slots_sync(environment_systems(plan.target)):
        return apply_plan(plan, runbook.target_sources(services, plan), deadline=deadline)


@task(
    name="verify-changes", persist_result=False, cache_policy=NO_CACHE, timeout_seconds=VERIFY_TIMEOUT_SECONDS
)
def verify_changes(plan: PromotionPlan) -> list[str]:
    """Re-read the target and check every change landed; the problems (empty: verified)."""
    services = get_services()
    with system_slots_sync(environment_systems(plan.target)):
        return verify_plan(plan, runbook.target_sources(services, plan))


@task(
    name="check-target-health",
    persist_result=False,
    cache_policy=NO_CACHE,
    timeout_seconds=HEALTH_TIMEOUT_SECONDS,
)
def check_target_health(target: str) -> list[str]:
    """Run the target's health checks; the problems (empty: healthy). Calls every checked system."""
    return runbook.health_problems(get_services(), target)


@task(name="rollback-target", persist_result=False, cache_policy=NO_CACHE)
def rollback_target(journal: RollbackJournal) -> RollbackResult:
    """Roll the target back to its journal: every key restored and verified on its own, retried with
    backoff and jitter for the rollback budget; verified, the journal is removed. Calls the target's stores,
    the local file system and the state store. Raises RollbackPendingError naming every key the journal
    says may still be changed when the budget runs out (the journal stays ``rollback_pending``)."""
    return roll_back_with_budget(get_services(), journal, budget=rollback_budget())


@task(name="sweep-rollbacks", persist_result=False, cache_policy=NO_CACHE)
def sweep_rollbacks(target: str | None = None) -> list[RepairReport]:
    """Finish every pending rollback (of ``target`` only, when given): a run that ran out of budget, died
    or overran its apply deadline; a run the Prefect API calls running, or cannot answer for, is left
    alone. Verifies, audits ``promotion.rolled_back`` with the original run id and releases its lease.
    Calls the state store, the Prefect API, the target's stores and the audit log."""
    services = get_services()
    return repair_pending(
        services,
        datetime.now(UTC),
        _run_is_active,
        target,
        budget=rollback_budget(),
        actor=services.settings.current_actor(),
    )


# ---------------------------------------------------------------------------------------------------------
# Approval timeouts nobody is waiting for (the expire-promotions flow)
# ---------------------------------------------------------------------------------------------------------


def run_status(run_id: str) -> tuple[RunStatus, bool]:
    """What the Prefect API says about a flow run (unknown when it cannot say), and whether it is a local
    run (no deployment: it paused inside a process). Calls the Prefect API."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    try:
        flow_run_id = UUID(run_id)
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except Exception:  # noqa: BLE001 - unknown: the expiry leaves the lease alone (fail closed)
        return RunStatus.UNKNOWN, True
    state = run.state
    if state is None:
        return RunStatus.UNKNOWN, run.deployment_id is None
    return classify_run(state.type.value, state.name, state.message), run.deployment_id is None


def resume_after_local_timeout() -> None:
    """A run paused in this process whose pause ran out is still *Paused* on the server, and Prefect turns
    any later state of it into "Failed: never resumed". Put it back to Running (forced) so the flow can
    record the timeout and end in its own ``Timed out`` state. Calls the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(), force=True)


@task(name="expire-timed-out-promotions", persist_result=False, cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def expire_timed_out(run_id: str | None = None) -> list[tuple[ExpiryReport, dict[str, Any]]]:
    """Every promotion lease (only ``run_id``'s, when given) whose approval timed out with no process
    waiting (:func:`~envsteward.promotion.expiry.decide_expiry`): released, audited
    ``promotion.timed_out``; each report with its lease. Calls the state store, the Prefect API and the
    audit log."""
    services = get_services()
    store = services.state_store()
    now = datetime.now(UTC)
    actor = services.settings.current_actor()
    out: list[tuple[ExpiryReport, dict[str, Any]]] = []
    for target in services.catalog().environments:
        lease = promotion_lock.holder(store, target)
        if lease is None or (run_id is not None and lease.get("run_id") != run_id):
            continue
        holder_run = str(lease.get("run_id"))
        status, local = run_status(holder_run)
        journal_left = load_journal(store, target) is not None
        decision = decide_expiry(lease, status, now, journal_left=journal_left, local=local)
        if decision.expire:
            report = expire_lease(services, lease, decision.reason, actor=actor)
        else:
            report = ExpiryReport(target, holder_run, str(lease.get("source")), False, decision.reason)
        out.append((report, lease))
    return out


@task(name="mark-timed-out", persist_result=False, cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def mark_timed_out(run_id: str, message: str) -> str:
    """Give the promotion's flow run the final state ``Timed out`` (a completed state: the promotion did
    what silence means, a rejection), so the runs list tells it; the state's name after. Calls the Prefect
    API (a forced state change: the run is suspended or already failed by Prefect)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.states import Completed

    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(run_id)).state
        if current is not None and current.name == TIMED_OUT_STATE:
            return current.name
        client.set_flow_run_state(UUID(run_id), Completed(name=TIMED_OUT_STATE, message=message), force=True)
    return TIMED_OUT_STATE
