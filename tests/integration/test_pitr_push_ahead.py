"""The archive-ahead pusher (:mod:`envsteward.pitr.push_ahead`) on real WAL segments and the embedded
default's two filesystem stores: it never lets ``wal push`` answer 0 for a segment that is not stored in
both regions. A pusher killed with SIGKILL mid-push, a store down longer than a retry, a different file
under the same name already in the store; leftovers cleaned by the next pusher."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envsteward.errors import ConflictError, EnvstewardError, TransientError
from envsteward.pitr import push_ahead
from envsteward.pitr.archive import WalArchive, WalNotFoundError, fetch_wal, push_wal
from envsteward.pitr.walnames import wal_object_key
from tests.fixtures.pg_cluster import ClusterFactory, wait_for
from tests.integration.test_pitr_archive import archive, segments

TARGET = "dev/db"


@pytest.fixture
def pg_wal(pg_cluster_factory: ClusterFactory, tmp_path: Path) -> Path:
    """A ``pg_wal`` copy with three real segments marked ``.ready`` (PostgreSQL's layout)."""
    cluster = pg_cluster_factory("ahead")
    folder = tmp_path / "data" / "pg_wal"
    (folder / "archive_status").mkdir(parents=True)
    for path in segments(cluster, 3):
        shutil.copy(path, folder / path.name)
        (folder / "archive_status" / f"{path.name}.ready").touch()
    return folder


def names(pg_wal: Path) -> list[str]:
    return sorted(p.name for p in pg_wal.iterdir() if len(p.name) == 24)


def push_one_with(wal: WalArchive) -> Callable[[str, Path], Mapping[str, Any]]:
    """The pusher's ``push_one`` as ``wal push`` builds it (envsteward.cli.wal._run_pusher)."""

    def push_one(name: str, path: Path) -> Mapping[str, Any]:
        result = push_wal(wal, path)
        return {
            "key": result.key,
            "regions": ["primary", "dr"],
            "status": result.status,
            "size": result.size,
            "sha256": result.sha256,
        }

    return push_one


class Pusher:
    """A pusher running in a thread of this process (its flock is seen by ``answer`` like another
    process's); ``events`` collects what it reported."""

    def __init__(self, pg_wal: Path, wal: WalArchive, idle: float = 0.5) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(
                push_ahead.run_pusher(
                    pg_wal,
                    push_one_with(wal),
                    target=TARGET,
                    config=push_ahead.config_stamp(),
                    idle_seconds=idle,
                    describe_error=str,
                    on_event=lambda kind, fields: self.events.append((kind, dict(fields))),
                )
            ),
            daemon=True,
        )
        self.thread.start()
        assert push_ahead.wait_started(pg_wal / push_ahead.SPOOL_NAME, 10)

    def errors(self) -> int:
        return sum(1 for kind, _ in self.events if kind == "error")

    def join(self) -> int:
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.result[0]


def ask(
    name: str, path: Path, target: str = TARGET, *, wait: float = push_ahead.WAIT_SECONDS
) -> tuple[int, str] | None:
    """``push_ahead.answer`` under this process's configuration stamp (as ``wal push`` asks it)."""
    return push_ahead.answer(name, path, target, push_ahead.config_stamp(), wait=wait)


def stored(pg_wal: Path, name: str) -> bool:
    """``wal push`` of ``name`` would exit 0 now."""
    answered = ask(name, pg_wal / name, wait=0.1)
    return answered is not None and answered[0] == 0


def mark_done(pg_wal: Path, name: str) -> None:
    """What PostgreSQL does after archive_command returned 0."""
    status = pg_wal / "archive_status"
    os.replace(status / f"{name}.ready", status / f"{name}.done")


def test_pushed_segments_are_proven_by_their_ok_and_stale_ones_cleaned(pg_wal: Path, tmp_path: Path) -> None:
    wal = archive(tmp_path / "home")
    pusher = Pusher(pg_wal, wal)
    assert pusher.join() == 3  # exits once idle
    spool = pg_wal / push_ahead.SPOOL_NAME
    for name in names(pg_wal):
        code, line = ask(name, pg_wal / name, TARGET, wait=0) or (None, "")
        assert code == 0, line
        assert wal_object_key(wal.prefix, name) in line
        for region in ("primary", "dr"):
            fetched = tmp_path / f"{name}.{region}"
            fetch_wal(wal, name, fetched, region)  # type: ignore[arg-type]
            assert fetched.read_bytes() == (pg_wal / name).read_bytes()
    first, second, third = names(pg_wal)
    # another target, or a file that is not the one pushed: no answer (the full CLI pushes and checks)
    assert ask(first, pg_wal / first, "dev/other", wait=0) is None
    data = bytearray((pg_wal / second).read_bytes())
    data[5000] ^= 0xFF
    (pg_wal / second).write_bytes(bytes(data))
    assert ask(second, pg_wal / second, TARGET, wait=0) is None
    # a non-segment or a file outside PostgreSQL's layout: never answered
    assert ask("00000002.history", pg_wal / "00000002.history", TARGET, wait=0) is None
    loose = tmp_path / "loose" / first
    loose.parent.mkdir()
    shutil.copy(pg_wal / first, loose)
    assert ask(first, loose, TARGET, wait=0) is None

    # PostgreSQL archived the first: the next pusher removes its .ok (and a killed pusher's leftovers)
    mark_done(pg_wal, first)
    (spool / f".{third}.ok.99999.tmp").write_text("{")
    (spool / f"{third}.inflight").touch()
    (spool / f"{third}.error").write_text('{"message": "old"}')
    Pusher(pg_wal, wal).join()
    left = sorted(entry.name for entry in spool.iterdir())
    assert left == [".lock", f"{second}.ok", f"{third}.ok", "progress", "pusher.json"]


def test_a_different_file_already_in_the_store_is_an_error_never_ok(pg_wal: Path, tmp_path: Path) -> None:
    wal = archive(tmp_path / "home")
    first = names(pg_wal)[0]
    original = (pg_wal / first).read_bytes()
    different = bytearray(original)
    different[5000] ^= 0xFF
    (pg_wal / first).write_bytes(bytes(different))
    push_wal(wal, pg_wal / first)  # the store holds another file under this name
    (pg_wal / first).write_bytes(original)

    pusher = Pusher(pg_wal, wal, idle=1)
    spool = pg_wal / push_ahead.SPOOL_NAME
    message = wait_for(lambda: push_ahead.read_error(spool, first), 30, "the pusher's error")
    assert "DIFFERENT content" in message
    # never exit 0; no answer at all: the full CLI pushes itself and reports the conflict to PostgreSQL
    assert ask(first, pg_wal / first, wait=0.1) is None
    with pytest.raises(ConflictError, match="DIFFERENT content"):
        push_wal(wal, pg_wal / first)
    assert not (pg_wal / push_ahead.SPOOL_NAME / f"{first}.ok").exists()
    for later in names(pg_wal)[1:]:  # the segments after it are pushed meanwhile
        wait_for(lambda name=later: stored(pg_wal, name), 30, later)
    kinds = [fields for kind, fields in pusher.events if kind == "error"]
    assert kinds[0]["error"] == "ConflictError"
    assert kinds[0]["segment"] == first
    for name in names(pg_wal):
        mark_done(pg_wal, name)  # (only so that the pusher idles out for the test)
    # the stored object is still the other file: nothing was overwritten
    fetched = tmp_path / "fetched"
    fetch_wal(wal, first, fetched)
    assert fetched.read_bytes() == bytes(different)
    pusher.join()


class OutageStore:
    """A real filesystem store that refuses every call while ``down`` is set (a store outage)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down = inner, True

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise TransientError("the DR store at /objects-dr does not answer (test outage)")
            return method(*args, **kwargs)

        return call


def test_a_store_down_longer_than_a_retry_fails_the_segment_until_it_is_stored(
    pg_wal: Path, tmp_path: Path
) -> None:
    real = archive(tmp_path / "home")
    dr = OutageStore(real.dr)
    wal = replace(real, dr=dr)  # type: ignore[arg-type]
    first = names(pg_wal)[0]
    pusher = Pusher(pg_wal, wal, idle=1)
    wait_for(lambda: pusher.errors() >= 2, 30, "a second failed attempt (a retry)")
    assert "does not answer" in (push_ahead.read_error(pg_wal / push_ahead.SPOOL_NAME, first) or "")
    assert ask(first, pg_wal / first, wait=0.1) is None  # the full CLI pushes itself, and fails the same
    with pytest.raises(TransientError, match="does not answer"):
        push_wal(wal, pg_wal / first)
    assert not list((pg_wal / push_ahead.SPOOL_NAME).glob("*.ok"))
    real.primary.get_bytes(wal_object_key(real.prefix, first))  # the primary has it: not enough
    with pytest.raises(WalNotFoundError):
        fetch_wal(real, first, tmp_path / "x", "dr")

    dr.down = False
    for name in names(pg_wal):
        wait_for(lambda n=name: stored(pg_wal, n), 30, f"{name} stored")
        fetch_wal(real, name, tmp_path / f"{name}.dr", "dr")
        mark_done(pg_wal, name)
    pusher.join()
    assert not (pg_wal / push_ahead.SPOOL_NAME / f"{first}.error").exists()


class BlockingStore:
    """A real filesystem store whose ``put_if_absent`` says where it is, then hangs (to be killed)."""

    def __init__(self, inner: Any, entered: Path) -> None:
        self.inner, self.entered = inner, entered

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self.entered.touch()
        time.sleep(600)
        return bool(self.inner.put_if_absent(key, data))


def _killed_pusher(pg_wal: Path, home: Path, entered: Path) -> None:
    real = archive(home)
    wal = replace(real, dr=BlockingStore(real.dr, entered))  # type: ignore[arg-type]
    push_ahead.run_pusher(
        pg_wal,
        push_one_with(wal),
        target=TARGET,
        config=push_ahead.config_stamp(),
        workers=1,
        idle_seconds=600,
    )


@pytest.fixture
def forked() -> Iterator[list[multiprocessing.Process]]:
    processes: list[multiprocessing.Process] = []
    yield processes
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(10)


def test_a_pusher_killed_mid_push_leaves_no_ok_and_the_next_one_cleans_up(
    pg_wal: Path, tmp_path: Path, forked: list[multiprocessing.Process]
) -> None:
    home, entered = tmp_path / "home", tmp_path / "entered"
    wal = archive(home)
    first = names(pg_wal)[0]
    spool = pg_wal / push_ahead.SPOOL_NAME
    process = multiprocessing.get_context("fork").Process(target=_killed_pusher, args=(pg_wal, home, entered))
    forked.append(process)
    process.start()
    wait_for(entered.exists, 30, "the pusher to reach the DR store")  # the primary holds it already
    os.kill(process.pid or 0, signal.SIGKILL)
    process.join(10)

    assert not (spool / f"{first}.ok").exists()
    assert (spool / f"{first}.inflight").exists()  # a leftover
    assert not push_ahead.pusher_running(spool)
    started = time.monotonic()
    assert ask(first, pg_wal / first, TARGET) is None  # no pusher: the caller pushes
    assert time.monotonic() - started < 5  # it did not wait for a dead pusher
    with pytest.raises((WalNotFoundError, EnvstewardError)):
        fetch_wal(wal, first, tmp_path / "x", "dr")

    Pusher(pg_wal, wal).join()
    assert not (spool / f"{first}.inflight").exists()
    assert ask(first, pg_wal / first, TARGET, wait=0) is not None
    fetch_wal(wal, first, tmp_path / "y", "dr")
    assert (tmp_path / "y").read_bytes() == (pg_wal / first).read_bytes()


def test_a_pusher_failing_for_good_holds_nothing_back_and_is_retired(pg_wal: Path, tmp_path: Path) -> None:
    """The pusher's DR client is broken for good (a token that expired in it; a new process logs in
    afresh). Its .error used to fail every wal push while it ran, and with segments always ready it never
    idled out: PostgreSQL kept its WAL until the disk filled. Now wal push pushes itself, and once that
    succeeded where the pusher failed, the pusher is retired (the next wal push starts a fresh one)."""
    real = archive(tmp_path / "home")
    broken = OutageStore(real.dr)  # down for the pusher only
    pusher = Pusher(pg_wal, replace(real, dr=broken), idle=600)  # type: ignore[arg-type]
    spool = pg_wal / push_ahead.SPOOL_NAME
    first = names(pg_wal)[0]
    wait_for((spool / f"{first}.error").exists, 30, "the pusher's error")
    assert ask(first, pg_wal / first, wait=0.1) is None
    push_wal(real, pg_wal / first)  # what wal push then does: it works in a fresh process
    assert push_ahead.retire_after_error(spool, first)
    assert pusher.join() == 0  # exited, with segments still ready
    assert not push_ahead.pusher_running(spool)
    assert not list(spool.glob("*.ok"))


def test_a_pusher_of_another_target_or_configuration_is_retired(pg_wal: Path, tmp_path: Path) -> None:
    wal = archive(tmp_path / "home")
    pusher = Pusher(pg_wal, wal, idle=600)
    spool = pg_wal / push_ahead.SPOOL_NAME
    first = names(pg_wal)[0]
    wait_for(lambda: stored(pg_wal, first), 30, "the first segment stored")
    stamp = push_ahead.config_stamp()
    assert not push_ahead.retire_foreign(spool, TARGET, stamp)  # ours: kept
    # archive_command now names another target: the pusher's records prove nothing for it
    assert push_ahead.answer(first, pg_wal / first, "dev/other", stamp, wait=5) is None
    assert push_ahead.retire_foreign(spool, "dev/other", stamp)
    assert pusher.join() >= 1
    assert not push_ahead.pusher_running(spool)


def test_a_catalog_change_voids_the_records_and_stops_the_pusher(
    pg_wal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DR region, another store or key added to the catalog while the pusher runs: the pusher built its
    archive from the old catalog, so its .ok records must not answer for the new one (exit 0 for a
    segment the new DR store never received), and it must stop (under load it would never idle out)."""
    from envsteward.cli.entry import push_from_spool

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "environments.yaml").write_text("environments: []\n")
    monkeypatch.setenv("ENVSTEWARD_CATALOG", str(catalog))
    wal = archive(tmp_path / "home")
    pusher = Pusher(pg_wal, wal, idle=600)
    first = names(pg_wal)[0]
    argv = ["--target", TARGET, str(pg_wal / first)]
    answered = wait_for(lambda: push_from_spool(argv), 30, "the fast path's answer")
    assert answered[0] == 0
    (catalog / "environments.yaml").write_text("environments: []  # a DR region added\n")
    assert push_from_spool(argv) is None  # the full CLI pushes under the new catalog
    assert pusher.join() >= 1  # exits although segments are still ready


def test_a_full_disk_under_the_spool_records_nothing_and_the_pusher_keeps_going(
    pg_wal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the pusher writes a .ok or .error (pg_wal's disk full: exactly when archiving must
    drain it). The pusher used to die with the error, to be forked again by the next wal push and die
    again. Now the segment has no .ok (wal push pushes it itself: the store says already archived) and
    the pusher retries it later. (The one mock: a full disk cannot be made here.)"""
    import errno

    real_write = push_ahead._write_record
    full = threading.Event()
    full.set()

    def write_record(spool: Path, filename: str, record: Mapping[str, Any]) -> None:
        if full.is_set() and filename.endswith((".ok", ".error")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(spool, filename, record)

    monkeypatch.setattr(push_ahead, "_write_record", write_record)
    wal = archive(tmp_path / "home")
    pusher = Pusher(pg_wal, wal, idle=600)
    spool = pg_wal / push_ahead.SPOOL_NAME
    first = names(pg_wal)[0]
    wait_for(lambda: pusher.errors() >= 2, 30, "the full disk reported, twice")
    assert pusher.thread.is_alive()
    assert push_ahead.pusher_running(spool)
    assert ask(first, pg_wal / first, wait=0.1) is None
    assert push_wal(wal, pg_wal / first).status == "already-archived"  # what wal push then does
    full.clear()  # space again: the next retry records the .ok
    for name in names(pg_wal):
        wait_for(lambda n=name: stored(pg_wal, n), 30, f"{name} recorded")
        mark_done(pg_wal, name)
    push_ahead.retire_foreign(spool, "dev/stop-the-test", "")
    pusher.join()


def test_two_pushers_racing_at_start_one_pushes_the_other_returns(pg_wal: Path, tmp_path: Path) -> None:
    """Two wal push calls fork a pusher at the same moment: the flock lets one run; the other returns 0
    at once without touching the spool (no cleanup under a running pusher's feet)."""
    wal = archive(tmp_path / "home")
    barrier = threading.Barrier(2)
    results: list[int] = []

    def race() -> None:
        barrier.wait()
        stamp = push_ahead.config_stamp()
        results.append(
            push_ahead.run_pusher(pg_wal, push_one_with(wal), target=TARGET, config=stamp, idle_seconds=0.5)
        )

    threads = [threading.Thread(target=race, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 3]
    for name in names(pg_wal):
        assert stored(pg_wal, name)
