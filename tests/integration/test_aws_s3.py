"""S3ObjectStore against moto_server: uploads (single, conditional, multipart), reads, listing, copy."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from envsteward.adapters.aws import MIN_PART_SIZE, AWSClients, S3ObjectStore, sha256_b64
from envsteward.errors import NotFoundError, PermanentError, TransientError
from envsteward.ports import ObjectStore
from envsteward.settings import AWSSettings
from tests.fixtures._proc import free_port
from tests.fixtures.aws import S3Buckets


@pytest.fixture
def store(aws_clients: AWSClients, s3_buckets: S3Buckets) -> S3ObjectStore:
    return S3ObjectStore(aws_clients, s3_buckets.primary, s3_buckets.region, prefix="backups")


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _no_uploads(clients: AWSClients, bucket: str) -> bool:
    return not clients.s3().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_put_get_head_delete(store: S3ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    info = store.put_bytes("a/one.bin", b"hello", metadata={"kind": "test"})
    assert (info.key, info.size, info.etag) == ("a/one.bin", 5, hashlib.md5(b"hello").hexdigest())  # noqa: S324
    assert store.get_bytes("a/one.bin") == b"hello"
    head = store.head("a/one.bin")
    assert head is not None
    assert head.metadata == {"kind": "test"}
    assert head.modified.tzinfo is not None
    assert store.checksum("a/one.bin").sha256 == sha256_b64(b"hello")
    assert store.head("a/missing") is None
    store.delete("a/one.bin")
    store.delete("a/one.bin")  # deleting a missing object is fine
    assert store.head("a/one.bin") is None
    with pytest.raises(NotFoundError, match=r"aws: s3 get_object s3://.*/backups/a/one.bin: NoSuchKey"):
        store.get_bytes("a/one.bin")
    with pytest.raises(NotFoundError):
        store.get_stream("a/one.bin")


def test_keys_are_under_the_prefix(
    store: S3ObjectStore, aws_clients: AWSClients, s3_buckets: S3Buckets
) -> None:
    store.put_bytes("x", b"1")
    keys = [o["Key"] for o in aws_clients.s3().list_objects_v2(Bucket=s3_buckets.primary)["Contents"]]
    assert keys == ["backups/x"]
    with pytest.raises(PermanentError, match="invalid object key"):
        store.put_bytes("/absolute", b"1")


def test_put_if_absent(store: S3ObjectStore) -> None:
    assert store.put_if_absent("lock", b"first") is True
    assert store.put_if_absent("lock", b"second") is False
    assert store.get_bytes("lock") == b"first"


def test_list_all_pages_in_key_order(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    store = S3ObjectStore(aws_clients, s3_buckets.primary, list_page_size=7)
    names = [f"p/{n:04d}" for n in range(30)]  # five pages of 7 (S3's real pages hold 1000)
    s3 = aws_clients.s3()
    for name in reversed(names):
        s3.put_object(Bucket=s3_buckets.primary, Key=name, Body=b"x")
    s3.put_object(Bucket=s3_buckets.primary, Key="q/other", Body=b"x")
    listed = [info.key for info in store.list("p/")]
    assert listed == names
    assert len(list(store.list())) == 31


def test_multipart_stream_round_trip(
    store: S3ObjectStore, aws_clients: AWSClients, s3_buckets: S3Buckets
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 12345)  # three parts: 5 MiB, 5 MiB, rest
    small_store = S3ObjectStore(aws_clients, s3_buckets.primary, prefix="backups", part_size=MIN_PART_SIZE)
    info = small_store.put_stream("big.bin", _chunks(data, 64 * 1024 + 7), metadata={"sha": "x"})
    assert info.size == len(data)
    assert info.etag is not None
    assert info.etag.endswith("-3")
    assert info.metadata == {"sha": "x"}
    got = hashlib.sha256()
    sizes = set()
    for chunk in store.get_stream("big.bin", chunk_size=1 << 20):
        got.update(chunk)
        sizes.add(len(chunk))
    assert got.digest() == hashlib.sha256(data).digest()
    assert max(sizes) <= 1 << 20
    assert _no_uploads(aws_clients, s3_buckets.primary)


def test_small_stream_is_a_single_put(store: S3ObjectStore) -> None:
    info = store.put_stream("small.bin", _chunks(b"abc" * 1000, 100))
    assert info.size == 3000
    assert info.etag is not None
    assert "-" not in info.etag
    assert store.get_bytes("small.bin") == b"abc" * 1000
    empty = store.put_stream("empty.bin", iter(()))
    assert empty.size == 0
    assert store.get_bytes("empty.bin") == b""


def test_exception_mid_stream_aborts_the_upload(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    store = S3ObjectStore(aws_clients, s3_buckets.primary, part_size=MIN_PART_SIZE)

    def failing() -> Iterator[bytes]:
        for _ in range(12):  # 12 MiB: two parts are uploaded before the failure
            yield os.urandom(1024 * 1024)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        store.put_stream("partial.bin", failing())
    assert _no_uploads(aws_clients, s3_buckets.primary)
    assert store.head("partial.bin") is None
    assert list(store.list()) == []


def test_interrupt_mid_stream_aborts_the_upload(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    store = S3ObjectStore(aws_clients, s3_buckets.primary, part_size=MIN_PART_SIZE)

    def interrupted() -> Iterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_stream("interrupted.bin", interrupted())
    assert _no_uploads(aws_clients, s3_buckets.primary)
    assert store.head("interrupted.bin") is None


def test_cross_region_copy_with_checksum(
    store: S3ObjectStore, aws_clients: AWSClients, s3_buckets: S3Buckets
) -> None:
    data = os.urandom(300_000)
    store.put_bytes("db/2024.dump", data, metadata={"env": "prod"})
    dr_store = S3ObjectStore(aws_clients, s3_buckets.dr, s3_buckets.dr_region, prefix="replica")

    result = store.copy_to(dr_store, "db/2024.dump")
    assert result.dest_region == s3_buckets.dr_region
    assert (result.dest_bucket, result.dest_key) == (s3_buckets.dr, "replica/db/2024.dump")
    assert result.size == len(data)
    assert result.checksum_sha256 == sha256_b64(data)
    assert dr_store.get_bytes("db/2024.dump") == data
    head = dr_store.head("db/2024.dump")
    assert head is not None
    assert head.metadata == {"env": "prod"}

    by_name = store.copy_to(s3_buckets.dr, "db/2024.dump", dest_key="by-name/db.dump")
    assert by_name.dest_region == s3_buckets.dr_region  # default: the DR region
    assert by_name.checksum_sha256 == sha256_b64(data)

    with pytest.raises(NotFoundError):
        store.copy_to(dr_store, "db/missing.dump")


def test_missing_bucket_is_not_found(aws_clients: AWSClients, aws_name_prefix: str) -> None:
    store = S3ObjectStore(aws_clients, f"{aws_name_prefix}-nope")
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        store.get_bytes("k")
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        store.put_bytes("k", b"x")
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        list(store.list())
    with pytest.raises(NotFoundError, match="NoSuchBucket"):  # the managed transfer, single and multipart
        store.put_stream("k", iter([b"x"]))
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        S3ObjectStore(aws_clients, store.bucket, part_size=MIN_PART_SIZE).put_stream(
            "k", iter([os.urandom(MIN_PART_SIZE + 1)])
        )


def test_unreachable_endpoint_is_transient() -> None:
    settings = AWSSettings(
        endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout_seconds=1, max_attempts=1
    )
    store = S3ObjectStore(AWSClients(settings), "bucket")
    with pytest.raises(TransientError, match="aws: s3 get_object s3://bucket/k: cannot reach") as info:
        store.get_bytes("k")
    assert info.value.transient


def test_put_stream_memory_stays_bounded(aws_clients: AWSClients, s3_buckets: S3Buckets) -> None:
    """A 40 MiB stream never has more than a few parts in memory at once: about one per upload thread
    plus the one being read (s3transfer's read-ahead is bounded to ``max_concurrency`` parts)."""
    import tracemalloc

    store = S3ObjectStore(aws_clients, s3_buckets.primary, part_size=MIN_PART_SIZE, max_concurrency=2)
    block = os.urandom(256 * 1024)

    def stream() -> Iterator[bytes]:
        for _ in range(160):  # 40 MiB, the same block: the source itself holds almost nothing
            yield block

    tracemalloc.start()
    try:
        info = store.put_stream("big-memory.bin", stream())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 40 * 1024 * 1024
    assert peak < (2 + 3) * MIN_PART_SIZE, f"peak {peak / 2**20:.1f} MiB"
