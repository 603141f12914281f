"""The archive-ahead end to end: a real cluster archives through ``wal push`` (archive-ahead on, the
default) under pgbench, its pusher is killed with SIGKILL and archiving goes on, and a point-in-time
restore then reaches the latest row; ``pitr status`` / ``pitr check`` report the pusher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from envsteward.pitr.push_ahead import SPOOL_NAME
from tests.fixtures.pg_cluster import ClusterFactory, pgbench_command, wait_for
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    insert,
    pitr_setup,
    restored_ids,
    switch_and_wait_archived,
)


def _archiver(cluster) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    archived, failed = cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
    return int(archived), int(failed)


def test_archiving_through_the_archive_ahead_under_pgbench_then_restore_to_latest(
    pg_cluster_factory: ClusterFactory,
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 4))
    switch_and_wait_archived(cluster)
    setup.envsteward("pitr", "base-backup", SELECTOR)

    for args in (("-i", "-s", "4", "-q"), ("-c", "2", "-T", "5", "-n")):
        subprocess.run(pgbench_command(cluster.port, *args), check=True, capture_output=True, timeout=300)
    insert(cluster, range(4, 7))
    switch_and_wait_archived(cluster, timeout=180)
    archived, failed = _archiver(cluster)
    assert failed == 0, cluster.log()[-3000:]
    assert archived >= 5  # pgbench -i -s 4 alone writes several segments

    spool = cluster.data_dir / "pg_wal" / SPOOL_NAME
    assert (spool / ".lock").exists()
    status = wait_for(lambda: _pusher(setup, minimum=3), 30, "pitr status to show 3 segments pushed")
    assert status["running"] is True, status
    assert status["last_error"] is None
    check = setup.envsteward("pitr", "check", SELECTOR, check=False)
    assert "archive-ahead: pusher running" in check.stdout, check.stdout

    # SIGKILL the pusher: the next archive_command finds no pusher, starts another, nothing is lost
    os.kill(int(status["pid"]), signal.SIGKILL)
    wait_for(lambda: not _lock_held(spool), 10, "the killed pusher's lock to go")
    insert(cluster, range(7, 10))
    switch_and_wait_archived(cluster, timeout=120)
    assert _archiver(cluster)[1] == 0, cluster.log()[-3000:]
    assert _lock_held(spool)
    newer = json.loads(setup.envsteward("pitr", "status", SELECTOR).stdout)["archive"]["archive_ahead"]
    assert newer["pid"] != status["pid"]
    assert newer["running"]

    insert(cluster, range(10, 12))
    switch_and_wait_archived(cluster)
    cluster.stop("immediate")
    latest = setup.root / "restored-latest"
    port = pg_cluster_factory.adopt_restored(latest)
    setup.envsteward(
        "pitr", "restore", SELECTOR, "--to-latest", "--data-dir", str(latest), "--port", str(port), "--json"
    )
    assert restored_ids(port) == list(range(1, 12))


def _pusher(setup, minimum: int) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    status = json.loads(setup.envsteward("pitr", "status", SELECTOR).stdout)["archive"]["archive_ahead"]
    return status if status["pushed"] >= minimum else None


def _lock_held(spool) -> bool:  # type: ignore[no-untyped-def]
    from envsteward.pitr.push_ahead import pusher_running

    return pusher_running(spool)


def test_turned_off_in_the_catalog_pushes_synchronously(pg_cluster_factory: ClusterFactory) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    setup.write_catalog(cluster.port, archive_ahead={"enabled": False})
    cluster.execute("CREATE TABLE t (id int)")
    switch_and_wait_archived(cluster)
    switch_and_wait_archived(cluster)
    # the read-only commands create nothing in pg_wal either (they read the pusher's recorded state)
    setup.envsteward("pitr", "status", SELECTOR)
    setup.envsteward("pitr", "check", SELECTOR, check=False)
    time.sleep(0.2)
    assert not (cluster.data_dir / "pg_wal" / SPOOL_NAME).exists()
    assert not [p.name for p in (cluster.data_dir / "pg_wal").iterdir() if "envsteward" in p.name]
    assert _archiver(cluster)[1] == 0


def test_a_catalog_change_retires_the_pusher_and_its_records(pg_cluster_factory: ClusterFactory) -> None:
    """The catalog changes while the pusher runs (here the zstd level; a DR region or another store the
    same way): the pusher built its archive from the old catalog, so it exits by itself, its records
    answer nothing, and the next wal push starts one under the new catalog; PostgreSQL sees no failure."""
    from envsteward.pitr.push_ahead import PUSHER_FILE, pusher_running

    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    spool = cluster.data_dir / "pg_wal" / SPOOL_NAME
    for ids in (range(1, 3), range(3, 5)):
        insert(cluster, ids)
        switch_and_wait_archived(cluster)
    wait_for(lambda: pusher_running(spool), 10, "the pusher")
    first = json.loads((spool / PUSHER_FILE).read_text())

    setup.write_catalog(cluster.port, zstd_level=3)
    wait_for(lambda: not pusher_running(spool), 10, "the pusher of the old catalog to exit")
    for ids in (range(5, 7), range(7, 9)):
        insert(cluster, ids)
        switch_and_wait_archived(cluster)
    wait_for(lambda: pusher_running(spool), 10, "a pusher under the new catalog")
    second = json.loads((spool / PUSHER_FILE).read_text())
    assert second["pid"] != first["pid"]
    assert second["config"] != first["config"]
    for ok in spool.glob("*.ok"):
        assert json.loads(ok.read_text())["config"] == second["config"], ok.name
    assert _archiver(cluster)[1] == 0, cluster.log()[-3000:]
