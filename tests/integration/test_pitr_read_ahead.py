"""The read-ahead of a restore against a real archive (a throwaway cluster archiving with ``wal push``): the
``sh`` restore_command run the way PostgreSQL runs it, ``envsteward wal prefetch`` started before the
"server", negative answers for PostgreSQL's probes, and what happens when the archive changes meanwhile:
a history file or a segment that appears later is found."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from envsteward.pitr import prefetch
from envsteward.pitr.restore import restore_command
from tests.fixtures.pg_cluster import ClusterFactory, as_db_user, give_to_db_user
from tests.integration._pitr_setup import (
    SELECTOR,
    archiving_cluster,
    insert,
    pitr_setup,
    restored_ids,
    switch_and_wait_archived,
)

HISTORY = b"1\t0/5000000\tno recovery target specified\n"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    until = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_probes_are_answered_absent_until_a_history_file_or_segment_appears(
    pg_cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int)")
    last = switch_and_wait_archived(cluster)
    after = prefetch.next_segment(last, 16 << 20)
    # a data directory being restored (only what the read-ahead looks at), with an awkward name
    data_dir = setup.root / "restored 'data' $dir"
    pg_wal = data_dir / "pg_wal"
    pg_wal.mkdir(parents=True)
    give_to_db_user(data_dir)
    monkeypatch.setenv("ENVSTEWARD_EXECUTABLE", setup.executable)
    command = restore_command(setup.home, setup.catalog, SELECTOR, "any")
    history_path = pg_wal / "RECOVERYHISTORY"

    def restore(name: str, path: str) -> int:
        """PostgreSQL's call: %f/%p substituted, /bin/sh -c, in the data directory, as its OS user."""
        line = command.replace("%f", name).replace("%p", path)
        return subprocess.run(
            as_db_user(["/bin/sh", "-c", line], setup.env), cwd=data_dir, check=False, timeout=120
        ).returncode

    reader = subprocess.Popen(
        as_db_user([setup.executable, "wal", "prefetch", "--target", SELECTOR, last, str(pg_wal)], setup.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        (data_dir / "recovery.signal").touch()  # the restore is ready: the read-ahead starts
        give_to_db_user(data_dir)
        spool = pg_wal / prefetch.SPOOL_NAME
        wait_for((spool / last).exists, "the first segment in the spool")
        wait_for(lambda: prefetch.known_absent(after, pg_wal / "RECOVERYXLOG"), "the end listed as absent")
        assert prefetch.known_absent("00000002.history", history_path)

        assert restore(last, "pg_wal/RECOVERYXLOG") == 0
        assert (pg_wal / "RECOVERYXLOG").stat().st_size == 16 << 20
        assert restore("00000002.history", "pg_wal/RECOVERYHISTORY") == 1
        assert restore(after, "pg_wal/RECOVERYXLOG") == 1
        assert not history_path.exists()

        # another cluster promoted on this archive meanwhile: its history file is found, not "absent"
        pushed = setup.root / "00000002.history"
        pushed.write_bytes(HISTORY)
        give_to_db_user(pushed)
        setup.envsteward("wal", "push", "--target", SELECTOR, str(pushed))
        wait_for(
            lambda: restore("00000002.history", "pg_wal/RECOVERYHISTORY") == 0,
            "the new history file restored",
            timeout=prefetch.FRESH_SECONDS + prefetch.REFRESH_SECONDS + 60,
        )
        assert history_path.read_bytes() == HISTORY
        # the source keeps archiving: the next segment is found too
        cluster.execute("INSERT INTO t VALUES (1)")
        assert switch_and_wait_archived(cluster) == after
        wait_for(lambda: restore(after, "pg_wal/RECOVERYXLOG") == 0, "the new segment restored")

        (data_dir / "recovery.signal").unlink()  # "promoted": the read-ahead cleans up and ends
        assert reader.wait(timeout=prefetch.LINGER_SECONDS + 60) == 0, reader.stderr
        assert sorted(path.name for path in spool.iterdir()) == [".lock"]
    finally:
        if reader.poll() is None:
            reader.terminate()
            reader.wait(timeout=30)


def test_a_restore_with_read_ahead_off_uses_the_plain_command_and_no_spool(
    pg_cluster_factory: ClusterFactory,
) -> None:
    setup = pitr_setup(pg_cluster_factory)
    cluster = archiving_cluster(pg_cluster_factory, setup)
    cluster.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    insert(cluster, range(1, 3))
    setup.envsteward("pitr", "base-backup", SELECTOR)
    insert(cluster, range(3, 6))
    switch_and_wait_archived(cluster)
    insert(cluster, range(6, 8))
    switch_and_wait_archived(cluster)

    restored = setup.root / "restored-read-ahead-off"
    port = pg_cluster_factory.adopt_restored(restored)
    env = {**setup.env, "ENVSTEWARD_EXECUTABLE": setup.executable, "ENVSTEWARD_WAL_PREFETCH": "0"}
    args = ["pitr", "restore", SELECTOR, "--to-latest", "--data-dir", str(restored), "--port", str(port)]
    done = subprocess.run(
        as_db_user([setup.executable, *args, "--json"], env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=setup.root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert restored_ids(port) == list(range(1, 8))
    settings = (restored / "postgresql.auto.conf").read_text()
    assert "wal fetch" in settings
    assert "mv -f" not in settings
    assert not (restored / "pg_wal" / prefetch.SPOOL_NAME).exists()
