"""The object-store sink over the real filesystem ObjectStore: chain, tampering, concurrent processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.aws_s3 import S3ObjectStore
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.audit import AuditDetailsError, AuditLog, ObjectStoreSink, open_audit_log
from envsteward.audit.verify import CHANGED, INSERTED, REMOVED, REORDERED
from envsteward.ports import AuditSink
from envsteward.settings import Settings
from tests.fixtures.aws import S3Buckets
from tests.integration.test_audit_jsonl import (
    APPENDS,
    WORKERS,
    assert_interleaved_and_ordered,
    run_concurrently,
)
from tests.unit.audit import tampering as t

SEEDED_SECRET = "objstore-SEEDED-secret-c40e"


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


def _fill(log: AuditLog, count: int) -> None:
    for index in range(count):
        log.append("backup.created", target=f"backup-{index}", environment="production", details={"n": index})


def test_one_object_per_record_in_key_order(store: FilesystemObjectStore) -> None:
    sink = ObjectStoreSink(store)
    assert isinstance(sink, AuditSink)
    log = AuditLog(sink, "alice")
    _fill(log, 12)
    keys = [info.key for info in store.list("audit/")]
    assert keys == [f"audit/{seq:012d}.json" for seq in range(1, 13)]
    assert store.get_bytes("audit/000000000003.json").decode() == next(
        line for line in sink.read_lines() if '"seq":3,' in line
    )
    result = log.verify()
    assert result.ok
    assert result.count == 12
    assert [record.seq for record in log.records(action="backup")] == list(range(1, 13))


def test_open_audit_log_with_an_object_store(tmp_path: Path, store: FilesystemObjectStore) -> None:
    log = open_audit_log(Settings(home=tmp_path / "home", actor="dave"), store)
    assert isinstance(log.sink, ObjectStoreSink)
    log.append("drift.healed", target="a")
    assert [info.key for info in store.list("audit/")] == ["audit/000000000001.json"]
    assert not (tmp_path / "home" / "audit").exists()


def test_separate_writers_share_one_chain(store: FilesystemObjectStore) -> None:
    first = AuditLog(ObjectStoreSink(store), "first")
    second = AuditLog(ObjectStoreSink(store), "second")
    for _ in range(5):
        first.append("drift.healed", target="f")
        second.append("drift.healed", target="s")
    assert first.verify().count == 10
    assert [record.actor for record in second.records()] == ["first", "second"] * 5


def test_append_line_refuses_a_taken_or_unreachable_slot(store: FilesystemObjectStore) -> None:
    sink = ObjectStoreSink(store)
    _fill(AuditLog(sink, "alice"), 3)
    assert sink.append_line(3, "{}") is False  # taken
    assert sink.append_line(5, "{}") is False  # would leave a gap at 4
    assert len(list(store.list("audit/"))) == 3


def _lines(store: FilesystemObjectStore) -> list[str]:
    return [store.get_bytes(f"audit/{seq:012d}.json").decode() for seq in range(1, 9)]


def test_changed_object(store: FilesystemObjectStore) -> None:
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 8)
    store.put_bytes(
        "audit/000000000004.json", t.change_field(_lines(store), 4, "actor", "mallory")[3].encode()
    )
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 4, CHANGED)


def test_deleted_object(store: FilesystemObjectStore) -> None:
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 8)
    store.delete("audit/000000000004.json")
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 5, REMOVED)


def test_swapped_objects(store: FilesystemObjectStore) -> None:
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 8)
    lines = _lines(store)
    store.put_bytes("audit/000000000004.json", lines[4].encode())
    store.put_bytes("audit/000000000005.json", lines[3].encode())
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 5, REORDERED)


def test_inserted_forged_object(store: FilesystemObjectStore) -> None:
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 8)
    forged = t.forged_after(_lines(store), 3)[3]
    # Sorts between records 3 and 4 when the prefix is listed.
    store.put_bytes("audit/000000000003.json-forged", forged.encode())
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind, result.line) == (False, 4, INSERTED, 5)


def test_appending_after_the_remembered_tail_was_deleted(store: FilesystemObjectStore) -> None:
    sink = ObjectStoreSink(store)
    log = AuditLog(sink, "alice")
    _fill(log, 3)
    store.delete("audit/000000000003.json")
    # The sink's remembered tail (3) is gone: it must fall back to a listing, not get stuck. (Removing the
    # newest record leaves a consistent chain; only verify's anchor can tell, see test_verify.py.)
    record = log.append("drift.healed", target="after-delete")
    assert record.seq == 3
    assert log.verify().ok


def test_seeded_secret_is_never_stored(store: FilesystemObjectStore, tmp_path: Path) -> None:
    from pydantic import SecretStr

    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 1)
    with pytest.raises(AuditDetailsError, match="holds a SecretStr") as caught:
        log.append("secret.rotated", target="db", details={"value": SecretStr(SEEDED_SECRET)})
    assert SEEDED_SECRET not in str(caught.value)
    for file in (tmp_path / "objects").rglob("*"):
        if file.is_file():
            assert SEEDED_SECRET.encode() not in file.read_bytes()


def _append_worker(root: str, worker: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    log = AuditLog(ObjectStoreSink(FilesystemObjectStore(Path(root))), f"worker-{worker}")
    for index in range(APPENDS):
        log.append("drift.healed", target=f"w{worker}-{index}", details={"worker": worker, "index": index})


def test_concurrent_processes_build_one_chain(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    run_concurrently(_append_worker, str(root))
    log = AuditLog(ObjectStoreSink(FilesystemObjectStore(root)), "checker")
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == WORKERS * APPENDS
    records = list(log.records())
    assert len({record.target for record in records}) == WORKERS * APPENDS
    assert_interleaved_and_ordered([record.details for record in records])


# -- the same sink on S3 (moto server): conditional writes with If-None-Match ---------------------------


def _s3_store(aws_clients: AWSClients, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(aws_clients, bucket, prefix="envsteward")


def test_chain_on_s3(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    store = _s3_store(aws_clients, s3_buckets.primary)
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 5)
    result = log.verify()
    assert result.ok
    assert result.count == 5
    raw = aws_clients.s3().list_objects_v2(Bucket=s3_buckets.primary)
    assert [item["Key"] for item in raw["Contents"]] == [
        f"envsteward/audit/{seq:012d}.json" for seq in range(1, 6)
    ]
    # A second writer with its own sink continues the same chain.
    AuditLog(ObjectStoreSink(store), "bob").append("drift.healed", target="x")
    assert [record.actor for record in log.records()][-1] == "bob"
    assert log.verify().count == 6


def test_tampering_on_s3_is_detected(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    store = _s3_store(aws_clients, s3_buckets.primary)
    log = AuditLog(ObjectStoreSink(store), "alice")
    _fill(log, 5)
    line = store.get_bytes("audit/000000000002.json").decode()
    store.put_bytes("audit/000000000002.json", t.change_field([line], 1, "actor", "mallory")[0].encode())
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.kind) == (False, 2, CHANGED)


def test_concurrent_writers_on_s3(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = _s3_store(aws_clients, s3_buckets.primary)

    def writer(worker: int) -> None:
        log = AuditLog(ObjectStoreSink(store), f"worker-{worker}")
        for index in range(10):
            log.append(
                "drift.healed", target=f"w{worker}-{index}", details={"worker": worker, "index": index}
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(writer, range(4)))
    log = AuditLog(ObjectStoreSink(store), "checker")
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == 40
    assert len({record.target for record in log.records()}) == 40
