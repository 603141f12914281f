"""Keep each check's :class:`~envsteward.health.tracker.CheckState` in the state store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

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


MAX_PARALLEL_RECORDS = 16
"""Concurrent state-store updates in :func:`record_results` (each key is its own atomic update)."""


def record_results(
    store: StateStore, results: Sequence[CheckResult], consecutive: Mapping[str, int]
) -> list[StatusChange]:
    """Fold every result into its check's stored state; return the confirmed changes in ``results`` order.
    ``consecutive`` maps ``<env>/<check>`` to the check's setting (1 when absent).

    The updates run concurrently (at most :data:`MAX_PARALLEL_RECORDS`): one per check, each an atomic
    read-modify-write of its own key, so their order does not matter; a run of 500 checks would otherwise
    wait for 500 store round trips (file store: fsync each) one after the other. Calls the state store;
    raises the first of its errors (the updates already made stand: recording a result again is a no-op).
    """

    def one(result: CheckResult) -> StatusChange | None:
        return record_result(store, result, consecutive.get(f"{result.environment}/{result.check}", 1))

    if len(results) <= 1:
        found = [one(result) for result in results]
    else:
        with ThreadPoolExecutor(min(MAX_PARALLEL_RECORDS, len(results))) as pool:
            found = list(pool.map(one, results))
    return [change for change in found if change is not None]


def read_state(store: StateStore, environment: str, check: str) -> CheckState | None:
    """The stored state of one check (None when there is none or it is unreadable)."""
    return CheckState.from_json(store.get(state_key(environment, check)))
