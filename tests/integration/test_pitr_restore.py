"""Point-in-time recovery end to end on a throwaway cluster: archive with ``envsteward wal push``, base
backup, restore to a time between two known rows, and restore to latest from the DR region after a hard
kill (the RPO achieved within archive_timeout)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from envsteward.pitr.rpo import achieved_rpo
from tests.fixtures.pg_cluster import ClusterFactory
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    insert,
    pitr_setup,
    restore_latest_from_dr_only,
    restored_ids,
    switch_and_wait_archived,
)

ARCHIVE_TIMEOUT = 2


def test_restore_to_a_time_and_to_latest_from_dr_after_a_hard_kill(
    pg_cluster_factory: ClusterFactory,
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup, archive_timeout=f"'{ARCHIVE_TIMEOUT}s'")
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 4))
    switch_and_wait_archived(cluster)

    check = setup.envsteward("pitr", "check", SELECTOR, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    backup_id = setup.envsteward("pitr", "base-backup", SELECTOR).stdout.strip()
    assert backup_id.startswith("dev/db.pitr/")

    last_before = insert(cluster, range(4, 7))
    time.sleep(0.5)
    target = datetime.now(UTC)
    time.sleep(0.5)
    insert(cluster, range(7, 10))
    switch_and_wait_archived(cluster)

    # (a) a time between row 6 and row 7: exactly rows 1..6
    restored = setup.root / "restored-at-time"
    port = pg_cluster_factory.adopt_restored(restored)
    done = setup.envsteward(
        "pitr",
        "restore",
        SELECTOR,
        "--to-time",
        target.isoformat(),
        "--data-dir",
        str(restored),
        "--port",
        str(port),
        "--json",
    )
    outcome = json.loads(done.stdout)
    assert outcome["backup_id"] == backup_id
    assert restored_ids(port) == [1, 2, 3, 4, 5, 6]
    replayed = datetime.fromisoformat(outcome["last_replayed_commit"])
    assert last_before <= replayed <= target

    # (b) keep writing, kill the primary hard, restore to latest from the DR region only
    insert(cluster, range(10, 13))
    time.sleep(ARCHIVE_TIMEOUT * 2.5)  # archive_timeout closes the segment, wal push archives it
    last_commit = insert(cluster, range(13, 14))
    failure_at = datetime.now(UTC)
    cluster.stop("immediate")
    outcome, port = restore_latest_from_dr_only(setup, pg_cluster_factory)  # the primary region is gone too
    ids = restored_ids(port)
    assert ids[:12] == list(range(1, 13)), ids  # everything older than archive_timeout survived
    rpo = achieved_rpo(
        failure_at, datetime.fromisoformat(outcome["last_replayed_commit"]), failure_at, ARCHIVE_TIMEOUT * 3
    )
    assert rpo.met, rpo
    assert ids == list(range(1, 14)) or rpo.seconds >= (failure_at - last_commit).total_seconds()


def test_postgresql_stops_recovery_at_a_corrupt_archived_segment(pg_cluster_factory: ClusterFactory) -> None:
    """``wal fetch`` exits 126 for a segment that fails authentication, so PostgreSQL aborts recovery (it
    would otherwise take the failure for the end of the archive and promote with the later data missing)."""
    from envsteward.pitr.walnames import archive_prefix, wal_object_key

    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    setup.envsteward("pitr", "base-backup", SELECTOR)
    insert(cluster, range(1, 4))
    segment = switch_and_wait_archived(cluster)
    insert(cluster, range(4, 6))
    switch_and_wait_archived(cluster)

    for region in ("objects", "objects-dr"):
        stored = setup.home / region / wal_object_key(archive_prefix("dev", "db"), segment)
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))

    restored = setup.root / "restored-corrupt"
    port = pg_cluster_factory.adopt_restored(restored)
    done = setup.envsteward(
        "pitr",
        "restore",
        SELECTOR,
        "--to-latest",
        "--data-dir",
        str(restored),
        "--port",
        str(port),
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stopped during recovery" in done.stderr
    assert segment in done.stderr  # the server log's FATAL line names the segment via wal fetch's message
    log = restored.with_name(restored.name + ".log").read_text()
    assert "authentication failed" in log
    assert "database system is ready to accept connections" not in log
