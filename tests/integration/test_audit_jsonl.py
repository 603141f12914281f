"""The JSON-lines sink on a real file: tamper detection, torn writes, tail reads, concurrent processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from envsteward.audit import AuditDetailsError, AuditLog, JsonLinesFileSink, open_audit_log
from envsteward.audit.verify import CHANGED, INSERTED, REMOVED, REORDERED, TRUNCATED
from envsteward.errors import IntegrityError
from envsteward.settings import Settings
from tests.unit.audit import tampering as t

SEEDED_SECRET = "jsonl-SEEDED-secret-5d1a"


def _log(path: Path, actor: str = "alice") -> AuditLog:
    return AuditLog(JsonLinesFileSink(path), actor)


def _fill(log: AuditLog, count: int) -> None:
    for index in range(count):
        log.append("drift.healed", target=f"app/key{index}", environment="staging", details={"n": index})


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


def test_append_and_read_back(path: Path) -> None:
    log = _log(path)
    _fill(log, 5)
    assert path.read_bytes().endswith(b"\n")
    assert len(_lines(path)) == 5
    assert [record.seq for record in log.records()] == [1, 2, 3, 4, 5]
    result = log.verify()
    assert result.ok
    assert result.count == 5
    assert (path.parent / "audit.jsonl.lock").exists()


def test_missing_file_is_an_empty_log(path: Path) -> None:
    log = _log(path)
    assert log.verify().ok
    assert log.verify().count == 0
    assert list(log.records()) == []
    assert log.head() is None
    assert not path.exists()


def test_open_audit_log_uses_home(tmp_path: Path) -> None:
    log = open_audit_log(Settings(home=tmp_path / "home", actor="carol"))
    record = log.append("drift.healed", target="a")
    assert record.actor == "carol"
    assert (tmp_path / "home" / "audit" / "audit.jsonl").exists()
    assert log.location == str(tmp_path / "home" / "audit" / "audit.jsonl")


Tamper = Callable[[list[str]], list[str]]


@pytest.mark.parametrize(
    ("tamper", "seq", "kind"),
    [
        (lambda lines: t.change_field(lines, 4, "details", {"n": "edited"}), 4, CHANGED),
        (lambda lines: t.remove(lines, 4), 5, REMOVED),
        (lambda lines: t.forged_after(lines, 4), 5, INSERTED),
        (lambda lines: t.forged_after(lines, 4, prev_hash="e" * 64), 5, INSERTED),
        (lambda lines: t.swap(lines, 4, 5), 5, REORDERED),
        (lambda lines: t.change_field(lines, 1, "target", "genesis-edited"), 1, CHANGED),
        (lambda lines: t.change_and_rehash(lines, 1, "prev_hash", "1" * 64), 1, INSERTED),
    ],
    ids=["changed", "removed", "inserted-linked", "inserted-unlinked", "swapped", "genesis", "genesis-link"],
)
def test_tampering_on_disk_is_detected(path: Path, tamper: Tamper, seq: int, kind: str) -> None:
    log = _log(path)
    _fill(log, 8)
    _write(path, tamper(_lines(path)))
    result = _log(path).verify()
    assert not result.ok
    assert result.first_bad_seq == seq
    assert result.kind == kind


def test_truncated_last_line_is_detected_and_blocks_appends(path: Path) -> None:
    log = _log(path)
    _fill(log, 6)
    size = path.stat().st_size
    last_len = len(_lines(path)[-1].encode()) + 1
    with path.open("r+b") as handle:
        handle.truncate(size - last_len // 2)
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind, result.line) == (False, 6, TRUNCATED, 6)
    assert result.reason == "not valid JSON at line 6 (truncated or corrupted)"
    before = path.read_bytes()
    with pytest.raises(IntegrityError, match="audit verify"):
        log.append("drift.healed", target="after-crash")
    assert path.read_bytes() == before


def test_complete_record_without_newline_is_finished_not_glued(path: Path) -> None:
    log = _log(path)
    _fill(log, 3)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 1)  # crash between the record and its newline
    assert log.verify().ok
    record = log.append("drift.healed", target="next")
    assert record.seq == 4
    assert len(_lines(path)) == 4
    assert log.verify().ok
    assert log.verify().count == 4


def test_line_separators_inside_strings_do_not_split_records(path: Path) -> None:
    log = _log(path)
    log.append("drift.healed", target="a\u2028b", details={"text": "x\u0085y\u2029z\x1c", "nl": "l1\nl2"})
    log.append("drift.healed", target="second")
    assert len(path.read_bytes().split(b"\n")) == 3
    assert log.verify().ok
    assert next(iter(log.records())).details["nl"] == "l1\nl2"


def test_tail_read_does_not_reread_the_whole_log(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _log(path)
    big = "x" * 2000
    for index in range(300):  # ~700 KB
        log.append("drift.healed", target=f"k{index}", details={"pad": big})
    size = path.stat().st_size
    assert size > 500_000
    read_bytes = 0
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        nonlocal read_bytes
        read_bytes += length
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    for _ in range(10):
        log.append("drift.healed", target="more", details={"pad": big})
    # Per append: one tail read by the log and one by the sink under its lock, one 8 KiB block each.
    assert 0 < read_bytes <= 10 * 2 * 8192 < size
    monkeypatch.undo()
    assert log.verify().ok


def test_seeded_secret_is_never_stored(path: Path) -> None:
    from pydantic import SecretStr

    log = _log(path)
    _fill(log, 2)
    with pytest.raises(AuditDetailsError, match="holds a SecretStr") as caught:
        log.append("secret.rotated", target="db", details={"new": SecretStr(SEEDED_SECRET)})
    assert SEEDED_SECRET not in str(caught.value)
    with pytest.raises(AuditDetailsError, match="raw bytes"):
        log.append("secret.rotated", target="db", details={"new": SEEDED_SECRET.encode()})
    for file in path.parent.iterdir():
        assert SEEDED_SECRET.encode() not in file.read_bytes()
    assert log.verify().count == 2


def test_append_line_refuses_a_line_break(path: Path) -> None:
    with pytest.raises(Exception, match="line break"):
        JsonLinesFileSink(path).append_line(1, '{"a":1}\n{"b":2}')


def test_append_line_refuses_a_stale_sequence(path: Path) -> None:
    log = _log(path)
    _fill(log, 3)
    sink = JsonLinesFileSink(path)
    assert sink.append_line(3, "{}") is False
    assert sink.append_line(5, "{}") is False
    assert len(_lines(path)) == 3


# -- several OS processes appending at once ----------------------------------------------------------------

WORKERS = 4
APPENDS = 50


def _append_worker(path: str, worker: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    log = AuditLog(JsonLinesFileSink(Path(path)), f"worker-{worker}")
    for index in range(APPENDS):
        log.append("drift.healed", target=f"w{worker}-{index}", details={"worker": worker, "index": index})


def run_concurrently(target: Callable[..., None], location: str) -> None:
    """Run ``target(location, worker, barrier)`` in WORKERS spawned processes that start together."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=target, args=(location, worker, start)) for worker in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]


def test_concurrent_processes_build_one_chain(path: Path) -> None:
    run_concurrently(_append_worker, str(path))
    log = _log(path)
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == WORKERS * APPENDS
    records = list(log.records())
    assert [record.seq for record in records] == list(range(1, WORKERS * APPENDS + 1))
    targets = [record.target for record in records]
    assert len(set(targets)) == len(targets) == WORKERS * APPENDS
    assert_interleaved_and_ordered([record.details for record in records])


def assert_interleaved_and_ordered(details: list[dict[str, int]]) -> None:
    """Each writer's records keep its order, and the writers really did overlap."""
    for worker in range(WORKERS):
        mine = [item["index"] for item in details if item["worker"] == worker]
        assert mine == list(range(APPENDS))
    switches = sum(1 for a, b in itertools.pairwise(details) if a["worker"] != b["worker"])
    assert switches > WORKERS, "the writers did not run at the same time; the test proved nothing"


def test_concurrent_threads_sharing_one_log(path: Path) -> None:
    """Prefect's thread runner: several threads append through one AuditLog (flock per open file)."""
    from concurrent.futures import ThreadPoolExecutor

    log = _log(path)

    def writer(worker: int) -> None:
        for index in range(25):
            log.append(
                "drift.healed", target=f"t{worker}-{index}", details={"worker": worker, "index": index}
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(writer, range(4)))
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == 100
