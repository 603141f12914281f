"""One healing drift scan at a time, across workers: a lease in the shared state store.

Why not the deployment's ``concurrency_limit``: a drift scan that waits for heal approval *pauses* in its
process, and Prefect's server releases a deployment concurrency slot when a run leaves Running (Paused
included) while the engine keeps renewing the slot's lease; the next renewal gets 410 and the engine kills
the run, which ends Crashed about four minutes into every scan that asked for approval (the mechanism of
Prefect issues #22885 and #20251). So the drift-scan deployment has no concurrency limit: scans may overlap,
detection is read-only (its alert state is folded with compare-and-set), and only healing is serialised
here. A scan that finds the lease held by another live run still reads, compares and alerts; it heals
nothing and says so.

Pure apart from the :class:`~envsteward.ports.StateStore` passed in; never imports prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from envsteward.ports import StateStore

LEASE_KEY = "drift-heal-lease"


def _expired(lease: dict[str, Any], now: datetime) -> bool:
    """Fails closed: a lease whose expiry cannot be read has not expired."""
    try:
        expires = datetime.fromisoformat(str(lease["expires_at"]))
    except (KeyError, ValueError):
        return False
    return (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= now


def acquire(
    store: StateStore,
    run_id: str,
    *,
    now: datetime,
    expires_at: datetime,
    is_active: Callable[[str], bool],
) -> str | None:
    """Take the heal lease for ``run_id`` (its own lease may be taken again). Returns None when taken, or
    the flow run id that holds it (a live run whose lease has not expired). ``is_active`` must answer
    True when it cannot tell. Calls the state store (one atomic update) and ``is_active``."""
    holder: list[str] = []

    def swap(value: Any) -> Any:
        holder.clear()
        if isinstance(value, dict) and value.get("run_id") not in {None, run_id}:
            other = str(value["run_id"])
            if not _expired(value, now) and is_active(other):
                holder.append(other)
                return value
        return {"run_id": run_id, "acquired_at": now.isoformat(), "expires_at": expires_at.isoformat()}

    store.update(LEASE_KEY, swap)
    return holder[0] if holder else None


def release(store: StateStore, run_id: str) -> bool:
    """Give the lease up if ``run_id`` holds it; True when released. Calls the state store."""
    released: list[bool] = []

    def swap(value: Any) -> Any:
        released.clear()
        if isinstance(value, dict) and value.get("run_id") == run_id:
            released.append(True)
            return None
        return value

    store.update(LEASE_KEY, swap)
    return bool(released)
