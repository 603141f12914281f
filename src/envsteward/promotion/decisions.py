"""The promotion's decisions after approval, as pure functions that return the decision and its reasons.

* :func:`is_stale` — has the plan changed since it was approved? (the reasons; empty: apply it)
* :func:`rollback_reasons` — must the apply be rolled back? (any failure: apply, verify, health)
* :func:`judge_rollback` — what a finished rollback means: restored (alert high) or not (page, critical).
* :func:`final_state` / :func:`failure_state` — the name the run's final state carries in the runs list
  (``Applied``, ``Rejected``, ``Timed out``, ``Blocked``, ``Rolled back``...), and whether it is a failure.

Messages name paths, sources and reasons, never values (plans hold none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envsteward.errors import EnvstewardError
from envsteward.ports import Severity
from envsteward.promotion.errors import PromotionBlockedError, PromotionRolledBackError, StalePlanError
from envsteward.promotion.journal import PendingRollbackError
from envsteward.promotion.lock import PromotionLockedError
from envsteward.promotion.model import PromotionOutcome, PromotionPlan
from envsteward.promotion.plan import PromotionRefusedError, describe_staleness
from envsteward.promotion.repair import RollbackPendingError


def is_stale(approved: PromotionPlan, fresh: PromotionPlan) -> list[str]:
    """Why the approved plan may no longer be applied, one line per difference; empty when the fresh plan
    is the same plan (same hash). Fail safe: a different hash is stale even when no difference is named."""
    if fresh.plan_hash == approved.plan_hash:
        return []
    return describe_staleness(approved, fresh) or ["the plan's content changed"]


def rollback_reasons(
    apply_error: str | None, verify_problems: Sequence[str], health_problems: Sequence[str]
) -> list[str]:
    """Why the target must be rolled back to its snapshot (empty: keep the change). Any failure counts:
    a write that failed, a change that did not land, an unhealthy target."""
    reasons = [apply_error] if apply_error else []
    return reasons + list(verify_problems) + list(health_problems)


@dataclass(frozen=True)
class RollbackVerdict:
    """What a finished rollback means for the promotion: audit action, alert and the error to end with."""

    restored: bool
    audit_action: str
    outcome: str
    """The word in the notification's title."""
    severity: Severity
    page: bool
    """Wake someone (PagerDuty): only when the target could not be restored."""
    message: str


def judge_rollback(plan: PromotionPlan, why: str, problems: Sequence[str]) -> RollbackVerdict:
    """The meaning of a rollback that left ``problems`` (empty: the target is exactly as it was)."""
    if problems:
        return RollbackVerdict(
            restored=False,
            audit_action="promotion.rollback_failed",
            outcome="ROLLBACK FAILED",
            severity=Severity.CRITICAL,
            page=True,
            message=f"the promotion failed ({why}) and the rollback did not restore {plan.target}: "
            + "; ".join(problems),
        )
    return RollbackVerdict(
        restored=True,
        audit_action="promotion.rolled_back",
        outcome="rolled back",
        severity=Severity.HIGH,
        page=False,
        message=f"the promotion {plan.source} -> {plan.target} failed and was rolled back (verified): {why}",
    )


@dataclass(frozen=True)
class FinalState:
    """How a promotion run ends in Prefect: the state's name (what the runs list shows) and its type."""

    name: str
    failed: bool


_OUTCOME_STATES: dict[PromotionOutcome, FinalState] = {
    PromotionOutcome.DRY_RUN: FinalState("Dry run", failed=False),
    PromotionOutcome.NOTHING_TO_PROMOTE: FinalState("Nothing to promote", failed=False),
    PromotionOutcome.APPLIED: FinalState("Applied", failed=False),
    PromotionOutcome.REJECTED: FinalState("Rejected", failed=False),
    PromotionOutcome.TIMED_OUT: FinalState("Timed out", failed=False),
    PromotionOutcome.BLOCKED: FinalState("Blocked", failed=True),
    PromotionOutcome.STALE: FinalState("Stale plan", failed=True),
    PromotionOutcome.ROLLED_BACK: FinalState("Rolled back", failed=True),
    PromotionOutcome.ROLLBACK_FAILED: FinalState("Rollback failed", failed=True),
}

# most specific first: RollbackPendingError is a RollbackFailedError, PromotionLockedError a ConflictError
_ERROR_STATES: tuple[tuple[type[EnvstewardError], FinalState], ...] = (
    (PromotionBlockedError, _OUTCOME_STATES[PromotionOutcome.BLOCKED]),
    (StalePlanError, _OUTCOME_STATES[PromotionOutcome.STALE]),
    (PromotionRolledBackError, _OUTCOME_STATES[PromotionOutcome.ROLLED_BACK]),
    (RollbackPendingError, _OUTCOME_STATES[PromotionOutcome.ROLLBACK_FAILED]),
    (PendingRollbackError, FinalState("Rollback pending", failed=True)),
    (PromotionLockedError, FinalState("Locked", failed=True)),
    (PromotionRefusedError, FinalState("Refused", failed=True)),
)


def final_state(outcome: PromotionOutcome) -> FinalState:
    """The final state of a run that ended with ``outcome``. A rejection or a timeout is not a failure of
    the run (the promotion did what the reviewers decided), but it is named so, never plain "Completed"."""
    return _OUTCOME_STATES[outcome]


def failure_state(error: BaseException) -> FinalState | None:
    """The named failed state for a promotion error the flow knows (None: an unexpected error, left to
    Prefect as a plain "Failed" with its traceback)."""
    for kind, state in _ERROR_STATES:
        if isinstance(error, kind):
            return state
    return None


def completed_state_names() -> frozenset[str]:
    """The names of the states a promotion run ends in when it is not a failure (and Prefect's own)."""
    return frozenset({"Completed", *(state.name for state in _OUTCOME_STATES.values() if not state.failed)})
