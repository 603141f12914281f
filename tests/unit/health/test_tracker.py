"""The tracker: confirmed status changes after N consecutive agreeing results, no flapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from envsteward.health.result import CheckResult, CheckStatus
from envsteward.health.tracker import CheckState, StatusChange, advance, state_key

UP, DEGRADED, DOWN = CheckStatus.UP, CheckStatus.DEGRADED, CheckStatus.DOWN
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def result(status: CheckStatus, minute: int) -> CheckResult:
    return CheckResult(
        environment="staging",
        check="api",
        kind="http",
        status=status,
        latency_ms=12.0,
        detail=f"{status.value} at {minute}",
        checked_at=T0 + timedelta(minutes=minute),
    )


def run(
    statuses: list[CheckStatus], consecutive: int, state: CheckState | None = None
) -> tuple[CheckState | None, list[StatusChange]]:
    changes = []
    for minute, status in enumerate(statuses):
        state, change = advance(state, result(status, minute), consecutive)
        if change is not None:
            changes.append(change)
    return state, changes


def test_flapping_is_suppressed() -> None:
    _, changes = run([UP, DOWN, UP, DOWN, UP, DOWN], consecutive=2)
    assert changes == []


def test_confirmed_outage_alerts_once_and_recovery_alerts_once() -> None:
    state, changes = run([UP, DOWN, DOWN, DOWN, DOWN, UP, UP, UP], consecutive=2)
    assert [(c.from_status, c.to_status, c.count) for c in changes] == [(UP, DOWN, 2), (DOWN, UP, 2)]
    outage, recovery = changes
    assert outage.result.checked_at == T0 + timedelta(minutes=2)  # the second down confirmed it
    assert outage.since == T0  # up since the first result
    assert recovery.is_recovery
    assert not outage.is_recovery
    assert recovery.since == T0 + timedelta(minutes=2)
    assert state is not None
    assert state.confirmed is UP
    assert state.count == 3


def test_up_down_down_with_consecutive_three_does_not_alert_yet() -> None:
    state, changes = run([UP, DOWN, DOWN], consecutive=3)
    assert changes == []
    assert state is not None
    assert state.confirmed is UP
    assert state.candidate is DOWN
    assert state.count == 2
    _, change = advance(state, result(DOWN, 3), 3)
    assert change is not None
    assert (change.from_status, change.to_status, change.count) == (UP, DOWN, 3)


def test_up_down_down_alerts_once() -> None:
    _, changes = run([UP, DOWN, DOWN], consecutive=2)
    assert [(c.from_status, c.to_status) for c in changes] == [(UP, DOWN)]


def test_first_up_is_a_silent_baseline() -> None:
    state, changes = run([UP], consecutive=3)
    assert changes == []
    assert state is not None
    assert state.confirmed is UP


def test_a_service_down_from_the_start_alerts_once_confirmed() -> None:
    state, changes = run([DOWN], consecutive=2)
    assert changes == []
    assert state is not None
    assert state.confirmed is None
    state, changes = run([DOWN, DOWN, DOWN], consecutive=2)
    assert [(c.from_status, c.to_status) for c in changes] == [(None, DOWN)]
    assert "was unknown" in changes[0].reason


def test_down_to_degraded_is_a_change() -> None:
    _, changes = run([UP, DOWN, DOWN, DEGRADED, DEGRADED], consecutive=2)
    assert [(c.from_status, c.to_status) for c in changes] == [(UP, DOWN), (DOWN, DEGRADED)]


def test_consecutive_one_alerts_on_every_change() -> None:
    _, changes = run([UP, DOWN, UP], consecutive=1)
    assert [(c.from_status, c.to_status) for c in changes] == [(UP, DOWN), (DOWN, UP)]


@pytest.mark.parametrize("consecutive", [0, -3])
def test_consecutive_below_one_counts_as_one(consecutive: int) -> None:
    _, changes = run([UP, DOWN], consecutive=consecutive)
    assert len(changes) == 1


def test_replaying_the_same_result_neither_double_counts_nor_loses_the_alert() -> None:
    state, _ = run([UP, DOWN], consecutive=2)
    confirming = result(DOWN, 5)
    after, change = advance(state, confirming, 2)
    assert change is not None
    again, replayed = advance(after, confirming, 2)
    assert again == after
    assert replayed == change
    # a replay of a result that confirmed nothing yields nothing
    later = result(DOWN, 6)
    after_later, none = advance(after, later, 2)
    assert none is None
    assert advance(after_later, later, 2) == (after_later, None)


def test_an_older_result_is_ignored() -> None:
    state, _ = run([UP, UP, UP], consecutive=2)
    assert state is not None
    stale = result(DOWN, 0)
    assert advance(state, stale, 1) == (state, None)


def test_state_round_trips_through_json() -> None:
    import json

    state, _ = run([UP, DOWN, DOWN], consecutive=2)
    assert state is not None
    text = json.dumps(state.to_json())
    assert CheckState.from_json(json.loads(text)) == state


@pytest.mark.parametrize("stored", [None, "garbage", 42, {"confirmed": "sideways"}, {}])
def test_unreadable_state_starts_over(stored: object) -> None:
    assert CheckState.from_json(stored) is None


def test_state_key() -> None:
    assert state_key("production", "api") == "health/production/api"
