"""Keep each check's :class:`~envsteward.health.tracker.CheckState` in the state store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from envsteward.health.result import CheckResult
from envsteward.health.tracker import CheckState, StatusChange, advance, state_key
from envsteward.ports import JSONValue, StateStore


def record_result(store: StateStore, result: CheckResult, consecutive: int) -> StatusChange | None:
    """Fold ``result`` into the stored state of its check (read-modify-write); return the confirmed change.

    Uses the store's atomic ``update(key, fn)`` when it has one, else ``get`` then ``put``. Calls the state
    store; raises its errors. Recording the same result twice is a no-op that returns the same change.
    """
    key = state_key(result.environment, result.check)
    found: list[StatusChange | None] = [None]

    def fold(current: JSONValue | None) -> JSONValue:
        state, change = advance(CheckState.from_json(current), result, consecutive)
        found[0] = change
        return state.to_json()

    update = getattr(store, "update", None)
    if callable(update):
        cast(Callable[[str, Callable[[Any], Any]], Any], update)(key, fold)
    else:
        store.put(key, fold(store.get(key)))
    return found[0]


def read_state(store: StateStore, environment: str, check: str) -> CheckState | None:
    """The stored state of one check (None when there is none or it is unreadable)."""
    return CheckState.from_json(store.get(state_key(environment, check)))
