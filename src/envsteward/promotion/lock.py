"""One promotion per target at a time: a lease in the state store, keyed by the target environment.

The lease names the flow run that holds it and expires at the approval deadline (plus a margin for the
apply). A second promotion to the same target is refused with a message naming the holder, unless the
lease has expired or its run has finished (``is_active`` says no): then it is taken over. Fail closed: a
lease whose expiry cannot be read has not expired, and a holder whose state cannot be checked is active
(``is_active`` must say so). Acquiring is an atomic read-modify-write (``StateStore.update``); the
holder's own run may re-acquire (a suspended flow re-runs from the start when resumed).

A lease is used instead of a Prefect concurrency slot because a promotion waits for approval while
suspended (no process is alive to hold a slot).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from envsteward.errors import ConflictError
from envsteward.ports import StateStore

LOCK_PREFIX = "promotion-lock:"


class PromotionLockedError(ConflictError):
    """Another promotion to the same target is in progress."""


@dataclass(frozen=True)
class Lease:
    target: str
    run_id: str
    requested_by: str
    source: str
    acquired_at: datetime
    expires_at: datetime
    replaced: dict[str, Any] | None = None
    """The stale lease this one took over (expired, or its run finished), for the audit log."""


def lock_key(target: str) -> str:
    return f"{LOCK_PREFIX}{target}"


def _aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC (envsteward writes aware UTC times; older records may lack the zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lease_expired(lease: dict[str, Any], now: datetime) -> bool:
    """Whether a stored lease has expired at ``now``, comparing times (not their text). Fails closed: a
    lease without a readable ``expires_at`` has NOT expired (whether it is still held is then up to its
    run's state). Pure."""
    text = lease.get("expires_at")
    if not isinstance(text, str):
        return False
    try:
        expires_at = datetime.fromisoformat(text)
    except ValueError:
        return False
    return _aware(expires_at) <= _aware(now)


def acquire(
    store: StateStore,
    *,
    target: str,
    source: str,
    run_id: str,
    requested_by: str,
    now: datetime,
    expires_at: datetime,
    is_active: Callable[[str], bool],
    extra: Mapping[str, Any] | None = None,
) -> Lease:
    """Take the target's lease for ``run_id``. ``extra``: more JSON fields kept in the lease (the approval
    deadline, the plan hash: what the expiry needs without guessing). Calls the state store (and
    ``is_active`` for a holder).

    Raises PromotionLockedError naming the run that holds it when another live, unexpired promotion does.
    """
    current = store.get(lock_key(target))
    replaced: dict[str, Any] | None = None
    if isinstance(current, dict) and current.get("run_id") != run_id:
        if not lease_expired(current, now) and is_active(str(current.get("run_id"))):
            raise PromotionLockedError(
                f"a promotion to {target!r} is already in progress: flow run {current.get('run_id')} "
                f"({current.get('source')} -> {target}, requested by {current.get('requested_by')} at "
                f"{current.get('acquired_at')}); wait for it to finish or reject it, then try again",
                system="promotion",
                operation="lock",
            )
        replaced = current

    record = {
        "target": target,
        "source": source,
        "run_id": run_id,
        "requested_by": requested_by,
        "acquired_at": now.isoformat(),
        "expires_at": expires_at.isoformat(),
        **dict(extra or {}),
    }

    def swap(value: Any) -> Any:
        if isinstance(value, dict) and value != current and value.get("run_id") != run_id:
            raise PromotionLockedError(
                f"a promotion to {target!r} was started at the same moment (flow run {value.get('run_id')})",
                system="promotion",
                operation="lock",
            )
        if isinstance(value, dict) and value.get("run_id") == run_id:
            return value
        return record

    stored = store.update(lock_key(target), swap)
    assert isinstance(stored, dict)
    return Lease(
        target=target,
        run_id=run_id,
        requested_by=str(stored["requested_by"]),
        source=str(stored["source"]),
        acquired_at=datetime.fromisoformat(str(stored["acquired_at"])),
        expires_at=datetime.fromisoformat(str(stored["expires_at"])),
        replaced=replaced,
    )


def release(store: StateStore, target: str, run_id: str) -> bool:
    """Release the lease when ``run_id`` holds it; True when released. Calls the state store."""
    released = False

    def drop(value: Any) -> Any:
        # Assigned on every call, never only set: the Redis store re-runs ``drop`` after a lost WATCH
        # race, and only the last (committed) call may decide the answer (two sweeps must not both win).
        nonlocal released
        released = isinstance(value, dict) and value.get("run_id") == run_id
        return None if released else value

    store.update(lock_key(target), drop)
    return released


def holder(store: StateStore, target: str) -> dict[str, Any] | None:
    """The current lease of ``target`` (as stored), or None."""
    value = store.get(lock_key(target))
    return value if isinstance(value, dict) else None
