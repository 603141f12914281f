"""The PITR parts of the drill's phases (:mod:`envsteward.drill.phases` calls these when the drilled
target is a postgres target with ``pitr.enabled``; see :mod:`envsteward.drill.pitr_scratch`).

* ``prepare`` -> :func:`pitr_scratch`: the scratch cluster (folder under ``<home>/drill-scratch``, a free
  port, the target DSN's database and user for the smoke queries, the environment's postgres health
  checks re-pointed at it). No drill server is needed.
* ``choose`` -> :func:`choose_base_backup`: the newest (or a random, or the given) base backup IN THE
  DRILLED REGION'S STORE.
* ``restore`` -> :func:`restore_pitr`: unpack it, replay every WAL file archived in that region
  (``wal fetch --from dr`` for a DR drill: the primary region is not used at all), wait for the
  promotion, and measure RPO = drill start - the last replayed commit
  (:func:`envsteward.pitr.rpo.achieved_rpo`; the base backup's end when no transaction was replayed).

``fetch_verify``, ``verify_data``, ``health`` and ``teardown`` are the generic phases over the scratch.

External calls: the catalog, the region's object store, the key provider, ``pg_ctl`` and friends.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from envsteward.drill.decisions import BackupCandidate, choose_backup, newest
from envsteward.drill.pitr_scratch import PitrClusterScratch

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from envsteward.backup.sources.base import RestoreReport
    from envsteward.catalog.models import DrillSpec, PostgresBackup
    from envsteward.drill.ports import DrillServices
    from envsteward.drill.scratch import Scratch
    from envsteward.ports import KeyProvider, ObjectStore


def free_port() -> int:
    """A TCP port nothing listens on now (the cluster itself listens on its socket only; the port
    names the socket). Binds and releases a socket on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pitr_scratch(
    services: DrillServices,
    environment: str,
    target: PostgresBackup,
    spec: DrillSpec,
    *,
    region: str,
    name: str,
) -> PitrClusterScratch:
    """The scratch cluster of a PITR drill of ``environment``/``target`` from ``region`` (not created yet).
    Raises ConfigurationError for a scratch path too long for a socket."""
    from envsteward.health.checks import run_check
    from envsteward.health.runner import context_from_services
    from envsteward.health.specs import PostgresCheck
    from envsteward.pitr.restore import restore_command, start_read_ahead

    parts = urlsplit(target.dsn)
    database = parts.path.lstrip("/") or "postgres"
    user = parts.username or "postgres"
    folder = Path(services.settings.home).resolve() / "drill-scratch" / name
    port = free_port()
    scratch = PitrClusterScratch(
        folder,
        port=port,
        database=database,
        user=user,
        run_as=services.settings.drill.cluster_os_user if os.geteuid() == 0 else None,
        pg_bin=Path(target.pitr.pg_bin) if target.pitr.pg_bin else None,
        smoke_queries=spec.smoke_queries,
        smoke_timeout_seconds=spec.smoke_timeout_seconds,
    )
    checks = []
    for check in services.catalog().environment(environment).health_checks:
        if isinstance(check, PostgresCheck):
            params = _database_and_user(check.dsn)
            dsn = scratch.libpq(params.get("dbname") or database, params.get("user") or user)
            checks.append(check.model_copy(update={"dsn": dsn, "password": None}))
    # WAL from the drilled region only: a DR drill must not quietly lean on the primary store
    home, catalog, selector = (
        services.settings.home,
        services.settings.catalog,
        f"{environment}/{target.name}",
    )
    scratch.restore_command = restore_command(home, catalog, selector, region)
    scratch.read_ahead = lambda data_dir, first, run_as: start_read_ahead(
        home, catalog, selector, region, data_dir, first, run_as=run_as
    )
    context = context_from_services(services, environment)
    scratch.checks = tuple(checks)
    scratch.run_check = lambda check: run_check(check, context)
    return scratch


def _database_and_user(dsn: str) -> dict[str, str]:
    """``dbname`` and ``user`` of a health check's DSN (URL or ``key=value``; a value with spaces or quotes
    is not understood and then the target's is used). Pure."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return {"dbname": parts.path.lstrip("/"), "user": parts.username or ""}
    found = dict(item.split("=", 1) for item in dsn.split() if "=" in item)
    return {key: found.get(key, "") for key in ("dbname", "user")}


def choose_base_backup(
    store: ObjectStore,
    *,
    environment: str,
    target: str,
    where: str,
    requested: str,
    rng: random.Random | None,
    facts: dict[str, Any],
) -> str:
    """Pick the base backup of ``environment``/``target`` to restore in ``store`` (described by
    ``where``); its id. Raises NotFoundError (not retried) when there is none. Lists the store."""
    from envsteward.errors import NotFoundError
    from envsteward.pitr.base import list_base_backups
    from envsteward.pitr.walnames import archive_prefix

    prefix = archive_prefix(environment, target)
    bases = list_base_backups(store, prefix)
    candidates = [BackupCandidate(item.backup_id, item.end_time) for item in bases]
    # every stored base backup is one `pitr prune` keeps (it applies keep_base_backups on each run)
    choice = choose_backup(
        candidates, requested, kept_ids={c.backup_id for c in candidates}, rng=rng, where=where
    )
    latest = newest(candidates)
    if latest is not None:
        facts["newest_backup_id"] = latest.backup_id
        facts["newest_consistent_at"] = latest.consistent_at
    if choice.backup_id is None or choice.consistent_at is None:
        reason = choice.reason
        if not candidates:
            reason = (
                f"no PITR base backup of {environment}/{target} in {where}: run "
                f"`envsteward pitr base-backup {environment}/{target}`"
            )
        raise NotFoundError(reason)
    facts.update(
        backup_id=choice.backup_id,
        choice_reason=f"{choice.reason} (PITR base backup; WAL replayed to the end of the archive)",
        consistent_at=choice.consistent_at,
    )
    return choice.backup_id


def restore_pitr(
    scratch: Scratch,
    store: ObjectStore,
    keys: KeyProvider,
    backup_id: str,
    *,
    drill_started: datetime,
    rpo_target_seconds: float,
    clock: Callable[[], datetime],
) -> tuple[RestoreReport, dict[str, Any]]:
    """Restore into the (created) scratch cluster; its report and the facts it measured (``rpo_seconds``
    = drill start - the last replayed commit, ``recovered_to``). Raises what
    :meth:`PitrClusterScratch.restore_pitr` raises."""
    from envsteward.pitr.rpo import achieved_rpo

    assert isinstance(scratch, PitrClusterScratch)
    started = clock()
    restored = scratch.restore_pitr(store, keys, backup_id)
    rpo = achieved_rpo(
        drill_started, restored.recovery.last_replayed_commit, restored.base_backup_end, rpo_target_seconds
    )
    facts = {
        "rpo_seconds": rpo.seconds,
        "restore_point_age_seconds": rpo.seconds,
        "recovered_to": rpo.recovered_to,
    }
    return scratch.report(started, clock()), facts
