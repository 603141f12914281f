"""FilesystemObjectStore: every port method, atomicity, the cross-process put_if_absent race, bad keys."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.errors import ConfigurationError, ConflictError, NotFoundError
from envsteward.ports import ObjectStore


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_implements_the_port(store: FilesystemObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_head_round_trip(store: FilesystemObjectStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    info = store.put_bytes("backups/prod/db.dump", b"hello", {"sha256": "abc", "kind": "pg_dump"})
    assert info.key == "backups/prod/db.dump"
    assert info.size == 5
    assert info.etag == hashlib.sha256(b"hello").hexdigest()
    assert info.metadata == {"sha256": "abc", "kind": "pg_dump"}
    assert info.modified >= before
    assert info.modified.tzinfo is not None
    assert store.get_bytes("backups/prod/db.dump") == b"hello"
    head = store.head("backups/prod/db.dump")
    assert head == info
    assert store.head("backups/prod/other") is None
    assert store.head("backups/prod") is None  # a folder is not an object
    assert store.head("backups/prod/db.dump/deeper") is None


def test_put_replaces_and_metadata_follows(store: FilesystemObjectStore) -> None:
    store.put_bytes("a", b"one", {"v": "1"})
    info = store.put_bytes("a", b"second")
    assert store.get_bytes("a") == b"second"
    assert info.metadata == {}
    head = store.head("a")
    assert head is not None
    assert head.metadata == {}
    assert head.size == 6


def test_get_missing_is_not_found(store: FilesystemObjectStore) -> None:
    with pytest.raises(NotFoundError, match="objectstore: get missing/key: no object missing/key"):
        store.get_bytes("missing/key")
    with pytest.raises(NotFoundError):
        store.get_stream("missing")  # raised at the call, not on the first next()
    store.put_bytes("dir/file", b"x")
    with pytest.raises(NotFoundError):
        store.get_bytes("dir")
    with pytest.raises(NotFoundError):
        store.get_bytes("dir/file/below")


def test_get_stream_chunks(store: FilesystemObjectStore) -> None:
    data = os.urandom(10_000)
    store.put_bytes("blob", data)
    chunks = list(store.get_stream("blob", chunk_size=4096))
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert b"".join(chunks) == data


def test_put_stream_writes_everything(store: FilesystemObjectStore) -> None:
    parts = [os.urandom(1000) for _ in range(20)]
    info = store.put_stream("big/object.bin", iter(parts), {"chunks": "20"})
    assert info.size == 20_000
    assert info.etag == hashlib.sha256(b"".join(parts)).hexdigest()
    assert store.get_bytes("big/object.bin") == b"".join(parts)
    assert store.head("big/object.bin") == info


class _SourceBrokeError(RuntimeError):
    pass


def test_interrupted_stream_leaves_no_object_and_no_temp_file(store: FilesystemObjectStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000
        raise _SourceBrokeError("pg_dump died")

    with pytest.raises(_SourceBrokeError):
        store.put_stream("backups/interrupted.bin", chunks())
    assert store.head("backups/interrupted.bin") is None
    assert _all_files(store.root) == []

    # An existing object survives an interrupted replacement untouched.
    store.put_bytes("backups/keep.bin", b"old")
    with pytest.raises(_SourceBrokeError):
        store.put_stream("backups/keep.bin", chunks(), {"new": "yes"})
    assert store.get_bytes("backups/keep.bin") == b"old"
    assert _all_files(store.root) == ["backups/.keep.bin.meta.json", "backups/keep.bin"]


def test_put_if_absent(store: FilesystemObjectStore) -> None:
    assert store.put_if_absent("locks/drill", b"first") is True
    assert store.put_if_absent("locks/drill", b"second") is False
    assert store.get_bytes("locks/drill") == b"first"
    head = store.head("locks/drill")
    assert head is not None
    assert head.etag == hashlib.sha256(b"first").hexdigest()
    assert [p for p in _all_files(store.root) if p.endswith(".tmp")] == []


def _race(
    root: str, key: str, me: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    store = FilesystemObjectStore(Path(root))
    start.wait(10)
    won = store.put_if_absent(key, f"writer-{me}".encode())
    out.put((me, won))


# "spawn", not "fork": the session may have Prefect's test server threads running, and forking a
# multi-threaded process can deadlock or crash the child.
SPAWN = multiprocessing.get_context("spawn")


def test_put_if_absent_race_between_processes(store: FilesystemObjectStore) -> None:
    ctx = SPAWN
    writers = 6
    for round_number in range(3):
        key = f"audit/000{round_number}.json"
        start = ctx.Event()
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_race, args=(str(store.root), key, i, start, out)) for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        start.set()
        results = dict(out.get(timeout=20) for _ in range(writers))
        for proc in procs:
            proc.join(timeout=20)
            assert proc.exitcode == 0
        winners = [me for me, won in results.items() if won]
        assert len(winners) == 1, results
        assert store.get_bytes(key) == f"writer-{winners[0]}".encode()
    assert [p for p in _all_files(store.root) if p.endswith(".tmp")] == []


def test_list_in_key_order_with_prefix(store: FilesystemObjectStore) -> None:
    keys = ["b/2", "a/b", "a-c", "a/a/z", "c", "a/b2", "b/10"]
    for key in keys:
        store.put_bytes(key, key.encode(), {"k": key})
    listed = list(store.list())
    assert [i.key for i in listed] == sorted(keys)  # plain string order: 'a-c' < 'a/a/z'
    assert all(i.metadata == {"k": i.key} for i in listed)
    assert [i.key for i in store.list("a/")] == ["a/a/z", "a/b", "a/b2"]
    assert [i.key for i in store.list("a/b")] == ["a/b", "a/b2"]
    assert [i.key for i in store.list("a")] == ["a-c", "a/a/z", "a/b", "a/b2"]
    assert list(store.list("zzz/")) == []
    assert list(store.list("../")) == []
    # Sidecars and temp files never show up.
    (store.root / "b" / ".2.deadbeef.tmp").write_bytes(b"partial")
    assert [i.key for i in store.list("b/")] == ["b/10", "b/2"]


def test_delete_is_idempotent_and_prunes_folders(store: FilesystemObjectStore) -> None:
    store.put_bytes("x/y/z", b"1", {"m": "1"})
    store.delete("x/y/z")
    assert store.head("x/y/z") is None
    assert not (store.root / "x").exists()
    store.delete("x/y/z")
    store.delete("never/existed")
    # Once "x/y/z" is gone, "x" can be an object.
    store.put_bytes("x", b"now an object")
    assert store.get_bytes("x") == b"now an object"


def test_object_and_folder_collide(store: FilesystemObjectStore) -> None:
    store.put_bytes("a", b"object")
    with pytest.raises(ConflictError, match="both an object and a folder"):
        store.put_bytes("a/b", b"below an object")
    store.put_bytes("d/e", b"x")
    with pytest.raises(ConflictError):
        store.put_bytes("d", b"over a folder")
    with pytest.raises(ConflictError):
        store.put_if_absent("d", b"over a folder")
    store.delete("d")  # a folder is not an object: nothing to delete
    assert store.get_bytes("d/e") == b"x"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../outside", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a//b", "empty segment"),
        ("a/b/", "empty segment"),
        ("./a", "'.' segment"),
        ("a/.hidden", "starting with '.'"),
        ("a\\b", "backslash"),
    ],
)
def test_bad_keys_are_refused(store: FilesystemObjectStore, key: str, problem: str) -> None:
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_if_absent(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.head(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ConfigurationError, match="keys are relative") as caught:
            call()
        assert problem in str(caught.value)
    assert not (store.root.parent / "outside").exists()
    assert _all_files(store.root) == []


def test_bad_metadata_is_refused(store: FilesystemObjectStore) -> None:
    with pytest.raises(ConfigurationError, match="metadata"):
        store.put_bytes("k", b"x", {"n": 1})  # type: ignore[dict-item]
    assert store.head("k") is None


def test_stale_sidecar_is_ignored(store: FilesystemObjectStore) -> None:
    """A sidecar that describes another version of the object (crash between writes) is not trusted."""
    store.put_bytes("k", b"v1", {"version": "1"})
    # Simulate a writer that replaced the object and died before writing the new sidecar.
    tmp = store.root / ".k.manual.tmp"
    tmp.write_bytes(b"version two")
    os.replace(tmp, store.root / "k")
    head = store.head("k")
    assert head is not None
    assert head.size == len(b"version two")
    assert head.metadata == {}
    assert head.etag is None


def _read_until_stopped(root: str, versions: list[bytes], stop: Any, bad: Any) -> None:
    reader_store = FilesystemObjectStore(Path(root))
    while not stop.is_set():
        if reader_store.get_bytes("hot") not in versions:
            with bad.get_lock():
                bad.value += 1


def test_writes_are_atomic_for_readers(store: FilesystemObjectStore, tmp_path: Path) -> None:
    """A reader running during many replacements only ever sees a complete version."""
    versions = [bytes([i]) * 200_000 for i in range(1, 6)]
    store.put_bytes("hot", versions[0])
    stop = SPAWN.Event()
    bad = SPAWN.Value("i", 0)
    proc = SPAWN.Process(target=_read_until_stopped, args=(str(store.root), versions, stop, bad))
    proc.start()
    try:
        for _ in range(10):
            for version in versions:
                store.put_bytes("hot", version)
    finally:
        stop.set()
        proc.join(timeout=30)
    assert proc.exitcode == 0
    assert bad.value == 0
