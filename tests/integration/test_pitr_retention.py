"""Archiving survives an object-store outage (PostgreSQL keeps the segment, the next push succeeds, nothing
is lost), and ``pitr prune`` removes older base backups and only the WAL before the oldest kept one: a
restore of the oldest kept base backup to latest still has every row."""

from __future__ import annotations

import json
import time
from pathlib import Path

from envsteward.pitr.walnames import SegmentName
from tests.fixtures.pg_cluster import ClusterFactory
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    insert,
    pitr_setup,
    restored_ids,
    switch_and_wait_archived,
)


def wal_names(folder: str, setup_home: Path) -> list[str]:
    root = setup_home / folder / "dev" / "db.pitr" / "wal"
    return sorted(path.name for path in root.iterdir() if not path.name.startswith("."))


def test_outage_then_prune_then_restore_the_oldest_kept_base_backup(
    pg_cluster_factory: ClusterFactory,
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    setup.write_catalog(cluster.port, keep_base_backups=2)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 4))
    switch_and_wait_archived(cluster)
    setup.envsteward("pitr", "base-backup", SELECTOR, "--no-prune")
    insert(cluster, range(4, 7))
    switch_and_wait_archived(cluster)

    # outage of the primary store: pushes fail, PostgreSQL keeps the segment and retries
    primary = setup.home / "objects"
    primary.chmod(0o000)
    try:
        insert(cluster, range(7, 8))
        (segment,) = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0]
        deadline = time.monotonic() + 30
        while cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0:
            assert time.monotonic() < deadline, cluster.log()[-2000:]
            time.sleep(0.2)
        assert (cluster.data_dir / "pg_wal" / "archive_status" / f"{segment}.ready").exists()
    finally:
        primary.chmod(0o755)
    switch_and_wait_archived(cluster, timeout=120)  # the archiver retries (about every 60 s at worst)
    assert "Permission denied" in cluster.log() or "error:" in cluster.log()

    second = setup.envsteward("pitr", "base-backup", SELECTOR, "--no-prune").stdout.strip()
    insert(cluster, range(8, 10))
    switch_and_wait_archived(cluster)
    third = setup.envsteward("pitr", "base-backup", SELECTOR, "--no-prune").stdout.strip()
    insert(cluster, range(10, 11))
    switch_and_wait_archived(cluster)

    before = wal_names("objects", setup.home)
    plan = json.loads(setup.envsteward("pitr", "prune", SELECTOR).stdout.split("\ndeleted")[0])
    assert plan["keep_base"] == [second, third]
    assert len(plan["remove_base"]) == 1
    keep_from = SegmentName.parse(plan["keep_wal_from"]).segno()
    for folder in ("objects", "objects-dr"):
        after = wal_names(folder, setup.home)
        assert after, folder
        assert all(
            SegmentName.parse(name).segno() >= keep_from for name in after if not name.endswith(".history")
        )
        assert len(after) < len(before)

    restored = setup.root / "restored-oldest-kept"
    port = pg_cluster_factory.adopt_restored(restored)
    setup.envsteward(
        "pitr",
        "restore",
        SELECTOR,
        "--to-latest",
        "--backup",
        second,
        "--data-dir",
        str(restored),
        "--port",
        str(port),
    )
    assert restored_ids(port) == list(range(1, 11))
