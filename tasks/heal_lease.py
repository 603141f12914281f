"""Prefect tasks around :mod:`envsteward.scan.heal_lease`: the drift scan's heal lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from envsteward.tasks.common import RETRY_TRANSIENT
from prefect import task
from prefect.cache_policies import NO_CACHE

from envsteward.scan import heal_lease
from envsteward.services import get_services


@task(name="take-heal-lease", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def take_heal_lease(run_id: str, hold_seconds: float) -> str | None:
    """Take the drift scan's heal lease for ``hold_seconds`` (a dead run's lease frees after that). Returns
    None when taken, else the flow run that holds it. Calls the state store and the Prefect API."""
    from envsteward.tasks.promotion import run_is_active

    now = datetime.now(UTC)
    return heal_lease.acquire(
        get_services().state_store(),
        run_id,
        now=now,
        expires_at=now + timedelta(seconds=hold_seconds),
        is_active=run_is_active,
    )


@task(name="release-heal-lease", **RETRY_TRANSIENT, persist_result=False, cache_policy=NO_CACHE)
def release_heal_lease(run_id: str) -> bool:
    """Give the heal lease up. Calls the state store."""
    return heal_lease.release(get_services().state_store(), run_id)
