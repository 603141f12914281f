"""Approval decisions for a promotion. Pure: every function returns the decision and its reason.

Rules (DESIGN.md security invariants, issue 4):

* the requester never approves their own promotion;
* a reviewer must be on the target's approver list (``approval.approvers``);
* the target needs ``approvals_needed`` approvals from *distinct* approvers (production: 2 by default);
* one valid rejection ends the promotion; a rejection counts when it comes from an approver or from the
  requester (who may withdraw the request); anyone else's answer is refused;
* an answer that is refused (self-approval, not an approver, a second approval by the same person, no
  reviewer name) does not end anything: it is recorded in the audit log and the promotion keeps waiting
  for a valid answer until the deadline;
* no decision by the deadline (``timeout_hours`` after the request) rejects the promotion.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from envsteward.catalog import ApprovalPolicy


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Answer(_Frozen):
    """One reviewer's answer to the approval form."""

    decision: Literal["approve", "reject"]
    reviewer: str
    comment: str = ""


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"


class Ruling(_Frozen):
    """What one answer did: ``accepted`` (it counts) or refused, with the reason either way."""

    answer: Answer
    accepted: bool
    reason: str


class ApprovalState(_Frozen):
    """The approvals so far. Build the next state with :func:`decide`."""

    needed: int
    approved_by: tuple[str, ...] = ()
    rulings: tuple[Ruling, ...] = ()
    status: Status = Status.PENDING
    reason: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.needed - len(self.approved_by))


def start(policy: ApprovalPolicy) -> ApprovalState:
    """The initial state: already approved when the target needs no approval."""
    if policy.approvals_needed <= 0:
        return ApprovalState(needed=0, status=Status.APPROVED, reason="the target needs no approval")
    return ApprovalState(needed=policy.approvals_needed)


def judge(answer: Answer, policy: ApprovalPolicy, requester: str, state: ApprovalState) -> Ruling:
    """Whether ``answer`` counts, and why. Pure."""
    reviewer = answer.reviewer.strip()
    approvers = ", ".join(policy.approvers) or "none"
    if not reviewer:
        return Ruling(answer=answer, accepted=False, reason="the answer names no reviewer")
    if answer.decision == "reject":
        if reviewer in policy.approvers:
            return Ruling(answer=answer, accepted=True, reason=f"rejected by approver {reviewer}")
        if reviewer == requester:
            return Ruling(answer=answer, accepted=True, reason=f"withdrawn by the requester {reviewer}")
        return Ruling(
            answer=answer,
            accepted=False,
            reason=f"{reviewer} is not an approver of the target (approvers: {approvers}) "
            "nor the requester: the rejection does not count",
        )
    if reviewer == requester:
        return Ruling(
            answer=answer,
            accepted=False,
            reason=f"{reviewer} requested this promotion and cannot approve it",
        )
    if reviewer not in policy.approvers:
        return Ruling(
            answer=answer,
            accepted=False,
            reason=f"{reviewer} is not an approver of the target (approvers: {approvers})",
        )
    if reviewer in state.approved_by:
        return Ruling(
            answer=answer,
            accepted=False,
            reason=f"{reviewer} has approved already: {state.needed} distinct approvers are needed",
        )
    return Ruling(answer=answer, accepted=True, reason=f"approved by {reviewer}")


def decide(answer: Answer, policy: ApprovalPolicy, requester: str, state: ApprovalState) -> ApprovalState:
    """Fold one answer into the state. Pure. A finished state (approved, rejected, timed out) stays."""
    if state.status is not Status.PENDING:
        return state
    ruling = judge(answer, policy, requester, state)
    rulings = (*state.rulings, ruling)
    if not ruling.accepted:
        return state.model_copy(update={"rulings": rulings})
    reviewer = answer.reviewer.strip()
    if answer.decision == "reject":
        return state.model_copy(
            update={"rulings": rulings, "status": Status.REJECTED, "reason": ruling.reason}
        )
    approved_by = (*state.approved_by, reviewer)
    if len(approved_by) >= state.needed:
        return state.model_copy(
            update={
                "rulings": rulings,
                "approved_by": approved_by,
                "status": Status.APPROVED,
                "reason": f"approved by {', '.join(approved_by)}",
            }
        )
    return state.model_copy(update={"rulings": rulings, "approved_by": approved_by})


def time_out(state: ApprovalState, timeout_hours: float) -> ApprovalState:
    """No decision in time: a pending promotion is rejected."""
    if state.status is not Status.PENDING:
        return state
    return state.model_copy(
        update={
            "status": Status.TIMED_OUT,
            "reason": f"no decision within {timeout_hours:g} h "
            f"({len(state.approved_by)} of {state.needed} approvals): rejected",
        }
    )


def deadline(requested_at: datetime, policy: ApprovalPolicy) -> datetime:
    """When an unanswered request is rejected."""
    return requested_at + timedelta(hours=policy.timeout_hours)


def seconds_left(requested_at: datetime, policy: ApprovalPolicy, now: datetime) -> float:
    """Seconds until the deadline (0 or less: it has passed)."""
    return (deadline(requested_at, policy) - now).total_seconds()


class Meaning(StrEnum):
    """What one answer means for the promotion."""

    APPROVED_NEEDS_MORE = "approved-needs-more"
    """It counts; more distinct approvals are needed: wait again."""
    APPROVED_FINAL = "approved-final"
    """It counts and completes the approvals: apply."""
    REJECTED = "rejected"
    """A valid rejection (an approver, or the requester withdrawing): stop."""
    REFUSED = "refused"
    """It does not count (self-approval, not an approver...): record it, keep waiting."""


class AnswerMeaning(_Frozen):
    """One answer's meaning, its ruling (for the audit log) and the approvals after it."""

    meaning: Meaning
    ruling: Ruling
    state: ApprovalState

    @property
    def reason(self) -> str:
        return self.ruling.reason


class Gate(_Frozen):
    """The next wait: its number (1, 2, ...), the key Prefect stores the answer under, the time left."""

    number: int
    key: str
    seconds_left: float


class ApprovalSession:
    """One promotion's approval loop, as decisions: the next gate, what an answer means, the timeout.

    The flow asks :meth:`next_gate` (None: stop waiting, the session has timed out), waits for an answer
    at it, and tells the session with :meth:`answer` (or :meth:`no_answer` when the wait ran out). Pure:
    the caller passes the time. ``max_gates`` is a safety stop: after that many answers without a decision
    the request is rejected as timed out.
    """

    def __init__(
        self, policy: ApprovalPolicy, requester: str, requested_at: datetime, *, max_gates: int = 50
    ) -> None:
        self.policy, self.requester, self.requested_at = policy, requester, requested_at
        self.max_gates = max_gates
        self.state = start(policy)
        self.gates = 0

    @property
    def waiting(self) -> bool:
        return self.state.status is Status.PENDING

    def next_gate(self, now: datetime) -> Gate | None:
        """The next gate to wait at, or None when the session is decided or its deadline (or the safety
        stop) has passed; then :attr:`state` says timed out."""
        if not self.waiting:
            return None
        left = seconds_left(self.requested_at, self.policy, now)
        if left <= 0 or self.gates >= self.max_gates:
            self.no_answer()
            return None
        self.gates += 1
        return Gate(number=self.gates, key=f"approval-{self.gates}", seconds_left=left)

    def answer(self, answer: Answer) -> AnswerMeaning:
        """Fold one answer in and say what it means."""
        ruling = judge(answer, self.policy, self.requester, self.state)
        self.state = decide(answer, self.policy, self.requester, self.state)
        if not ruling.accepted:
            meaning = Meaning.REFUSED
        elif answer.decision == "reject":
            meaning = Meaning.REJECTED
        elif self.state.status is Status.APPROVED:
            meaning = Meaning.APPROVED_FINAL
        else:
            meaning = Meaning.APPROVED_NEEDS_MORE
        return AnswerMeaning(meaning=meaning, ruling=ruling, state=self.state)

    def no_answer(self) -> ApprovalState:
        """The wait ran out: a pending session is timed out (rejected)."""
        self.state = time_out(self.state, self.policy.timeout_hours)
        return self.state


def precheck(
    answer: Answer, policy: ApprovalPolicy, requester: str | None, approved_by: tuple[str, ...]
) -> Ruling:
    """What the flow will make of ``answer``, judged before it is sent (``envsteward approve``) from what
    the caller could read: the target's approver list, the requester (None: unknown) and the approvals the
    run has counted so far. Pure. With the requester unknown, a rejection by someone not on the list is
    let through (it may be the requester withdrawing); the flow judges it again either way."""
    if requester is None and answer.decision == "reject" and answer.reviewer.strip() not in policy.approvers:
        return Ruling(answer=answer, accepted=True, reason="the requester is unknown here: the flow decides")
    state = ApprovalState(needed=max(1, policy.approvals_needed), approved_by=approved_by)
    return judge(answer, policy, requester or "", state)
