"""``wal push`` / ``wal fetch`` on real WAL segments from throwaway clusters, into the embedded default's
two stores: idempotent pushes, refused rewrites, corrupt/renamed/foreign segments, missing files, and a
push killed at random moments never leaving a partial object that fetch could see."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.errors import ConflictError, IntegrityError
from envsteward.pitr.archive import WalArchive, WalNotFoundError, fetch_wal, push_wal
from envsteward.pitr.walnames import archive_prefix, wal_object_key
from tests.fixtures.pg_cluster import ClusterFactory, PgCluster, give_to_db_user
from tests.integration._pitr_setup import SELECTOR, pitr_setup

ENVSTEWARD = str(Path(sys.executable).parent / "envsteward")


def segments(cluster: PgCluster, count: int) -> list[Path]:
    """``count`` completed segments of ``cluster`` (archiving off: they stay in pg_wal until a checkpoint)."""
    cluster.execute("CREATE TABLE IF NOT EXISTS filler (x int)")
    names = []
    for index in range(count):
        cluster.execute("INSERT INTO filler VALUES (%s)", (index,))
        names.append(cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    return [cluster.data_dir / "pg_wal" / name for name in names]


@pytest.fixture
def two_clusters(pg_cluster_factory: ClusterFactory, tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Copies of real segments: three of one cluster, one of another (a different system identifier)."""
    first, second = pg_cluster_factory("a"), pg_cluster_factory("b")
    copies: tuple[list[Path], list[Path]] = ([], [])
    for cluster, found, count in ((first, copies[0], 3), (second, copies[1], 1)):
        folder = tmp_path / cluster.data_dir.name
        folder.mkdir()
        for path in segments(cluster, count):
            found.append(Path(shutil.copy(path, folder / path.name)))
    return copies


def archive(home: Path) -> WalArchive:
    return WalArchive(
        primary=FilesystemObjectStore(home / "objects"),
        dr=FilesystemObjectStore(home / "objects-dr"),
        keys=LocalKeyProvider(home / "keys" / "backup.key"),
        prefix=archive_prefix("dev", "db"),
    )


def test_push_twice_same_content_succeeds_different_content_is_refused(
    two_clusters: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    ours, _ = two_clusters
    wal = archive(tmp_path / "home")
    first = push_wal(wal, ours[0])
    assert (first.status, first.dr_status) == ("archived", "archived")
    again = push_wal(wal, ours[0])
    assert (again.status, again.dr_status) == ("already-archived", "already-archived")
    key = wal_object_key(wal.prefix, ours[0].name)
    assert wal.primary.get_bytes(key) == wal.dr.get_bytes(key)  # type: ignore[union-attr]
    assert first.stored_size < first.size  # compressed

    changed = tmp_path / "changed" / ours[0].name
    changed.parent.mkdir()
    data = bytearray(ours[0].read_bytes())
    data[5000] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(ConflictError, match="DIFFERENT content"):
        push_wal(wal, changed)

    restored = tmp_path / "restored"
    result = fetch_wal(wal, ours[0].name, restored)
    assert restored.read_bytes() == ours[0].read_bytes()
    assert result.region == "primary"


def test_corrupt_renamed_foreign_and_missing_segments(
    two_clusters: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    ours, theirs = two_clusters
    wal = archive(tmp_path / "home")
    for path in ours:
        push_wal(wal, path)
    with pytest.raises(IntegrityError, match="system identifier"):
        push_wal(wal, theirs[0])  # another cluster's segment

    # a flipped byte in the stored object: fetch fails, names the segment, writes nothing
    key = wal_object_key(wal.prefix, ours[1].name)
    stored = bytearray(wal.primary.get_bytes(key))
    stored[len(stored) // 2] ^= 0x01
    wal.primary.put_bytes(key, bytes(stored))
    destination = tmp_path / "RECOVERYXLOG"
    with pytest.raises(IntegrityError, match=ours[1].name):
        fetch_wal(wal, ours[1].name, destination)
    assert not destination.exists()

    # one segment's object stored under another's name: the header's id does not match
    other = wal_object_key(wal.prefix, ours[2].name)
    wal.dr.put_bytes(other, wal.dr.get_bytes(wal_object_key(wal.prefix, ours[0].name)))  # type: ignore[union-attr]
    with pytest.raises(IntegrityError, match="written as"):
        fetch_wal(wal, ours[2].name, destination, "dr")

    with pytest.raises(WalNotFoundError):
        fetch_wal(wal, "00000002.history", destination)


def test_cli_exit_codes_for_restore_command(
    pg_cluster_factory: ClusterFactory, two_clusters: tuple[list[Path], list[Path]]
) -> None:
    """Missing: exit 1 and silence (PostgreSQL probes); corrupt: exit 126 (PostgreSQL stops recovery)."""
    setup = pitr_setup(pg_cluster_factory)
    setup.write_catalog(5432)
    (setup.root / "segments").mkdir()
    ours = [Path(shutil.copy(path, setup.root / "segments" / path.name)) for path in two_clusters[0]]
    give_to_db_user(setup.root)
    push = setup.envsteward("wal", "push", "--target", SELECTOR, str(ours[0]), check=False)
    assert push.returncode == 0, push.stderr
    destination = setup.root / "out"
    missing = setup.envsteward(
        "wal", "fetch", "--target", SELECTOR, "00000002.history", str(destination), check=False
    )
    assert (missing.returncode, missing.stderr) == (1, "")
    ok = setup.envsteward("wal", "fetch", "--target", SELECTOR, ours[0].name, str(destination), check=False)
    assert ok.returncode == 0
    assert destination.read_bytes() == ours[0].read_bytes()

    key = setup.home / "objects" / wal_object_key(archive_prefix("dev", "db"), ours[0].name)
    data = bytearray(key.read_bytes())
    data[-20] ^= 0x40
    key.write_bytes(bytes(data))
    bad = setup.envsteward(
        "wal", "fetch", "--target", SELECTOR, ours[0].name, str(setup.root / "x"), check=False
    )
    assert bad.returncode == 126
    assert ours[0].name in bad.stderr
    assert "authentication failed" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    rewrite = setup.root / "rewrite" / ours[0].name
    rewrite.parent.mkdir()
    rewrite.write_bytes(ours[1].read_bytes())
    give_to_db_user(rewrite.parent)
    refused = setup.envsteward("wal", "push", "--target", SELECTOR, str(rewrite), check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("envsteward wal push: error:")


def test_a_killed_push_leaves_no_partial_object(
    two_clusters: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    """SIGKILL ``wal push`` at increasing moments: fetch then finds either nothing or the whole segment."""
    ours, _ = two_clusters
    home = tmp_path / "home"
    catalog = tmp_path / "catalog"
    from tests.integration._pitr_setup import PitrSetup

    setup = PitrSetup(root=tmp_path, home=home, catalog=catalog, executable=ENVSTEWARD)
    setup.write_catalog(5432)
    env = {**setup.env, "PATH": "/usr/bin:/bin"}
    wal = archive(home)
    outcomes = set()
    for attempt, delay in enumerate((0.2, 0.35, 0.5, 0.7, 0.9, 1.2)):
        name = ours[attempt % len(ours)].name
        for store in (wal.primary, wal.dr):
            store.delete(wal_object_key(wal.prefix, name))  # type: ignore[union-attr]
        proc = subprocess.Popen(
            [ENVSTEWARD, "wal", "push", "--target", SELECTOR, str(ours[attempt % len(ours)])], env=env
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        destination = tmp_path / f"fetched-{attempt}"
        try:
            fetch_wal(wal, name, destination)
        except WalNotFoundError:
            outcomes.add("absent")
            continue
        assert destination.read_bytes() == ours[attempt % len(ours)].read_bytes()
        outcomes.add("whole")
    assert outcomes  # each attempt ended in one of the two states; never a partial or corrupt object
