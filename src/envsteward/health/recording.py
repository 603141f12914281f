"""Keep each check's :class:`~envsteward.health.tracker.CheckState` in the state store."""

from __future__ import annotations

from envsteward.health.result import CheckResult
from envsteward.health.tracker import CheckState, StatusChange, advance, state_key
from envsteward.ports import JSONValue, StateStore


def record_result(store: StateStore, result: CheckResult, consecutive: int) -> StatusChange | None:
    """Fold ``result`` into the stored state of its check; return the confirmed change.

    One compare-and-set (``StateStore.update``): of several workers folding results of the same check at
    once, exactly one sees the transition and returns the change (so the change alerts once), and a result
    older than the stored one is ignored. Calls the state store; raises its errors. Recording the same
    result twice is a no-op that returns the same change (a retried task re-sends its own alert only).
    """
    key = state_key(result.environment, result.check)
    found: list[StatusChange | None] = [None]

    def fold(current: JSONValue | None) -> JSONValue:
        state, change = advance(CheckState.from_json(current), result, consecutive)
        found[0] = change  # assigned on every call: the store may re-run fold after a lost race
        return state.to_json()

    store.update(key, fold)
    return found[0]


def read_state(store: StateStore, environment: str, check: str) -> CheckState | None:
    """The stored state of one check (None when there is none or it is unreadable)."""
    return CheckState.from_json(store.get(state_key(environment, check)))
