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

from envsteward.errors import EnvstewardError, TransientError
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


def stored(pg_wal: Path, name: str) -> bool:
    """``wal push`` of ``name`` would exit 0 now."""
    answered = push_ahead.answer(name, pg_wal / name, TARGET, wait=0.1)
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
        code, line = push_ahead.answer(name, pg_wal / name, TARGET, wait=0) or (None, "")
        assert code == 0, line
        assert wal_object_key(wal.prefix, name) in line
        for region in ("primary", "dr"):
            fetched = tmp_path / f"{name}.{region}"
            fetch_wal(wal, name, fetched, region)  # type: ignore[arg-type]
            assert fetched.read_bytes() == (pg_wal / name).read_bytes()
    first, second, third = names(pg_wal)
    # another target, or a file that is not the one pushed: no answer (the full CLI pushes and checks)
    assert push_ahead.answer(first, pg_wal / first, "dev/other", wait=0) is None
    data = bytearray((pg_wal / second).read_bytes())
    data[5000] ^= 0xFF
    (pg_wal / second).write_bytes(bytes(data))
    assert push_ahead.answer(second, pg_wal / second, TARGET, wait=0) is None
    # a non-segment or a file outside PostgreSQL's layout: never answered
    assert push_ahead.answer("00000002.history", pg_wal / "00000002.history", TARGET, wait=0) is None
    loose = tmp_path / "loose" / first
    loose.parent.mkdir()
    shutil.copy(pg_wal / first, loose)
    assert push_ahead.answer(first, loose, TARGET, wait=0) is None

    # PostgreSQL archived the first: the next pusher removes its .ok (and a killed pusher's leftovers)
    mark_done(pg_wal, first)
    (spool / f".{third}.ok.99999.tmp").write_text("{")
    (spool / f"{third}.inflight").touch()
    (spool / f"{third}.error").write_text('{"message": "old"}')
    Pusher(pg_wal, wal).join()
    left = sorted(entry.name for entry in spool.iterdir())
    assert left == [".lock", f"{second}.ok", f"{third}.ok", "progress"]


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
    answered = wait_for(
        lambda: push_ahead.answer(first, pg_wal / first, TARGET, wait=0.1), 30, "the pusher's error"
    )
    code, message = answered
    assert code == 1
    assert "DIFFERENT content" in message
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
    code, message = push_ahead.answer(first, pg_wal / first, TARGET, wait=0.1) or (None, "")
    assert code == 1
    assert "does not answer" in message
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
    push_ahead.run_pusher(pg_wal, push_one_with(wal), target=TARGET, workers=1, idle_seconds=600)


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
    assert push_ahead.answer(first, pg_wal / first, TARGET) is None  # no pusher: the caller pushes
    assert time.monotonic() - started < 5  # it did not wait for a dead pusher
    with pytest.raises((WalNotFoundError, EnvstewardError)):
        fetch_wal(wal, first, tmp_path / "x", "dr")

    Pusher(pg_wal, wal).join()
    assert not (spool / f"{first}.inflight").exists()
    assert push_ahead.answer(first, pg_wal / first, TARGET, wait=0) is not None
    fetch_wal(wal, first, tmp_path / "y", "dr")
    assert (tmp_path / "y").read_bytes() == (pg_wal / first).read_bytes()
