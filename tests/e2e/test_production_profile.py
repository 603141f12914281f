"""The production profile end to end: a Prefect server on PostgreSQL, two process workers on one pool,
flow state in Redis, backups and the audit log in S3 (moto), Vault (OpenBao), per-system concurrency
limits, all set up with ``python -m envsteward.deployments.production check|setup`` from a settings file.

* every deployment of ``prefect.yaml`` runs to completion, and both workers complete runs;
* two promotions to the same target started at the same moment on different workers: exactly one
  proceeds (it suspends for approval holding the lease), the other ends ``Locked``; then the Prefect
  server is killed and started again while the winner is suspended, and ``envsteward approve`` still
  resumes it to ``Applied``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from envsteward.deployments.catalog import read_deployments

from envsteward.limits import SYSTEMS
from tests.e2e.prod_profile import (  # noqa: F401 - fixtures
    Profile,
    api,
    is_final,
    is_paused,
    prod_server,
    profile_fixture,
    run_deployment,
    start_workers,
    wait_for,
)
from tests.unit.promotion._catalog import ALL_SEEDED

pytestmark = pytest.mark.e2e

PARAMETERS: dict[str, dict[str, Any]] = {
    "promote": {"source": "development", "target": "staging", "requested_by": "dave", "reason": "e2e"},
    "dr-drill": {"environment": "production"},
    "prune-backups": {"dry_run": False},
}
AFTER_BACKUP = ("dr-drill", "prune-backups")
"""Deployments that need the backup-environment run's backup; started once it completed."""


def _deployment_names() -> dict[str, str]:
    """deployment name -> ``flow-name/deployment-name`` for every deployment of prefect.yaml."""
    return {
        d.name: f"{d.entrypoint.rsplit(':', 1)[1].replace('_', '-')}/{d.name}" for d in read_deployments()
    }


def _acquisitions(profile: Profile, name: str) -> int:
    """How many times Prefect recorded a slot of limit ``name`` being taken (the server's event log)."""
    limit_id = _limit(profile, name).id
    body = json.dumps(
        {
            "filter": {
                "event": {"name": ["prefect.concurrency-limit.acquired"]},
                "resource": {"id": [f"prefect.concurrency-limit.{limit_id}"]},
            },
            "limit": 1,
        }
    ).encode()
    request = urllib.request.Request(
        f"{profile.server.api_url}/events/filter",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["total"])


def _limit(profile: Profile, name: str) -> Any:
    return api(profile.server, "read_global_concurrency_limit_by_name", name)


def test_every_deployment_completes_on_two_workers_within_the_limits(
    profile: Profile, tmp_path: Path, vault_kv_path: str
) -> None:
    check = profile.production("check")
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("prefect-db", "redis", "s3", "s3-dr", "prefect-api", "work-pool", "limits-made"):
        assert any(line.startswith("ok") and f" {name} " in line for line in check.stdout.splitlines()), (
            check.stdout
        )
    limits = {s: _limit(profile, f"envsteward-{s}") for s in SYSTEMS}
    assert limits["vault"].limit == 4
    assert limits["ssm"].limit == 3
    assert limits["postgres"].limit == 2, "the default size"

    names = _deployment_names()
    parameters = {
        **PARAMETERS,
        "rotate-secret": {
            "environment": "development",
            "reference": f"vault://{vault_kv_path}/development/database#password",
            "dry_run": True,
        },
    }
    workers = start_workers(profile, tmp_path, "worker-a", "worker-b", limit=3)
    try:
        runs = {
            name: run_deployment(profile.server, full, parameters.get(name))
            for name, full in names.items()
            if name not in AFTER_BACKUP
        }
        promote = wait_for(profile.server, runs["promote"], is_paused, "suspended", workers)
        assert promote.state.name == "Suspended"
        approved = profile.envsteward("approve", runs["promote"], "--reviewer", "alice", "--comment", "e2e")
        assert approved.returncode == 0, approved.stderr
        backup = wait_for(profile.server, runs["backup-environment"], is_final, "final", workers)
        assert backup.state.is_completed(), f"backup ended {backup.state_name}:\n{workers.tails()}"
        for name in AFTER_BACKUP:
            runs[name] = run_deployment(profile.server, names[name], parameters.get(name))
        finals = {
            name: wait_for(profile.server, run_id, is_final, "final", workers)
            for name, run_id in runs.items()
        }
        failed = {
            name: f"{run.state_name}: {run.state.message}"
            for name, run in finals.items()
            if not run.state.is_completed()
        }
        assert not failed, f"{failed}\n{workers.tails()}"
        assert finals["promote"].state.name == "Applied"

        # both workers completed runs; a worker that got none is given health checks until it does
        completed = set(runs.values())
        deadline = time.monotonic() + 120
        while not all(workers.runs_of(w) & completed for w in ("worker-a", "worker-b")):
            assert time.monotonic() < deadline, f"a worker completed no run:\n{workers.tails()}"
            extra = run_deployment(profile.server, names["health-check"])
            assert wait_for(profile.server, extra, is_final, "final", workers).state.is_completed()
            completed.add(extra)
    finally:
        workers.stop()
    ran = {w: workers.runs_of(w) for w in ("worker-a", "worker-b")}
    for name, run_id in runs.items():
        where = [w for w, ids in ran.items() if run_id in ids]
        # a suspended promotion is run again from the start on resume, by whichever worker is free
        assert len(where) == 1 or (name == "promote" and len(where) == 2), f"{name} ran in {where}"

    acquired = {s: _acquisitions(profile, f"envsteward-{s}") for s in ("vault", "ssm", "s3")}
    assert all(acquired.values()), f"slots never taken: {acquired}"
    for system in SYSTEMS:
        limit = _limit(profile, f"envsteward-{system}")
        assert limit.active_slots == 0, f"{limit.name} still holds {limit.active_slots} slot(s)"
    logs = workers.tails()
    assert "do not exist - skipping acquisition" not in logs
    for secret in ALL_SEEDED:
        assert secret not in logs


def test_two_promotions_at_once_one_wins_and_its_approval_survives_a_server_restart(
    profile: Profile, tmp_path: Path
) -> None:
    from envsteward.promotion import lock as promotion_lock
    from envsteward.services import Services
    from envsteward.settings import Settings

    workers = start_workers(profile, tmp_path, "worker-a", "worker-b", limit=1)
    try:
        params = PARAMETERS["promote"]
        first = run_deployment(profile.server, "promote/promote", params)
        second = run_deployment(profile.server, "promote/promote", {**params, "requested_by": "erin"})
        settled = {
            run_id: wait_for(
                profile.server, run_id, lambda r: is_paused(r) or is_final(r), "suspended or final", workers
            )
            for run_id in (first, second)
        }
        waiting = [run_id for run_id, run in settled.items() if is_paused(run)]
        locked = [run_id for run_id, run in settled.items() if is_final(run)]
        assert len(waiting) == 1, {r: s.state_name for r, s in settled.items()}
        assert len(locked) == 1, {r: s.state_name for r, s in settled.items()}
        (winner,), (loser,) = waiting, locked
        lost = settled[loser]
        assert lost.state.name == "Locked", f"{lost.state_name}: {lost.state.message}"
        assert not lost.state.is_completed()
        assert winner in (lost.state.message or ""), lost.state.message
        assert "already in progress" in lost.state.message or "same moment" in lost.state.message
        by_worker = {w: workers.runs_of(w) & {first, second} for w in ("worker-a", "worker-b")}
        assert all(len(runs) == 1 for runs in by_worker.values()), f"not one run per worker: {by_worker}"

        # the lease lives in Redis under this profile's prefix, naming the winner
        services = Services(Settings(_env_file=profile.env_file))  # type: ignore[call-arg]
        assert services.settings.state.key_prefix == profile.redis_prefix
        lease = promotion_lock.holder(services.state_store(), "staging")
        assert lease is not None
        assert lease["run_id"] == winner

        profile.server.restart()
        assert is_paused(api(profile.server, "read_flow_run", winner)), "the suspended run was lost"
        done = profile.envsteward(
            *("approve", winner, "--reviewer", "alice", "--comment", "after restart", "--wait"),
            *("--timeout", "240"),
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"flow run {winner} ended Applied" in done.stdout, done.stdout
    finally:
        workers.stop()
    assert promotion_lock.holder(services.state_store(), "staging") is None, "the lease was not released"
