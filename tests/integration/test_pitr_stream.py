"""``wal stream`` on a throwaway cluster: pg_receivewal with a replication slot pushes completed segments
and, every second, the segment being written; after a hard kill a restore to latest from the DR region
alone loses at most a few seconds of commits, although ``archive_timeout`` (300 s) never closed the
segment those commits are in."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.fixtures.pg_cluster import ClusterFactory, as_db_user, wait_for
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    pitr_setup,
    restore_latest_from_dr_only,
    restored_ids,
    switch_and_wait_archived,
)

PARTIAL_INTERVAL = 1.0


def stop_gently(process: subprocess.Popen[str]) -> None:
    """SIGTERM to envsteward itself: ``runuser`` (when we are root) would kill its session instead of
    letting the streamer finish its last push."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    for pid in pids or [str(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


ALLOWED_LOSS_SECONDS = 4.0


def test_streaming_restores_to_seconds_before_a_hard_kill(pg_cluster_factory: ClusterFactory) -> None:
    from envsteward.pitr.archive import STREAM_FOLDER
    from envsteward.pitr.walnames import archive_prefix

    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup, archive_timeout="'300s'")
    setup.write_catalog(cluster.port, streaming=True)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    switch_and_wait_archived(cluster)
    setup.envsteward("pitr", "base-backup", SELECTOR)

    streamer = subprocess.Popen(
        as_db_user(
            [
                setup.executable,
                "wal",
                "stream",
                "--target",
                SELECTOR,
                "--partial-interval",
                str(PARTIAL_INTERVAL),
            ],
            setup.env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=setup.root,
    )
    try:
        slot = "envsteward_dev_db"
        wait_for(
            lambda: cluster.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)),
            60,
            "the replication slot to be active",
        )
        partials = setup.home / "objects-dr" / archive_prefix("dev", "db") / STREAM_FOLDER
        committed: list[tuple[int, datetime]] = []
        ends = time.monotonic() + 8
        row = 0
        while time.monotonic() < ends:
            row += 1
            (at,) = cluster.execute("INSERT INTO t (id) VALUES (%s) RETURNING at", (row,))[0]
            committed.append((row, at.astimezone(UTC)))
            time.sleep(0.05)
        wait_for(lambda: list(partials.glob("*.partial")), 30, "a partial segment in the DR store")
        time.sleep(PARTIAL_INTERVAL * 2)  # the newest commits reach a partial push
        failure_at = datetime.now(UTC)
        cluster.stop("immediate")
    finally:
        stop_gently(streamer)
        _out, err = streamer.communicate(timeout=60)
    assert streamer.returncode == 0, err
    assert "envsteward wal stream: error" not in err, err

    outcome, port = restore_latest_from_dr_only(setup, pg_cluster_factory)  # the primary region is gone too
    ids = restored_ids(port)
    assert ids == list(range(1, len(ids) + 1)), "restored rows have a gap"
    assert ids, "no row after the base backup was restored: the partial segment was not used"
    last_restored_at = dict(committed)[ids[-1]]
    lost = (committed[-1][1] - last_restored_at).total_seconds()
    assert lost <= ALLOWED_LOSS_SECONDS, (lost, len(ids), len(committed), outcome)
    assert (failure_at - datetime.fromisoformat(outcome["last_replayed_commit"])).total_seconds() < 300
