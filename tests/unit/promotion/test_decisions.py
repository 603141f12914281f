"""The promotion's decisions as core objects, without Prefect: the approval session (what the next answer
means), the stale-plan guard, the rollback policy, and markdown that escapes names and reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from envsteward.catalog import ApprovalPolicy, load_catalog
from envsteward.ports import Severity
from envsteward.promotion import PromotionPlan, plan_promotion, render_approval_description
from envsteward.promotion.approval import Answer, ApprovalSession, Meaning, Status
from envsteward.promotion.decisions import is_stale, judge_rollback, rollback_reasons
from tests.unit.promotion._catalog import live_tree, write_catalog

POLICY = ApprovalPolicy(approvers=["alice", "bob", "carol"], approvals_needed=2, timeout_hours=24)
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def answer(decision: str, who: str) -> Answer:
    return Answer(decision=decision, reviewer=who)  # type: ignore[arg-type]


def test_each_answer_says_what_it_means() -> None:
    session = ApprovalSession(POLICY, "dave", T0)
    first = session.next_gate(T0)
    assert first is not None
    assert (first.number, first.key, first.seconds_left) == (1, "approval-1", 24 * 3600)
    assert session.answer(answer("approve", "dave")).meaning is Meaning.REFUSED
    assert session.answer(answer("approve", "mallory")).meaning is Meaning.REFUSED
    assert session.answer(answer("approve", "alice")).meaning is Meaning.APPROVED_NEEDS_MORE
    assert session.answer(answer("approve", "alice")).meaning is Meaning.REFUSED
    final = session.answer(answer("approve", "bob"))
    assert final.meaning is Meaning.APPROVED_FINAL
    assert final.state.approved_by == ("alice", "bob")
    assert session.next_gate(T0) is None
    assert session.state.status is Status.APPROVED


def test_a_rejection_ends_it_and_the_deadline_or_the_safety_stop_times_it_out() -> None:
    session = ApprovalSession(POLICY, "dave", T0)
    assert session.answer(answer("reject", "carol")).meaning is Meaning.REJECTED
    assert session.state.status is Status.REJECTED

    late = ApprovalSession(POLICY, "dave", T0)
    assert late.next_gate(T0 + timedelta(hours=24)) is None
    assert late.state.status is Status.TIMED_OUT

    chatty = ApprovalSession(POLICY, "dave", T0, max_gates=2)
    for _ in range(2):
        assert chatty.next_gate(T0) is not None
        chatty.answer(answer("approve", "dave"))
    assert chatty.next_gate(T0) is None
    assert chatty.state.status is Status.TIMED_OUT

    silent = ApprovalSession(POLICY, "dave", T0)
    assert silent.next_gate(T0) is not None
    assert silent.no_answer().status is Status.TIMED_OUT


def test_no_approval_needed_is_approved_at_once() -> None:
    session = ApprovalSession(ApprovalPolicy(approvers=[], approvals_needed=0), "dave", T0)
    assert session.next_gate(T0) is None
    assert session.state.status is Status.APPROVED


def _plan(tmp_path: Path, image: str, *, target_image: str = "a:1") -> PromotionPlan:
    catalog = load_catalog(write_catalog(tmp_path / "catalog"))
    source = live_tree({}, {"api": {"image": image}}, {})
    target = live_tree({}, {"api": {"image": target_image}}, {})
    return plan_promotion(catalog, "development", "staging", source, target, secret_exists=lambda ref: True)


def test_a_plan_is_stale_when_its_hash_changed_and_says_why(tmp_path: Path) -> None:
    approved = _plan(tmp_path, "a:2")
    assert is_stale(approved, _plan(tmp_path, "a:2")) == []
    assert is_stale(approved, _plan(tmp_path, "a:3")) == [
        "services.api.image: the source's value changed since approval"
    ]
    assert is_stale(approved, _plan(tmp_path, "a:2", target_image="a:0")) == [
        "services.api.image: the target's current value changed since approval"
    ]
    unnamed = approved.model_copy(update={"plan_hash": "0" * 64})
    assert is_stale(unnamed, approved) == ["the plan's content changed"]  # fail safe


def test_any_failure_rolls_back_and_only_a_failed_rollback_pages(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "a:2")
    assert rollback_reasons(None, [], []) == []
    assert rollback_reasons("write failed", [], []) == ["write failed"]
    assert rollback_reasons(None, ["x: missing after the write"], ["db down"]) == [
        "x: missing after the write",
        "db down",
    ]
    restored = judge_rollback(plan, "db down", [])
    assert (restored.restored, restored.page, restored.severity) == (True, False, Severity.HIGH)
    assert restored.audit_action == "promotion.rolled_back"
    failed = judge_rollback(plan, "db down", ["restoring 'app' failed"])
    assert (failed.restored, failed.page, failed.severity) == (False, True, Severity.CRITICAL)
    assert failed.audit_action == "promotion.rollback_failed"
    assert "restoring 'app' failed" in failed.message


def test_the_approval_form_escapes_names_and_reasons(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "a:2")
    session = ApprovalSession(POLICY, "dave", T0)
    form = render_approval_description(
        plan, session.state, "[click](https://evil.example)", "**urgent** <img src=x> | col\n# Title"
    )
    assert "[click](https://evil.example)" not in form
    assert "\\[click\\]\\(https://evil.example\\)" in form
    assert "**urgent**" not in form
    assert "<img" not in form
    assert "\n# Title" not in form


def test_every_outcome_and_promotion_error_has_a_named_final_state() -> None:
    from envsteward.errors import PermanentError
    from envsteward.promotion.decisions import failure_state, final_state
    from envsteward.promotion.errors import PromotionBlockedError, PromotionRolledBackError
    from envsteward.promotion.lock import PromotionLockedError
    from envsteward.promotion.model import PromotionOutcome
    from envsteward.promotion.repair import RollbackPendingError

    names = {outcome: final_state(outcome) for outcome in PromotionOutcome}
    assert all(state.name and state.name != "Completed" for state in names.values())
    assert (names[PromotionOutcome.REJECTED].name, names[PromotionOutcome.REJECTED].failed) == (
        "Rejected",
        False,
    )
    assert names[PromotionOutcome.TIMED_OUT].name == "Timed out"
    assert names[PromotionOutcome.APPLIED].name == "Applied"
    blocked = failure_state(PromotionBlockedError("x"))
    assert blocked is not None
    assert (blocked.name, blocked.failed) == ("Blocked", True)
    rolled = failure_state(PromotionRolledBackError("x"))
    assert rolled is not None
    assert rolled.name == "Rolled back"
    pending = failure_state(RollbackPendingError("x", target="t", run_id="r", keys_left=()))
    assert pending is not None
    assert pending.name == "Rollback failed"
    locked = failure_state(PromotionLockedError("x"))
    assert locked is not None
    assert locked.name == "Locked"
    assert failure_state(PermanentError("something else")) is None, "an unexpected error stays plain Failed"
