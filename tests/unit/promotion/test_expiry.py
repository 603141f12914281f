"""Approval timeouts with no run waiting: which leases expire, and that expiring one releases it, audits
``promotion.timed_out`` once and builds the channels' message (a real file state store and audit log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.expiry import (
    GRACE,
    RunStatus,
    classify_run,
    decide_expiry,
    expire_lease,
    expiry_notification,
)
from envsteward.services import Services
from envsteward.settings import Settings
from tests.unit.promotion._catalog import write_catalog

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RUN = "6f1c1d6e-8f53-4c38-9f0e-3f3b0e6c2d11"


def _lease(deadline: datetime | None = NOW - timedelta(minutes=5)) -> dict[str, Any]:
    lease: dict[str, Any] = {
        "target": "staging",
        "source": "development",
        "run_id": RUN,
        "requested_by": "dave",
        "acquired_at": (NOW - timedelta(hours=1)).isoformat(),
        "expires_at": (NOW + timedelta(hours=1)).isoformat(),
        "timeout_hours": 0.5,
        "plan_hash": "ab" * 32,
    }
    if deadline is not None:
        lease["approval_deadline"] = deadline.isoformat()
    return lease


def test_prefect_states_are_classified() -> None:
    assert classify_run("PAUSED", "Suspended", None) is RunStatus.WAITING
    assert (
        classify_run("FAILED", "Failed", "The flow was paused and never resumed.") is RunStatus.NEVER_RESUMED
    )
    assert (
        classify_run("FAILED", "Failed", "The flow was suspended and never resumed.")
        is RunStatus.NEVER_RESUMED
    )
    assert classify_run("FAILED", "Failed", "boom") is RunStatus.FINISHED
    assert classify_run("COMPLETED", "Timed out", "no decision") is RunStatus.TIMED_OUT
    assert classify_run("RUNNING", "Running", None) is RunStatus.RUNNING
    assert classify_run("SCHEDULED", "AwaitingRetry", None) is RunStatus.RUNNING
    assert classify_run(None, None, None) is RunStatus.UNKNOWN


@pytest.mark.parametrize(
    ("lease", "run", "journal", "expire"),
    [
        (_lease(), RunStatus.NEVER_RESUMED, False, True),
        (_lease(NOW + timedelta(hours=1)), RunStatus.NEVER_RESUMED, False, True),  # Prefect says so
        (_lease(NOW - GRACE - timedelta(seconds=1)), RunStatus.WAITING, False, True),
        (_lease(NOW - GRACE + timedelta(seconds=1)), RunStatus.WAITING, False, False),  # a live pause's turn
        (_lease(), RunStatus.TIMED_OUT, False, True),
        (_lease(), RunStatus.RUNNING, False, False),  # approved and applying
        (_lease(), RunStatus.FINISHED, False, False),
        (_lease(), RunStatus.UNKNOWN, False, False),  # fail closed
        (_lease(), RunStatus.NEVER_RESUMED, True, False),  # the rollback sweep's
        (_lease(None), RunStatus.NEVER_RESUMED, False, False),  # an older lease: no deadline to go by
    ],
)
def test_which_leases_expire(lease: dict[str, Any], run: RunStatus, journal: bool, expire: bool) -> None:
    decision = decide_expiry(lease, run, NOW, journal_left=journal)
    assert decision.expire is expire, decision.reason
    assert decision.reason


def test_a_local_run_records_its_own_timeout_first() -> None:
    just_failed = _lease(NOW - timedelta(seconds=10))
    assert not decide_expiry(just_failed, RunStatus.NEVER_RESUMED, NOW, journal_left=False, local=True).expire
    assert decide_expiry(just_failed, RunStatus.NEVER_RESUMED, NOW, journal_left=False).expire
    long_dead = _lease(NOW - GRACE - timedelta(seconds=1))
    assert decide_expiry(long_dead, RunStatus.NEVER_RESUMED, NOW, journal_left=False, local=True).expire


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return Services(Settings(catalog=write_catalog(tmp_path / "catalog"), home=tmp_path / "home"))


def _hold(services: Services, lease: dict[str, Any]) -> None:
    services.state_store().put(promotion_lock.lock_key("staging"), lease)


def test_expiring_releases_the_lease_and_audits_once(services: Services) -> None:
    lease = _lease()
    _hold(services, lease)
    report = expire_lease(services, lease, "Prefect failed the run", actor="sweeper")
    assert report.expired
    assert promotion_lock.holder(services.state_store(), "staging") is None
    (record,) = services.audit_log().records(action="promotion.timed_out")
    assert (record.environment, record.actor, record.target) == (
        "staging",
        "sweeper",
        "promotion/development->staging",
    )
    assert record.details["run_id"] == RUN
    assert record.details["reason"] == "no decision within 0.5 h: rejected"
    again = expire_lease(services, lease, "a second sweep", actor="sweeper")
    assert not again.expired, "the release is the claim: a second expiry must not audit again"
    assert len(list(services.audit_log().records(action="promotion.timed_out"))) == 1
    note = expiry_notification(report, lease, "http://ui/runs/x")
    assert "timed-out" in note.title
    assert "no decision within 0.5 h" in note.text
    assert "lease on staging is released" in note.text


def test_a_lease_taken_by_another_run_is_not_touched(services: Services) -> None:
    other = {**_lease(), "run_id": "another-run"}
    _hold(services, other)
    assert not expire_lease(services, _lease(), "stale sweep").expired
    assert promotion_lock.holder(services.state_store(), "staging") == other
    assert not list(services.audit_log().records(action="promotion.timed_out"))
