"""The rotate-secret flow: one secret reference rotated with the four-step protocol, safely.

Runbook:
1. ``plan-rotation``: which rotator (Vault KV, Secrets Manager, SSM, a PostgreSQL role), what each step
   does, whether it waits for approval; ``publish-rotation-plan`` as an artifact. Dry run: stop here.
2. Production (approvals needed > 0): wait for the Resume form (approve/reject, reviewer, comment) until
   enough *distinct* approvers from the catalog's list approve, one rejects, or the deadline passes; the
   requester cannot approve. Every answer is audited. The decisions are
   :class:`~envsteward.promotion.approval.ApprovalSession`'s, the same gate as promotions. From a
   deployment the run suspends (no worker held); run locally it pauses in place.
3. ``claim-rotation`` records the rotation in the shared journal (:mod:`envsteward.rotation.journal`, no
   value): one rotation of a secret at a time (``Locked`` otherwise), and what the ``repair-rollbacks``
   sweep needs if this process dies. A dead run's journal of the same secret is repaired first (the
   consumer is set to the store's current value; audited ``rotation.repaired``).
4. ``create-pending`` -> ``set-pending`` -> ``test-pending`` -> ``finish-rotation``, each its own task and
   each audited (``rotation.step``). The new value lives in this process only; the journal notes before
   ``set-pending`` that the consumer may receive it.
5. Any failure: ``restore-previous`` puts the previous value back wherever something changed and checks
   it; the run fails naming the failed step and whether the previous value is current and working.
   The journal is removed when the consumer and the store agree (rotated, or restored); after a failed
   restore it stays, and the sweep retries the repair every minute.

The run ends in a named state: ``Rotated``, ``Dry run``, ``Rejected``, ``Timed out`` (completed) or
``Rotation failed`` (the previous value is current), ``Restore failed``, ``Repair failed``, ``Locked``,
``Refused`` (failed). Called as a function it returns the summary or raises the error.

Deployment ``rotate-secret`` (no schedule; ``rotate-due-secrets`` starts it for production secrets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from envsteward.tasks.approval_gate import wait_for_answer
from envsteward.tasks.secret_rotation import (
    audit_rotation,
    claim_rotation,
    close_rotation,
    create_pending,
    finish_rotation,
    journal_set_step,
    plan_secret_rotation,
    publish_rotation_plan,
    restore_previous,
    set_pending,
    test_pending,
)
from prefect import State, flow, get_run_logger
from prefect.states import Completed, Failed

from envsteward.errors import EnvstewardError
from envsteward.promotion.approval import ApprovalSession, ApprovalState, Meaning, Status
from envsteward.promotion.runbook import ruling_details
from envsteward.rotation import sessions
from envsteward.rotation.model import (
    FINAL_STATE_NAMES,
    STEPS,
    Outcome,
    RotationFailedError,
    RotationPlan,
    Step,
    failure_state_name,
)
from envsteward.rotation.render import approval_description, plan_markdown
from envsteward.scan.live import describe_failure
from envsteward.services import get_services

POLL_INTERVAL_SECONDS = 10
"""How often a locally paused run asks the API whether it was resumed (tests lower it)."""
MAX_GATES = 50

_ANSWER_ACTIONS = {"approve": "rotation.approved", "reject": "rotation.rejected"}
_STEP_TASKS = {
    Step.CREATE: create_pending,
    Step.SET: set_pending,
    Step.TEST: test_pending,
    Step.FINISH: finish_rotation,
}


@flow(
    name="rotate-secret",
    description="Rotate one secret: create a pending value, set it where used, test it, make it current.",
)
def rotate_secret(
    environment: str, reference: str, dry_run: bool = False, requested_by: str = "", reason: str = ""
) -> State[dict[str, Any]]:
    """Rotate ``reference`` (e.g. ``vault://secret/prod/db#password``) in ``environment``.

    Args:
        environment: The environment whose secret it is (its tier decides the approval).
        reference: The secret reference, with or without ``secret+``.
        dry_run: Publish the plan and stop; nothing is changed anywhere.
        requested_by: Who asks (default: the configured actor); never an approver of it.
        reason: Why, shown to the approvers and audited.

    Returns a summary (outcome, steps done; no values) in a completed state named for the outcome. Raises
    (as a failed state's data) RotationRefusedError, RotationInProgressError (another run rotates it),
    RestoreError (a dead run's rotation could not be repaired), RotationFailedError (a step failed: the
    previous value is current again unless it says otherwise).
    """
    try:
        summary = _rotate(environment, reference, dry_run, requested_by, reason)
    except EnvstewardError as exc:
        name = failure_state_name(exc)
        if name is None:
            raise
        return Failed(name=name, message=" ".join(str(exc).split()), data=exc)
    name = FINAL_STATE_NAMES[Outcome(summary["outcome"])]
    return Completed(name=name, message=" ".join(str(summary["message"]).split()), data=summary)


def _rotate(
    environment: str, reference: str, dry_run: bool, requested_by: str, reason: str
) -> dict[str, Any]:
    """The runbook (see the module docstring); the summary, or the error that stopped it."""
    from prefect.runtime import flow_run

    services = get_services()
    requester = requested_by.strip() or services.settings.current_actor()
    run_id = str(flow_run.id)

    plan = plan_secret_rotation(environment, reference)
    publish_rotation_plan(plan, dry_run)
    if dry_run:
        return _summary(
            plan,
            Outcome.DRY_RUN,
            run_id,
            "dry run: nothing was changed",
            plan_markdown=plan_markdown(plan, dry_run=True),
        )

    audit_rotation(
        plan,
        run_id,
        "rotation.requested",
        {"reason": reason, "steps": [s.value for s, _ in plan.steps]},
        requester,
    )
    if plan.approval is not None:
        state = _collect_approvals(plan, run_id, requester, reason)
        if state.status is not Status.APPROVED:
            outcome = Outcome.TIMED_OUT if state.status is Status.TIMED_OUT else Outcome.REJECTED
            audit_rotation(
                plan, run_id, f"rotation.{outcome.value.replace('-', '_')}", {"reason": state.reason}
            )
            return _summary(plan, outcome, run_id, state.reason, approved_by=list(state.approved_by))
        approved_by = list(state.approved_by)
    else:
        approved_by = []

    repaired = claim_rotation(plan, run_id)
    if repaired is not None:
        audit_rotation(plan, run_id, "rotation.repaired", {"detail": repaired})
    handle = sessions.new_handle()
    done: list[str] = []
    try:
        for step in STEPS:
            if step is Step.SET:
                journal_set_step(plan, run_id)
            ran = _STEP_TASKS[step](environment, plan.reference, handle, return_state=True)
            if not ran.is_completed():
                why = describe_failure(ran.result(raise_on_failure=False))
                _fail(plan, run_id, handle, step, why)
            report = ran.result()
            done.append(step.value)
            audit_rotation(
                plan,
                run_id,
                "rotation.step",
                {"step": step.value, "outcome": "done", "detail": report.detail},
            )
    finally:
        sessions.drop(handle)
    close_rotation(plan, run_id)
    audit_rotation(plan, run_id, "rotation.completed", {"approved_by": approved_by})
    return _summary(
        plan, Outcome.ROTATED, run_id, f"{plan.reference} rotated", steps=done, approved_by=approved_by
    )


def _fail(plan: RotationPlan, run_id: str, handle: str, step: Step, why: str) -> None:
    """Audit the failed step, restore the previous value, audit that, and raise RotationFailedError."""
    audit_rotation(plan, run_id, "rotation.step", {"step": step.value, "outcome": "failed", "error": why})
    restored = restore_previous(plan.environment, plan.reference, handle, return_state=True)
    if restored.is_completed():
        detail = restored.result()
        close_rotation(plan, run_id)
        audit_rotation(plan, run_id, "rotation.restored", {"failed_step": step.value, "detail": detail})
        raise RotationFailedError(
            f"rotation of {plan.reference} in {plan.environment} failed at step {step.value}: {why}. "
            f"The previous value is current and working ({detail})",
            step=step,
            restored=True,
        )
    problem = describe_failure(restored.result(raise_on_failure=False))
    audit_rotation(plan, run_id, "rotation.restore_failed", {"failed_step": step.value, "error": problem})
    raise RotationFailedError(
        f"rotation of {plan.reference} in {plan.environment} failed at step {step.value}: {why}; "
        f"and restoring the previous value failed: {problem}",
        step=step,
        restored=False,
    )


def _collect_approvals(plan: RotationPlan, run_id: str, requester: str, reason: str) -> ApprovalState:
    assert plan.approval is not None
    session = ApprovalSession(plan.approval, requester, datetime.now(UTC), max_gates=MAX_GATES)
    while (gate := session.next_gate(datetime.now(UTC))) is not None:
        answer = wait_for_answer(
            approval_description(plan, session.state, requester, reason),
            gate.key,
            gate.seconds_left,
            poll_interval=POLL_INTERVAL_SECONDS,
        )
        if answer is None:
            session.no_answer()
            break
        meaning = session.answer(answer)
        audit_rotation(
            plan,
            run_id,
            _ANSWER_ACTIONS[answer.decision]
            if meaning.meaning is not Meaning.REFUSED
            else "rotation.answer_refused",
            ruling_details(meaning.ruling, meaning.state, gate.number),
            answer.reviewer.strip() or None,
        )
        if meaning.meaning is Meaning.REFUSED:
            get_run_logger().warning("answer refused: %s", meaning.reason)
    return session.state


def _summary(plan: RotationPlan, outcome: Outcome, run_id: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome.value, "message": message, "run_id": run_id, **plan.summary(), **extra}
