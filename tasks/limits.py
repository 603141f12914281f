"""Slots of the per-system Prefect global concurrency limits, taken by the tasks that call those systems.

A task wraps its call to Vault, SSM, Secrets Manager, S3 or a PostgreSQL backup target in
:func:`system_slots` (async tasks) or :func:`system_slots_sync` (sync tasks). With
``ENVSTEWARD_LIMITS__ENABLED`` the task holds one slot of each named system's limit (``envsteward-vault``,
...) for the length of the call, so all workers together stay under what the system allows; several
systems are acquired together, all or none (Prefect acquires a list of limits atomically), so two tasks
can never deadlock holding one each. Disabled (the embedded default) it does nothing.

A limit that does not exist on the server never blocks or fails a task: ``strict=False`` makes Prefect
log "Concurrency limits [...] do not exist - skipping acquisition." and go on. The production helper
(``python -m envsteward.deployments.production check``) reports missing limits before anything starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager

from prefect.concurrency.asyncio import concurrency as async_concurrency
from prefect.concurrency.sync import concurrency as sync_concurrency

from envsteward.limits import limit_names, system_for_scheme, system_for_source, systems_for_backup
from envsteward.services import get_services

LEASE_SECONDS = 300.0
"""Prefect renews the slot's lease while the task runs; a killed worker's slot frees after this long."""


def slot_names(systems: Iterable[str | None]) -> list[str]:
    """The limits to take for ``systems`` under the process's settings; [] when limits are disabled."""
    settings = get_services().settings.limits
    if not settings.enabled:
        return []
    return limit_names(settings.prefix, systems)


@asynccontextmanager
async def system_slots(systems: Iterable[str | None]) -> AsyncIterator[list[str]]:
    """Hold one slot of each system's limit while the block runs; yields the limit names taken.
    Calls the Prefect API (acquire, renew, release). Waits for free slots without a timeout (the task's
    own timeout bounds it)."""
    names = slot_names(systems)
    if not names:
        yield []
        return
    async with async_concurrency(names, occupy=1, lease_duration=LEASE_SECONDS, strict=False):
        yield names


@contextmanager
def system_slots_sync(systems: Iterable[str | None]) -> Iterator[list[str]]:
    """:func:`system_slots` for sync tasks."""
    names = slot_names(systems)
    if not names:
        yield []
        return
    with sync_concurrency(names, occupy=1, lease_duration=LEASE_SECONDS, strict=False):
        yield names


def _enabled() -> bool:
    return get_services().settings.limits.enabled


def source_systems(environment: str, source_name: str) -> list[str | None]:
    """The system one of the environment's config sources calls (from the catalog); [] when limits are
    off or the source is unknown (the call itself then reports that)."""
    if not _enabled():
        return []
    sources = get_services().catalog().environment(environment).sources
    spec = next((s for s in sources if s.name == source_name), None)
    return [system_for_source(spec.kind)] if spec is not None else []


def secret_systems(environment: str) -> list[str | None]:
    """The systems the environment's secret references live in (from its rendered configuration)."""
    if not _enabled():
        return []
    refs = get_services().catalog().render(environment).secret_refs.values()
    return [system_for_scheme(ref.scheme) for ref in refs]


def backup_systems(environment: str, target: str) -> list[str | None]:
    """The systems a backup of one target calls: its source system (for a ``config`` target, the
    environment's sources) and S3 when backups are stored there."""
    if not _enabled():
        return []
    services = get_services()
    env = services.catalog().environment(environment)
    spec = next((b for b in env.backups if b.name == target), None)
    if spec is None:
        return []
    systems: list[str | None] = list(systems_for_backup(spec.kind, services.settings.storage.kind))
    if spec.kind == "config":
        systems += [system_for_source(source.kind) for source in env.sources]
    return systems


def storage_systems() -> list[str | None]:
    """S3 when the object store is S3 (replicas, prune, leftovers), else nothing."""
    return ["s3"] if get_services().settings.storage.kind == "s3" else []


def environment_systems(environment: str) -> list[str | None]:
    """The systems all of the environment's config sources call (a promotion's apply and verify)."""
    if not _enabled():
        return []
    return [system_for_source(s.kind) for s in get_services().catalog().environment(environment).sources]
