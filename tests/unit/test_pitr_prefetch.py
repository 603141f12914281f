"""The ``wal fetch`` read-ahead (envsteward.pitr.prefetch) and the console script's fast path."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from envsteward.cli import entry
from envsteward.pitr import prefetch

SEG = "000000010000000300000041"


def test_next_segment_crosses_the_log_boundary() -> None:
    assert prefetch.next_segment("0000000100000000000000FE", 16 << 20) == "0000000100000000000000FF"
    assert prefetch.next_segment("0000000100000000000000FF", 16 << 20) == "000000010000000100000000"
    assert prefetch.next_segment("00000002000000000000003F", 64 << 20) == "000000020000000100000000"
    with pytest.raises(ValueError, match="not a WAL segment"):
        prefetch.next_segment("00000002.history", 16 << 20)


def test_prefetcher_fills_the_window_and_stops_at_the_end_of_the_archive(tmp_path: Path) -> None:
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    spool = prefetch.spool_for(pg_wal / "RECOVERYXLOG")
    archive = {prefetch.next_segment(SEG, 16 << 20): b"a", "000000010000000300000042": b"b"}
    archive["000000010000000300000043"] = b"c"
    asked: list[str] = []

    def fetch_one(name: str, path: Path) -> bool:
        asked.append(name)
        if name not in archive:
            return False
        path.write_bytes(archive[name])
        return True

    fetched = prefetch.run_prefetcher(
        spool, "000000010000000300000042", fetch_one, segment_size=16 << 20, ahead=8, workers=1
    )
    assert fetched == 2
    assert asked == ["000000010000000300000042", "000000010000000300000043", "000000010000000300000044"]
    destination = pg_wal / "RECOVERYXLOG"
    assert prefetch.take("000000010000000300000042", destination)
    assert destination.read_bytes() == b"b"
    assert not prefetch.take(
        "000000010000000300000044", destination, wait=0.1
    )  # never fetched: the caller asks
    assert not (spool / "000000010000000300000042").exists()


def test_prefetcher_swallows_errors_so_the_foreground_fetch_reports_them(tmp_path: Path) -> None:
    spool = tmp_path / "pg_wal" / prefetch.SPOOL_NAME
    (tmp_path / "pg_wal").mkdir()

    def fetch_one(name: str, path: Path) -> bool:
        path.write_bytes(b"half")
        raise RuntimeError("IntegrityError: flipped byte")

    assert prefetch.run_prefetcher(spool, SEG, fetch_one, segment_size=16 << 20, ahead=4) == 0
    assert sorted(p.name for p in spool.iterdir()) == [".lock"]  # no segment, no temp, no in-flight marker


def test_window_bounds_the_spool_and_idle_prefetcher_exits(tmp_path: Path) -> None:
    spool = tmp_path / "pg_wal" / prefetch.SPOOL_NAME
    (tmp_path / "pg_wal").mkdir()

    def fetch_one(name: str, path: Path) -> bool:
        path.write_bytes(name.encode())
        return True

    started = time.monotonic()
    fetched = prefetch.run_prefetcher(spool, SEG, fetch_one, segment_size=16 << 20, ahead=3, idle_seconds=0.3)
    assert fetched == 3
    assert time.monotonic() - started < 5


def test_only_one_prefetcher_per_spool(tmp_path: Path) -> None:
    spool = tmp_path / "pg_wal" / prefetch.SPOOL_NAME
    (tmp_path / "pg_wal").mkdir()
    release = threading.Event()

    def slow(name: str, path: Path) -> bool:
        release.wait(5)
        path.write_bytes(b"x")
        return False

    first = threading.Thread(
        target=prefetch.run_prefetcher, args=(spool, SEG, slow), kwargs={"segment_size": 16 << 20, "ahead": 2}
    )
    first.start()
    time.sleep(0.2)
    assert prefetch.run_prefetcher(spool, SEG, slow, segment_size=16 << 20, ahead=2) == 0
    release.set()
    first.join()


def test_take_waits_for_the_segment_in_flight(tmp_path: Path) -> None:
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    spool = prefetch.spool_for(pg_wal / "RECOVERYXLOG")

    def fetch_one(name: str, path: Path) -> bool:
        if name != SEG:
            return False
        time.sleep(0.5)
        path.write_bytes(b"late")
        return True

    worker = threading.Thread(
        target=prefetch.run_prefetcher,
        args=(spool, SEG, fetch_one),
        kwargs={"segment_size": 16 << 20, "ahead": 2},
    )
    worker.start()
    time.sleep(0.2)
    assert prefetch.take(SEG, pg_wal / "RECOVERYXLOG", wait=5)
    assert (pg_wal / "RECOVERYXLOG").read_bytes() == b"late"
    worker.join()


def test_window_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVSTEWARD_WAL_PREFETCH", "0")
    assert prefetch.window() == 0
    monkeypatch.setenv("ENVSTEWARD_WAL_PREFETCH", "junk")
    assert prefetch.window() == prefetch.DEFAULT_WINDOW
    monkeypatch.setenv("ENVSTEWARD_WAL_PREFETCH", "1000")
    assert prefetch.window() == 64


def test_entry_fast_path_serves_the_spool_and_leaves_everything_else_to_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_wal = tmp_path / "pg_wal"
    spool = pg_wal / prefetch.SPOOL_NAME
    spool.mkdir(parents=True)
    (spool / SEG).write_bytes(b"segment")
    target = pg_wal / "RECOVERYXLOG"
    argv = ["--target", "dev/db", "--from", "dr", SEG, str(target)]
    assert entry.fetch_from_spool(argv) == (SEG, 0)
    assert target.read_bytes() == b"segment"
    assert entry.fetch_from_spool(argv) is None  # taken: the full CLI fetches it
    assert entry.fetch_from_spool(["--target", "dev/db", "--bogus", SEG, str(target)]) is None
    assert entry.fetch_from_spool(["--target", "dev/db", "00000002.history", str(target)]) is None
    (spool / SEG).write_bytes(b"again")
    monkeypatch.setenv("ENVSTEWARD_WAL_PREFETCH", "0")
    assert entry.fetch_from_spool(argv) is None


def test_the_fast_path_imports_nothing_heavy() -> None:
    import subprocess

    code = (
        "import sys; from envsteward.cli import entry; "
        "heavy = [m for m in ('typer', 'pydantic', 'envsteward.services', 'envsteward.pitr.archive') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _hold_lock(spool: Path) -> int:
    import fcntl
    import os

    fd = os.open(spool / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_negative_listing_answers_only_while_fresh_and_a_prefetcher_holds_the_spool(tmp_path: Path) -> None:
    import os

    pg_wal = tmp_path / "pg_wal"
    spool = prefetch.spool_for(pg_wal / "RECOVERYHISTORY")
    spool.mkdir(parents=True)
    history = pg_wal / "RECOVERYHISTORY"
    prefetch.write_absent(spool, ["00000002.history", SEG], time.time())
    assert not prefetch.known_absent("00000002.history", history)  # no prefetcher: a crashed one's listing
    fd = _hold_lock(spool)
    try:
        assert prefetch.known_absent("00000002.history", history)
        assert prefetch.known_absent(SEG, history)
        assert not prefetch.known_absent("00000003.history", history)  # never checked
        argv = ["--target", "dev/db", "00000002.history", str(history)]
        assert entry.fetch_from_spool(argv) == ("00000002.history", 1)
        assert entry.fetch_from_spool(["--target", "dev/db", "00000003.history", str(history)]) is None
        prefetch.write_absent(spool, ["00000002.history"], time.time() - prefetch.FRESH_SECONDS - 1)
        assert not prefetch.known_absent("00000002.history", history)  # too old
        prefetch.write_absent(spool, ["00000002.history"], time.time() + 60)
        assert not prefetch.known_absent("00000002.history", history)  # the clock went back
        (spool / prefetch.ABSENT_FILE).write_text("garbage\n00000002.history\n")
        assert not prefetch.known_absent("00000002.history", history)
    finally:
        os.close(fd)


def _wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    until = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_prefetcher_at_the_end_lists_absent_files_puts_the_last_back_follows_growth_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefetch, "LINGER_SECONDS", 0.2)
    data_dir = tmp_path / "data"
    pg_wal = data_dir / "pg_wal"
    pg_wal.mkdir(parents=True)
    signal = data_dir / "recovery.signal"
    signal.touch()
    destination = pg_wal / "RECOVERYXLOG"
    spool = prefetch.spool_for(destination)
    a, b, c, d = (
        "000000010000000000000010",
        "000000010000000000000011",
        "000000010000000000000012",
        ("000000010000000000000013"),
    )
    archive = {a: b"a", b: b"b"}
    lock = threading.Lock()

    def fetch_one(name: str, path: Path) -> bool:
        with lock:
            content = archive.get(name)
        if content is None:
            return False
        path.write_bytes(content)
        return True

    def absent(names: list[str]) -> list[str]:
        with lock:
            return [name for name in names if name not in archive]

    worker = threading.Thread(
        target=prefetch.run_prefetcher,
        args=(spool, a, fetch_one),
        kwargs={"segment_size": 16 << 20, "ahead": 4, "absent": absent, "recovery_signal": signal},
    )
    worker.start()
    try:
        _wait_for(lambda: prefetch.known_absent(c, destination), "the end of the archive listed as absent")
        assert prefetch.known_absent("00000002.history", destination)
        assert prefetch.known_absent("00000001.history", destination)
        assert prefetch.take(a, destination)
        assert destination.read_bytes() == b"a"
        assert prefetch.take(b, destination)
        assert destination.read_bytes() == b"b"
        # PostgreSQL reads the last segment again when recovery ends: it is put back once
        _wait_for((spool / b).exists, "the last segment put back")
        assert prefetch.take(b, destination)
        assert destination.read_bytes() == b"b"
        # the archive grows (the source still runs): the segment is fetched, no longer "absent"
        with lock:
            archive[c] = b"c"
        _wait_for((spool / c).exists, "the new segment fetched")
        _wait_for(lambda: prefetch.known_absent(d, destination), "the next end listed")
        assert not prefetch.known_absent(c, destination)
        # a history file that appears later is found: never answered "absent" after the next refresh
        with lock:
            archive["00000002.history"] = b"1\t0/3000000\tno recovery target specified\n"
        _wait_for(
            lambda: not prefetch.known_absent("00000002.history", destination),
            "the new history file no longer listed as absent",
            timeout=prefetch.REFRESH_SECONDS + prefetch.FRESH_SECONDS + 10,
        )
        assert prefetch.known_absent("00000003.history", destination)  # the next timeline is probed instead
        signal.unlink()  # PostgreSQL promoted
        worker.join(timeout=20)
        assert not worker.is_alive()
        assert sorted(path.name for path in spool.iterdir()) == [".lock"]
        assert not prefetch.known_absent(d, destination)
    finally:
        signal.unlink(missing_ok=True)
        worker.join(timeout=30)


def test_two_fetch_workers_fill_the_window_in_any_order(tmp_path: Path) -> None:
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    spool = prefetch.spool_for(pg_wal / "RECOVERYXLOG")
    names = [SEG]
    for _ in range(5):
        names.append(prefetch.next_segment(names[-1], 16 << 20))
    both = threading.Barrier(2, timeout=10)  # the first two fetches only finish when they run at once

    def fetch_one(name: str, path: Path) -> bool:
        if name not in names[:5]:
            return False
        if name in names[:2]:
            both.wait()
        path.write_bytes(name.encode())
        return True

    assert prefetch.run_prefetcher(spool, SEG, fetch_one, segment_size=16 << 20, ahead=8, workers=2) == 5
    assert sorted(path.name for path in spool.iterdir() if not path.name.startswith(".")) == names[:5]


def test_a_segment_in_flight_that_is_not_found_is_answered_absent_once_listed(tmp_path: Path) -> None:
    pg_wal = tmp_path / "pg_wal"
    spool = prefetch.spool_for(pg_wal / "RECOVERYXLOG")
    spool.mkdir(parents=True)
    destination = pg_wal / "RECOVERYXLOG"
    fd = _hold_lock(spool)  # a running prefetcher ...
    try:
        (spool / f"{SEG}.inflight").touch()  # ... fetching SEG right now

        def not_found_then_listed() -> None:
            time.sleep(0.1)
            (spool / f"{SEG}.inflight").unlink()
            time.sleep(0.05)
            prefetch.write_absent(spool, [SEG], time.time())

        worker = threading.Thread(target=not_found_then_listed)
        worker.start()
        assert prefetch.answer(SEG, destination) == 1
        worker.join()
        assert not destination.exists()
        # not in flight and not listed: only the archive can tell
        other = prefetch.next_segment(SEG, 16 << 20)
        assert prefetch.answer(other, destination) is None
    finally:
        import os

        os.close(fd)
