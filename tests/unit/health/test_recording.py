"""Keeping check states in the real file state store (read-modify-write through ``update``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from envsteward.adapters.state_fs import FileStateStore
from envsteward.health.recording import read_state, record_result, record_results
from envsteward.health.result import CheckResult, CheckStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def result(status: CheckStatus, minute: int) -> CheckResult:
    return CheckResult(
        environment="production",
        check="db",
        kind="postgres",
        status=status,
        detail=status.value,
        checked_at=T0 + timedelta(minutes=minute),
    )


def test_changes_are_confirmed_across_store_round_trips(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    assert record_result(store, result(CheckStatus.UP, 0), 2) is None
    assert record_result(store, result(CheckStatus.DOWN, 1), 2) is None
    change = record_result(store, result(CheckStatus.DOWN, 2), 2)
    assert change is not None
    assert (change.from_status, change.to_status) == (CheckStatus.UP, CheckStatus.DOWN)
    state = read_state(store, "production", "db")
    assert state is not None
    assert state.confirmed is CheckStatus.DOWN
    assert store.get("health/production/db") == state.to_json()


def test_recording_the_same_result_twice_is_idempotent(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    record_result(store, result(CheckStatus.UP, 0), 2)
    record_result(store, result(CheckStatus.DOWN, 1), 2)
    confirming = result(CheckStatus.DOWN, 2)
    first = record_result(store, confirming, 2)
    stored = store.get("health/production/db")
    again = record_result(store, confirming, 2)  # a retried task
    assert again == first
    assert store.get("health/production/db") == stored


def test_a_damaged_state_starts_over_without_inventing_an_alert(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    store.put("health/production/db", {"confirmed": "sideways"})
    assert record_result(store, result(CheckStatus.UP, 0), 2) is None
    state = read_state(store, "production", "db")
    assert state is not None
    assert state.confirmed is CheckStatus.UP


def test_many_results_recorded_at_once_confirm_the_same_changes_in_order(tmp_path: Path) -> None:
    """record_results updates the checks concurrently; each check's fold and the change order are as if
    they had been recorded one by one (checks with consecutive 1 confirm at once, the others do not)."""
    store = FileStateStore(tmp_path / "state")

    def check(n: int, status: CheckStatus, minute: int) -> CheckResult:
        return CheckResult(
            environment=f"env-{n % 5}",
            check=f"check-{n}",
            kind="http",
            status=status,
            detail=status.value,
            checked_at=T0 + timedelta(minutes=minute),
        )

    consecutive = {f"env-{n % 5}/check-{n}": 1 if n % 3 == 0 else 2 for n in range(60)}
    assert record_results(store, [check(n, CheckStatus.UP, 0) for n in range(60)], consecutive) == []
    down = [check(n, CheckStatus.DOWN if n % 2 else CheckStatus.UP, 1) for n in range(60)]
    changes = record_results(store, down, consecutive)
    expected = [n for n in range(60) if n % 2 and n % 3 == 0]
    assert [change.check for change in changes] == [f"check-{n}" for n in expected]
    assert all(change.to_status is CheckStatus.DOWN for change in changes)
    for n in range(60):
        state = read_state(store, f"env-{n % 5}", f"check-{n}")
        assert state is not None
        confirmed_down = n % 2 and n % 3 == 0
        assert state.confirmed is (CheckStatus.DOWN if confirmed_down else CheckStatus.UP)
