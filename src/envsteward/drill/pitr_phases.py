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
    from datetime import datetime

    from envsteward.drill.phases import Drill, DrillSetup
    from envsteward.drill.ports import DrillServices
    from envsteward.drill.scratch import Scratch
    from envsteward.ports import KeyProvider


def free_port() -> int:
    """A TCP port nothing listens on now (the cluster itself listens on its socket only; the port
    names the socket). Binds and releases a socket on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pitr_scratch(services: DrillServices, setup: DrillSetup, name: str) -> PitrClusterScratch:
    """The scratch cluster of a PITR drill (not created yet). Raises ConfigurationError for a scratch
    path too long for a socket."""
    from psycopg.conninfo import conninfo_to_dict

    from envsteward.health.checks import run_check
    from envsteward.health.runner import context_from_services
    from envsteward.health.specs import PostgresCheck
    from envsteward.pitr.restore import restore_command

    target, spec = setup.target, setup.spec
    assert target.kind == "postgres"
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
    for check in services.catalog().environment(setup.environment).health_checks:
        if isinstance(check, PostgresCheck):
            try:
                params = conninfo_to_dict(check.dsn)
            except Exception:  # noqa: BLE001 - a malformed DSN: check the target's database instead
                params = {}
            dsn = scratch.libpq(str(params.get("dbname") or database), str(params.get("user") or user))
            checks.append(check.model_copy(update={"dsn": dsn, "password": None}))
    # WAL from the drilled region only: a DR drill must not quietly lean on the primary store
    scratch.restore_command = restore_command(
        services.settings.home, services.settings.catalog, f"{setup.environment}/{target.name}", setup.region
    )
    context = context_from_services(services, setup.environment)
    scratch.checks = tuple(checks)
    scratch.run_check = lambda check: run_check(check, context)
    return scratch


def choose_base_backup(
    setup: DrillSetup,
    requested: str,
    started: datetime,
    rng: random.Random | None,
    facts: dict[str, Any],
) -> str:
    """Pick the base backup to restore in the region's store; its id. Raises DrillStepError when there is
    none. Lists the store."""
    from envsteward.drill.phases import DrillStepError
    from envsteward.pitr.base import list_base_backups
    from envsteward.pitr.walnames import archive_prefix

    prefix = archive_prefix(setup.environment, setup.target.name)
    bases = list_base_backups(setup.store, prefix)
    candidates = [BackupCandidate(item.backup_id, item.end_time) for item in bases]
    where = f"the {setup.region} store ({setup.store_label})"
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
                f"no PITR base backup of {setup.environment}/{setup.target.name} in {where}: run "
                f"`envsteward pitr base-backup {setup.environment}/{setup.target.name}`"
            )
        raise DrillStepError(reason)
    facts.update(
        backup_id=choice.backup_id,
        choice_reason=f"{choice.reason} (PITR base backup; WAL replayed to the end of the archive)",
        consistent_at=choice.consistent_at,
    )
    return choice.backup_id


def restore_pitr(
    drill: Drill, setup: DrillSetup, scratch: Scratch, backup_id: str, keys: KeyProvider
) -> None:
    """Restore into the (created) scratch cluster and measure RPO into ``drill.facts``. Raises what
    :meth:`PitrClusterScratch.restore_pitr` raises."""
    from envsteward.pitr.rpo import achieved_rpo

    assert isinstance(scratch, PitrClusterScratch)
    started = drill.clock()
    restored = scratch.restore_pitr(setup.store, keys, backup_id)
    rpo = achieved_rpo(
        drill.started,
        restored.recovery.last_replayed_commit,
        restored.base_backup_end,
        setup.targets.rpo_seconds,
    )
    drill.restore_report = scratch.report(started, drill.clock())
    drill.facts.update(
        rpo_seconds=rpo.seconds,
        restore_point_age_seconds=rpo.seconds,
        recovered_to=rpo.recovered_to,
    )
