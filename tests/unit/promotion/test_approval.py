"""Approval decisions: distinct approvers, requester excluded, one rejection ends it, timeout. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from envsteward.catalog import ApprovalPolicy
from envsteward.promotion.approval import Answer, Status, decide, judge, seconds_left, start, time_out

PRODUCTION = ApprovalPolicy(approvers=["alice", "bob", "carol"], approvals_needed=2, timeout_hours=24)


def approve(who: str) -> Answer:
    return Answer(decision="approve", reviewer=who, comment="ok")


def test_two_distinct_approvers_are_needed() -> None:
    state = start(PRODUCTION)
    state = decide(approve("alice"), PRODUCTION, "dave", state)
    assert state.status is Status.PENDING
    assert state.remaining == 1
    state = decide(approve("alice"), PRODUCTION, "dave", state)
    assert state.status is Status.PENDING, "the same approver twice counts once"
    assert "approved already" in state.rulings[-1].reason
    state = decide(approve("bob"), PRODUCTION, "dave", state)
    assert state.status is Status.APPROVED
    assert state.approved_by == ("alice", "bob")


def test_the_requester_and_strangers_cannot_approve() -> None:
    state = start(PRODUCTION)
    assert not judge(approve("alice"), PRODUCTION, "alice", state).accepted
    assert "not an approver" in judge(approve("mallory"), PRODUCTION, "dave", state).reason
    assert not judge(approve("  "), PRODUCTION, "dave", state).accepted
    state = decide(approve("alice"), PRODUCTION, "alice", state)
    assert state.status is Status.PENDING
    assert state.approved_by == ()


def test_one_rejection_ends_it_and_a_finished_state_stays() -> None:
    state = decide(approve("alice"), PRODUCTION, "dave", start(PRODUCTION))
    state = decide(Answer(decision="reject", reviewer="carol", comment="no"), PRODUCTION, "dave", state)
    assert state.status is Status.REJECTED
    assert decide(approve("bob"), PRODUCTION, "dave", state) == state
    stranger = Answer(decision="reject", reviewer="mallory")
    assert not judge(stranger, PRODUCTION, "dave", start(PRODUCTION)).accepted
    withdrawn = decide(Answer(decision="reject", reviewer="dave"), PRODUCTION, "dave", start(PRODUCTION))
    assert withdrawn.status is Status.REJECTED


def test_timeout_rejects_a_pending_request() -> None:
    state = time_out(decide(approve("alice"), PRODUCTION, "dave", start(PRODUCTION)), 24)
    assert state.status is Status.TIMED_OUT
    assert "1 of 2 approvals" in state.reason
    asked = datetime(2026, 1, 1, tzinfo=UTC)
    assert seconds_left(asked, PRODUCTION, datetime(2026, 1, 2, 1, tzinfo=UTC)) < 0


def test_no_approval_needed_is_approved_at_once() -> None:
    assert start(ApprovalPolicy()).status is Status.APPROVED


def test_precheck_refuses_what_the_flow_would_refuse() -> None:
    from envsteward.catalog import ApprovalPolicy
    from envsteward.promotion.approval import Answer, precheck

    policy = ApprovalPolicy(approvers=["alice", "bob", "carol"], approvals_needed=2, timeout_hours=24)

    def ruling(decision: str, reviewer: str, requester: str | None = "dave", approved: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        return precheck(Answer(decision=decision, reviewer=reviewer), policy, requester, approved)  # type: ignore[arg-type]

    assert "cannot approve it" in ruling("approve", "dave").reason
    assert not ruling("approve", "dave").accepted
    assert not ruling("approve", "mallory").accepted
    assert "has approved already" in ruling("approve", "alice", approved=("alice",)).reason
    assert ruling("approve", "bob", approved=("alice",)).accepted
    assert ruling("reject", "dave").accepted, "the requester may withdraw"
    assert not ruling("reject", "mallory").accepted
    assert ruling("reject", "dave", requester=None).accepted, "unknown requester: the flow decides"
    assert not ruling("approve", "mallory", requester=None).accepted
