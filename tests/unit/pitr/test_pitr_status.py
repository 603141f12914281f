"""The WAL archive status (newest segment, exposure vs RPO target, push failures, DR lag), the id rules of
``backup restore`` for PITR, when a drill uses PITR, and the postmaster finder's refusal of stale pid
files. Real filesystem stores and state store in a temporary folder."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.adapters.state_fs import FileStateStore
from envsteward.catalog.models import PitrSpec, PostgresBackup, SqliteBackup
from envsteward.drill.phases import uses_pitr
from envsteward.errors import ConfigurationError, TransientError
from envsteward.pitr.postmaster import postmaster_pid, stop_postmaster
from envsteward.pitr.restore import base_backup_selector, not_a_base_backup
from envsteward.pitr.status import (
    record_push_failure,
    status_notes,
    status_row,
    target_status,
)
from envsteward.pitr.walnames import archive_prefix, wal_object_key

SEG = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"]


def put_segments(store: FilesystemObjectStore, names: list[str]) -> None:
    for name in names:
        store.put_bytes(wal_object_key(archive_prefix("dev", "db"), name), b"x")


@pytest.fixture
def stores(tmp_path: Path) -> tuple[FilesystemObjectStore, FilesystemObjectStore, FileStateStore]:
    return (
        FilesystemObjectStore(tmp_path / "primary"),
        FilesystemObjectStore(tmp_path / "dr"),
        FileStateStore(tmp_path / "state"),
    )


def test_exposure_failures_and_dr_lag(
    stores: tuple[FilesystemObjectStore, FilesystemObjectStore, FileStateStore],
) -> None:
    primary, dr, state = stores
    empty = target_status("dev/db", primary=primary, dr=dr, state=state, rpo_target_seconds=300)
    assert empty.state == "empty"
    assert status_row(empty)["newest_segment"] == "-"

    put_segments(primary, SEG)
    put_segments(dr, SEG[:1])
    now = datetime.now(UTC)
    status = target_status("dev/db", primary=primary, dr=dr, state=state, rpo_target_seconds=300, now=now)
    assert status.primary.newest_segment == SEG[-1]
    assert status.state == "ok"
    assert status.dr_lag_segments == 2
    row = status_row(status)
    assert row["exposure"].endswith("/5m")
    assert row["dr_lag"].startswith("2 seg")
    assert row["failures"] == "0"
    assert status_notes(status) == []

    later = now + timedelta(minutes=10)
    stale = target_status("dev/db", primary=primary, dr=None, state=state, rpo_target_seconds=300, now=later)
    assert stale.state == "stale"
    assert status_row(stale)["dr_lag"] == "no DR"
    assert "above the RPO target of 5m" in status_notes(stale)[0]

    # a push fails after the newest segment: failing, by class and segment, never the message
    record_push_failure(state, "dev", "db", TransientError("bucket s3://secret-host/x unreachable"), SEG[-1])
    record_push_failure(state, "dev", "db", TransientError("again"), SEG[-1])
    failing = target_status("dev/db", primary=primary, dr=dr, state=state, rpo_target_seconds=300)
    assert failing.state == "failing"
    assert failing.failures.count == 2
    assert failing.failures.last_error == "TransientError"
    assert status_row(failing)["failures"] == "2 TransientError"
    assert "FAILING" in status_notes(failing)[0]
    stored = state.get("pitr-archive-failures/dev/db")
    assert "secret-host" not in str(stored)

    # archiving moves on: the count stays, the state is ok again
    put_segments(primary, ["000000010000000000000006"])
    again = target_status("dev/db", primary=primary, dr=dr, state=state, rpo_target_seconds=300)
    assert again.state == "ok"
    assert "moved on since" in status_notes(again)[0]


def test_backup_ids_for_pitr_restore() -> None:
    assert base_backup_selector("prod/orders-db.pitr/20240101T000000Z-ab12") == "prod/orders-db"
    assert base_backup_selector("prod/orders-db/20240101T000000Z-ab12") is None
    for invalid in ("../etc", "prod/.pitr/x"):
        with pytest.raises(ConfigurationError):
            base_backup_selector(invalid)
    message = str(not_a_base_backup("prod/orders-db/20240101T000000Z-ab12"))
    assert "not a PITR base backup" in message
    assert "backup list --target orders-db.pitr" in message
    assert "pitr status prod/orders-db" in message


def test_which_drills_use_pitr() -> None:
    dsn = "postgresql://backup@db:5432/orders"
    pitr = PostgresBackup(name="db", kind="postgres", dsn=dsn, pitr=PitrSpec(enabled=True))
    dump = PostgresBackup(name="db", kind="postgres", dsn=dsn)
    sqlite = SqliteBackup(name="db", kind="sqlite", path="/x.db")
    assert uses_pitr(pitr, "prod", "latest")
    assert uses_pitr(pitr, "prod", "random")
    assert uses_pitr(pitr, "prod", "prod/db.pitr/20240101T000000Z-ab12")
    assert not uses_pitr(pitr, "prod", "prod/db/20240101T000000Z-ab12")  # a dump of it drills the dump
    assert not uses_pitr(dump, "prod", "latest")
    assert not uses_pitr(sqlite, "prod", "latest")


def test_a_stale_pid_file_is_never_signalled(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert postmaster_pid(data) is None
    assert stop_postmaster(data) is True
    # a live process that is not a postmaster of this directory (its cwd is elsewhere)
    other = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        (data / "postmaster.pid").write_text(f"{other.pid}\n{data}\n")
        assert postmaster_pid(data) is None
        assert stop_postmaster(data) is True
        assert other.poll() is None  # untouched
        # the same process seen from its own directory IS found and stopped
        (tmp_path / "postmaster.pid").write_text(f"{other.pid}\n")
        assert postmaster_pid(tmp_path) == other.pid
        assert stop_postmaster(tmp_path, timeout=5) is True
        assert other.wait(timeout=5) is not None
    finally:
        if other.poll() is None:
            other.kill()
    assert os.path.exists(data)


def age_objects(root: Path, seconds: float) -> None:
    """Back-date every stored file (the filesystem store's ``modified`` is the file's mtime)."""
    when = datetime.now(UTC).timestamp() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))


def test_streamed_partials_are_counted_and_the_live_one_is_the_exposure(
    stores: tuple[FilesystemObjectStore, FilesystemObjectStore, FileStateStore],
) -> None:
    from envsteward.pitr.archive import partial_object_key

    primary, _dr, state = stores
    prefix = archive_prefix("dev", "db")
    put_segments(primary, SEG)
    primary.put_bytes(partial_object_key(prefix, SEG[1]), b"leftover")  # superseded by a whole segment
    age_objects(primary.root, 600)
    stale = target_status("dev/db", primary=primary, dr=None, state=state, rpo_target_seconds=300)
    assert stale.partials.count == 1
    assert stale.partials.newest_segment == SEG[1]
    assert not stale.live_partial, "a partial older than the newest whole segment is not the live edge"
    assert stale.state == "stale"
    assert stale.exposure_seconds is not None
    assert stale.exposure_seconds >= 600

    live = "000000010000000000000006"
    primary.put_bytes(partial_object_key(prefix, live), b"streaming")
    streaming = target_status("dev/db", primary=primary, dr=None, state=state, rpo_target_seconds=300)
    assert streaming.live_partial
    assert streaming.state == "ok"
    assert streaming.exposure_seconds is not None
    assert streaming.exposure_seconds < 60
    document = streaming.as_json()
    assert document["partials"] == 2
    assert document["newest_partial"] == live
    assert document["partial_age_seconds"] == streaming.exposure_seconds
    assert document["segment_age_seconds"] >= 600
    assert document["newest_segment"] == SEG[-1]
    row = status_row(streaming)
    assert row["partials"].startswith("2 ")
    assert row["exposure"].endswith("/5m")
    assert status_notes(streaming) == []

    # archive_command failing while streaming goes on: still failing (PostgreSQL keeps the segments)
    record_push_failure(state, "dev", "db", TransientError("x"), SEG[-1])
    primary.put_bytes(partial_object_key(prefix, live), b"streaming on")
    failing = target_status("dev/db", primary=primary, dr=None, state=state, rpo_target_seconds=300)
    assert failing.state == "failing"
