"""``envsteward backup restore BASE_ID --to-time T --to-dir DIR --port P`` restores a PITR base backup to a
point in time (exactly the rows committed before T); ``--to-latest`` on a logical dump's id is a clear
error; ``backup list`` shows the WAL archive of the PITR target (newest segment whole at 80 columns, its
age against the RPO target, ``wal push`` failures recorded during an object-store outage by error class
only, DR lag). Real throwaway cluster archiving with ``envsteward wal push``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.cli.main import app
from tests.fixtures.pg_cluster import ClusterFactory, PgCluster
from tests.integration._pitr_setup import (
    SELECTOR,
    PitrSetup,
    archiving_cluster,
    insert,
    pitr_setup,
    restored_ids,
    switch_and_wait_archived,
)


def root_cli(setup: PitrSetup, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """envsteward in this process (root reads every store; the server side runs as the DB user)."""
    from envsteward.cli import _common

    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "80")
    _common.console.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        _common.console.cache_clear()


def test_backup_restore_to_a_time_and_the_pitr_status_in_backup_list(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 3))
    base = setup.envsteward("pitr", "base-backup", SELECTOR).stdout.strip()
    insert(cluster, range(3, 5))
    time.sleep(0.3)
    moment = datetime.now(UTC)
    time.sleep(0.3)
    insert(cluster, range(5, 7))
    newest = switch_and_wait_archived(cluster)

    # a logical dump's id with --to-latest: says what PITR needs and how to list base backups
    dump = setup.envsteward(
        "backup",
        "restore",
        "dev/db/20240101T000000Z-abcd",
        "--to-latest",
        "--to-dir",
        str(setup.root / "never"),
        check=False,
    )
    assert dump.returncode == 1
    assert "is not a PITR base backup" in dump.stderr
    assert "envsteward backup list --target db.pitr" in dump.stderr
    assert not (setup.root / "never").exists()
    # a base backup with --to: points at --to-time/--to-latest --to-dir
    wrong = setup.envsteward("backup", "restore", base, "--to", "postgresql://x@h/db", check=False)
    assert wrong.returncode == 1
    assert "--to-dir" in wrong.stderr

    restored = setup.root / "restored-by-backup-restore"
    port = pg_cluster_factory.adopt_restored(restored)
    done = setup.envsteward(
        "backup",
        "restore",
        base,
        "--to-time",
        moment.isoformat(),
        "--to-dir",
        str(restored),
        "--port",
        str(port),
        "--dr",
        "--json",
    )
    outcome = json.loads(done.stdout)
    assert outcome["backup_id"] == base
    assert restored_ids(port) == [1, 2, 3, 4]
    assert datetime.fromisoformat(outcome["last_replayed_commit"]) <= moment

    # archive status: healthy
    listing = root_cli(setup, monkeypatch, "backup", "list", "--pitr", "--json")
    assert listing.exit_code == 0, listing.output
    (status,) = json.loads(listing.stdout)
    assert status["target"] == SELECTOR
    assert status["newest_segment"] >= newest
    assert status["state"] == "ok"
    assert status["failures"] == 0, status  # a failure here names its class and segment
    assert status["dr_lag_segments"] == 0
    assert status["rpo_target_seconds"] == 300.0
    assert status["base_backups"] == 1
    by_target = root_cli(setup, monkeypatch, "pitr", "status", SELECTOR)
    assert by_target.exit_code == 0, by_target.output
    archive = json.loads(by_target.stdout)["archive"]
    for key in ("newest_segment", "state", "failures", "dr_lag_segments", "base_backups"):
        assert archive[key] == status[key], key

    check_an_outage_is_shown(setup, cluster, monkeypatch, newest)


def check_an_outage_is_shown(
    setup: PitrSetup, cluster: PgCluster, monkeypatch: pytest.MonkeyPatch, newest: str
) -> None:
    """An outage of the primary store: pushes fail, each failure is counted (class only, no message),
    ``backup list`` says FAILING; once PostgreSQL's retry succeeds the state is ok again."""
    primary = setup.home / "objects"
    primary.chmod(0o000)
    try:
        insert(cluster, range(7, 8))
        cluster.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        while cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0:
            assert time.monotonic() < deadline, cluster.log()[-2000:]
            time.sleep(0.2)
        failing = json.loads(root_cli(setup, monkeypatch, "backup", "list", "--pitr", "--json").stdout)[0]
        assert failing["state"] == "failing"
        assert failing["failures"] >= 1
        assert failing["last_failure_error"] in {"PermanentError", "PermissionDeniedError", "TransientError"}
        assert failing["last_failure_segment"] > newest
        text = root_cli(setup, monkeypatch, "backup", "list").stdout
        assert "FAILING" in text
        assert failing["newest_segment"] in text  # a WAL name is never split
        assert all(len(line) <= 80 for line in text.splitlines()), text
        stored = (setup.home / "state").rglob("*.json")
        assert not any("Permission denied" in path.read_text() for path in stored)
    finally:
        primary.chmod(0o755)
    switch_and_wait_archived(cluster, timeout=120)
    recovered = json.loads(root_cli(setup, monkeypatch, "backup", "list", "--pitr", "--json").stdout)[0]
    assert recovered["state"] == "ok"
    assert recovered["failures"] >= failing["failures"]  # kept, but archiving moved on since
    text = root_cli(setup, monkeypatch, "backup", "list").stdout
    assert "archiving has moved on since" in text
    assert all(len(line) <= 80 for line in text.splitlines()), text
