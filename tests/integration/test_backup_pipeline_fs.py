"""The backup pipeline end to end over the filesystem object store and the local key provider.

Real adapters (FilesystemObjectStore, LocalKeyProvider) on a temp folder: write, verify, restore, list,
and every kind of damage to a stored backup, which must fail with IntegrityError before the restore
target receives a byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.backup import (
    BackupSourceInfo,
    Manifest,
    ProgressEvent,
    TableChecksum,
    data_object_key,
    delete_backup,
    find_incomplete_backups,
    list_backups,
    manifest_object_key,
    restore_backup,
    verify_backup,
    write_backup,
)
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError, NotFoundError, TransientError
from envsteward.ports import DataKey, ObjectInfo
from tests.unit.backup._streams import FRAME_HEAD

CHUNK = 4096
NOW = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "store")


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyProvider:
    return LocalKeyProvider(tmp_path / "keys" / "backup.key")


def _pieces(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _write(
    store: FilesystemObjectStore,
    keys: LocalKeyProvider,
    backup_id: str,
    data: bytes | Iterable[bytes],
    **kwargs: object,
) -> Manifest:
    source = _pieces(data) if isinstance(data, bytes) else data
    options: dict[str, object] = {"chunk_size": CHUNK}
    options.update(kwargs)
    return write_backup(
        store,
        keys,
        backup_id,
        source,
        environment="dev",
        source=BackupSourceInfo(kind="postgres", name="orders-db"),
        started_at=NOW,
        consistent_at=NOW,
        **options,  # type: ignore[arg-type]
    )


def _restore(store: FilesystemObjectStore, keys: LocalKeyProvider, backup_id: str, **kwargs: object) -> bytes:
    out: list[bytes] = []
    restore_backup(store, backup_id, keys, out.append, **kwargs)  # type: ignore[arg-type]
    return b"".join(out)


def _one_chunk(chunk_size: int) -> bytes:
    rng, length = random.Random(3), chunk_size
    for _ in range(50):
        data = rng.randbytes(length)
        size = len(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data))
        if size == chunk_size:
            return data
        length -= size - chunk_size
    raise AssertionError("could not size the input")


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("empty", b""),
        ("one-byte", b"\x00"),
        ("one-chunk", _one_chunk(CHUNK)),
        ("many-chunks", b"".join(f"{i}\trow {i * 7919 % 10007}\n".encode() for i in range(60_000))),
        ("incompressible", random.Random(8).randbytes(40 * CHUNK + 1)),
    ],
)
def test_round_trip(store: FilesystemObjectStore, keys: LocalKeyProvider, case: str, data: bytes) -> None:
    backup_id = f"dev/orders-db/{case}"
    manifest = _write(store, keys, backup_id, data)
    assert manifest.sizes.plaintext == len(data)
    assert manifest.sha256.plaintext == hashlib.sha256(data).hexdigest()
    stored = store.get_bytes(data_object_key(backup_id))
    assert manifest.sizes.ciphertext == len(stored)
    assert manifest.sha256.ciphertext == hashlib.sha256(stored).hexdigest()
    assert manifest.encryption.key_id == keys.key_id
    assert verify_backup(store, backup_id, keys) == manifest
    assert _restore(store, keys, backup_id) == data
    assert _restore(store, keys, backup_id, verify_first=False) == data
    if case == "one-chunk":
        assert manifest.format.chunks == 1
    if case == "many-chunks":
        assert manifest.format.chunks > 10


def test_manifest_is_complete_and_stored_last(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    seen: list[set[str]] = []

    def source() -> Iterator[bytes]:
        for piece in _pieces(random.Random(1).randbytes(5 * CHUNK)):
            seen.append({info.key for info in store.list("dev/")})
            yield piece

    tables = [TableChecksum(name="public.orders", rows=3, checksum="abc", algorithm="md5")]
    resolved: list[bool] = []

    def late_tables() -> list[TableChecksum]:
        resolved.append(True)
        return tables

    manifest = _write(
        store,
        keys,
        "dev/orders-db/full",
        source(),
        tables=late_tables,
        tools={"pg_dump": "16.3"},
        extra={"ticket": "OPS-7"},
        zstd_level=5,
    )
    assert all(keys_now == set() for keys_now in seen)  # nothing is visible while streaming
    assert resolved == [True]
    stored = Manifest.from_json(store.get_bytes(manifest_object_key("dev/orders-db/full")))
    assert stored == manifest
    assert stored.tables == tuple(tables)
    assert stored.tools.others == {"pg_dump": "16.3"}
    assert stored.tools.libzstd == ".".join(map(str, zstandard.ZSTD_VERSION))
    assert stored.compression.level == 5
    assert stored.format.chunk_size == CHUNK
    assert stored.extra == {"ticket": "OPS-7"}
    assert (stored.started_at, stored.consistent_at) == (NOW, NOW)
    assert stored.source.name == "orders-db"
    assert stored.mac is not None


def test_list_find_and_delete(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    _write(store, keys, "dev/orders-db/b2", b"two")
    _write(store, keys, "dev/orders-db/b1", b"one")
    _write(store, keys, "staging/orders-db/b1", b"three")
    store.put_bytes("dev/orders-db/crashed/data.bin", b"partial")  # a run that died before its manifest
    assert [m.backup_id for m in list_backups(store)] == [
        "dev/orders-db/b1",
        "dev/orders-db/b2",
        "staging/orders-db/b1",
    ]
    assert [m.backup_id for m in list_backups(store, "dev/")] == ["dev/orders-db/b1", "dev/orders-db/b2"]
    assert find_incomplete_backups(store) == ["dev/orders-db/crashed"]
    delete_backup(store, "dev/orders-db/b1")
    assert [m.backup_id for m in list_backups(store, "dev/")] == ["dev/orders-db/b2"]
    with pytest.raises(NotFoundError, match="dev/orders-db/b1 not found"):
        verify_backup(store, "dev/orders-db/b1", keys)


def test_existing_backup_is_not_overwritten(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    first = _write(store, keys, "dev/orders-db/same", b"first")
    with pytest.raises(ConflictError, match="already exists"):
        _write(store, keys, "dev/orders-db/same", b"second")
    assert verify_backup(store, "dev/orders-db/same", keys) == first
    assert _restore(store, keys, "dev/orders-db/same") == b"first"


def test_progress_events(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    events: list[ProgressEvent] = []
    data = random.Random(4).randbytes(10 * CHUNK)
    _write(store, keys, "dev/orders-db/p", data, progress=events.append)
    restore_backup(store, "dev/orders-db/p", keys, lambda _b: None, progress=events.append)
    phases = [e.phase for e in events]
    # write, read-back verify, then verify and restore passes
    assert phases[0] == "backup"
    assert phases[-1] == "restore"
    for phase in ("backup", "verify", "restore"):
        mine = [e for e in events if e.phase == phase]
        stored = [e.stored_bytes for e in mine]
        assert stored == sorted(stored)
        assert mine[-1].done
        assert mine[-1].plaintext_bytes == len(data)
    assert events[-1].fraction == 1.0
    assert [e for e in events if e.phase == "backup"][-1].total_stored_bytes is None


# -- failures while writing ------------------------------------------------------------------------


class SourceBrokeError(RuntimeError):
    pass


def test_failing_source_leaves_nothing(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    def source() -> Iterator[bytes]:
        yield from _pieces(random.Random(2).randbytes(20 * CHUNK))
        raise SourceBrokeError("pg_dump exited with status 1")

    with pytest.raises(SourceBrokeError):
        _write(store, keys, "dev/orders-db/broken", source())
    assert list(store.list("")) == []
    assert list_backups(store) == []
    assert find_incomplete_backups(store) == []


class CorruptingStore(FilesystemObjectStore):
    """A real filesystem store whose disk flips one bit of every object it streams (fault injection)."""

    def put_stream(
        self, key: str, chunks: Iterable[bytes], metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        def damaged() -> Iterator[bytes]:
            for index, chunk in enumerate(chunks):
                yield chunk[:-1] + bytes([chunk[-1] ^ 0x10]) if index == 2 else chunk

        return super().put_stream(key, damaged(), metadata)


class ManifestWriteFails(FilesystemObjectStore):
    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise TransientError("disk went away", system="objectstore", operation=f"put_if_absent {key}")


class TruncatingStore(FilesystemObjectStore):
    """Stops reading the stream early, as a buggy adapter might, and reports success."""

    def put_stream(
        self, key: str, chunks: Iterable[bytes], metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        iterator = iter(chunks)
        return super().put_stream(key, [next(iterator), next(iterator)], metadata)


def test_corruption_found_after_upload_deletes_the_data(tmp_path: Path, keys: LocalKeyProvider) -> None:
    store = CorruptingStore(tmp_path / "corrupting")
    with pytest.raises(IntegrityError, match=r"chunk 1 .*authentication failed"):
        _write(store, keys, "dev/orders-db/c", random.Random(5).randbytes(10 * CHUNK))
    assert list(store.list("")) == []


def test_failed_manifest_write_deletes_the_data(tmp_path: Path, keys: LocalKeyProvider) -> None:
    store = ManifestWriteFails(tmp_path / "flaky")
    with pytest.raises(TransientError, match="disk went away"):
        _write(store, keys, "dev/orders-db/m", b"data")
    assert list(store.list("")) == []


def test_store_that_stops_reading_early_is_caught(tmp_path: Path, keys: LocalKeyProvider) -> None:
    store = TruncatingStore(tmp_path / "short")
    with pytest.raises(IntegrityError, match="stopped reading"):
        # more than zstd's 128 KiB block, so the writer is still mid-stream when the store stops
        _write(store, keys, "dev/orders-db/t", random.Random(6).randbytes(100 * CHUNK))
    assert list(store.list("")) == []


def test_unverified_write_still_checks_size(tmp_path: Path, keys: LocalKeyProvider) -> None:
    store = CorruptingStore(tmp_path / "corrupting")
    manifest = _write(
        store, keys, "dev/orders-db/nv", random.Random(5).randbytes(10 * CHUNK), verify_after_write=False
    )
    # without read-back the bit flip is only found by verify, which is why read-back is the default
    with pytest.raises(IntegrityError, match="chunk 1"):
        verify_backup(store, manifest.backup_id, keys)


# -- damage to a stored backup ---------------------------------------------------------------------


BACKUP = "dev/orders-db/victim"
DATA = b"".join(f"{i}\tvictim row {i * 31 % 997}\n".encode() for i in range(30_000))


@pytest.fixture
def victim(store: FilesystemObjectStore, keys: LocalKeyProvider) -> Manifest:
    manifest = _write(store, keys, BACKUP, DATA)
    assert manifest.format.chunks >= 4
    return manifest


def _frames(store: FilesystemObjectStore, backup_id: str) -> tuple[bytes, list[bytes]]:
    blob = store.get_bytes(data_object_key(backup_id))
    frames: list[bytes] = []
    header_end = _header_length(blob)
    head, pos = blob[:header_end], header_end
    while pos < len(blob):
        _, length = FRAME_HEAD.unpack_from(blob, pos)
        frames.append(blob[pos : pos + FRAME_HEAD.size + length])
        pos += FRAME_HEAD.size + length
    return head, frames


def _header_length(blob: bytes) -> int:
    pos = 8 + 1 + 1 + 4 + 32
    for _ in range(3):
        pos += 2 + int.from_bytes(blob[pos : pos + 2], "big")
    return pos


def _replace_data(store: FilesystemObjectStore, data: bytes) -> None:
    store.put_bytes(data_object_key(BACKUP), data)


def _assert_rejected(store: FilesystemObjectStore, keys: LocalKeyProvider, pattern: str) -> None:
    with pytest.raises(IntegrityError, match=pattern):
        verify_backup(store, BACKUP, keys)
    delivered: list[bytes] = []
    with pytest.raises(IntegrityError, match=pattern):
        restore_backup(store, BACKUP, keys, delivered.append)
    assert delivered == [], "a backup that did not verify delivered plaintext to the restore target"


def _flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ 0x04]) + blob[offset + 1 :]


DAMAGE: dict[str, tuple[Callable[[bytes, list[bytes]], bytes], str]] = {
    "flipped byte in a middle chunk": (
        lambda head, f: head + b"".join(f[:2]) + _flip(f[2], 40) + b"".join(f[3:]),
        r"chunk 2 \(byte offset \d+\): authentication failed",
    ),
    "flipped byte in the header": (lambda head, f: _flip(head, 30) + b"".join(f), "authentication failed"),
    "flipped byte in the last tag": (
        lambda head, f: head + b"".join(f[:-1]) + _flip(f[-1], len(f[-1]) - 1),
        r"\(final\): authentication failed",
    ),
    "truncated mid-chunk": (lambda head, f: head + b"".join(f)[:-100], "truncated"),
    "truncated at a chunk boundary": (lambda head, f: head + b"".join(f[:3]), "truncated.*without the final"),
    "missing final chunk": (lambda head, f: head + b"".join(f[:-1]), "without the final chunk"),
    "reordered chunks": (
        lambda head, f: head + f[0] + f[2] + f[1] + b"".join(f[3:]),
        "chunk 1 .*authentication failed",
    ),
    "trailing garbage": (lambda head, f: head + b"".join(f) + b"\x00junk", "after the final chunk"),
    "header only": (lambda head, f: head, "right after the header"),
    "empty object": (lambda head, f: b"", "truncated"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_data_is_rejected_and_nothing_is_restored(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest, damage: str
) -> None:
    change, pattern = DAMAGE[damage]
    head, frames = _frames(store, BACKUP)
    _replace_data(store, change(head, frames))
    _assert_rejected(store, keys, pattern)


def test_chunk_spliced_from_another_backup(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    _write(store, keys, "dev/orders-db/other", DATA)  # same content, same key file, another data key
    head, frames = _frames(store, BACKUP)
    _, other = _frames(store, "dev/orders-db/other")
    assert frames[1] != other[1]
    _replace_data(store, head + frames[0] + other[1] + b"".join(frames[2:]))
    _assert_rejected(store, keys, "chunk 1 .*authentication failed")


def test_data_object_of_another_backup(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    _write(store, keys, "dev/orders-db/other", DATA)
    _replace_data(store, store.get_bytes(data_object_key("dev/orders-db/other")))
    _assert_rejected(store, keys, "header does not match the manifest .*backup id, wrapped data key")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("sizes", "plaintext"), 1),
        (("sha256", "plaintext"), "0" * 64),
        (("format", "chunks"), 1),
        (("environment",), "production"),
        (("tables",), [{"name": "public.orders", "rows": 1, "checksum": "x", "algorithm": None}]),
    ],
)
def test_edited_manifest_is_rejected(
    store: FilesystemObjectStore,
    keys: LocalKeyProvider,
    victim: Manifest,
    path: tuple[str, ...],
    value: object,
) -> None:
    document = json.loads(store.get_bytes(manifest_object_key(BACKUP)))
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    store.put_bytes(manifest_object_key(BACKUP), json.dumps(document).encode())
    _assert_rejected(store, keys, "manifest authentication failed")


def test_manifest_of_another_backup_is_rejected(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    _write(store, keys, "dev/orders-db/other", b"other")
    store.put_bytes(manifest_object_key(BACKUP), store.get_bytes(manifest_object_key("dev/orders-db/other")))
    _assert_rejected(store, keys, "describes backup 'dev/orders-db/other'")


def test_wrong_key_provider(store: FilesystemObjectStore, victim: Manifest, tmp_path: Path) -> None:
    other_keys = LocalKeyProvider(tmp_path / "other-keys" / "backup.key")
    _assert_rejected(store, other_keys, "cannot unwrap its data key")


class SameIdProvider:
    """A provider that claims the right key id but unwraps to an unrelated key (a misbehaving KMS)."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def generate_data_key(self) -> DataKey:
        raise AssertionError("not used")

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        return hashlib.sha256(wrapped).digest()


def test_key_that_unwraps_to_the_wrong_bytes(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    _assert_rejected(store, SameIdProvider(keys.key_id), "manifest authentication failed.*wrong key provider")


def test_one_pass_restore_delivers_only_authenticated_chunks(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    head, frames = _frames(store, BACKUP)
    _replace_data(store, head + b"".join(frames[:-1]) + _flip(frames[-1], 30))
    delivered: list[bytes] = []
    with pytest.raises(IntegrityError, match="final"):
        restore_backup(store, BACKUP, keys, delivered.append, verify_first=False)
    # the scratch-target mode: earlier authenticated chunks were delivered, and the caller must discard them
    assert delivered
    assert DATA.startswith(b"".join(delivered))


def test_object_changed_between_verify_and_restore(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    head, frames = _frames(store, BACKUP)

    def damage_after_verify(event: ProgressEvent) -> None:
        if event.phase == "verify" and event.done:  # the object is cut short behind our back
            _replace_data(store, head + b"".join(frames[:-1]))

    delivered: list[bytes] = []
    with pytest.raises(
        IntegrityError, match=r"without the final chunk.*changed while it was restored: discard"
    ):
        restore_backup(store, BACKUP, keys, delivered.append, progress=damage_after_verify)
    assert DATA.startswith(b"".join(delivered))


def test_missing_backup(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    with pytest.raises(NotFoundError, match="never completed"):
        restore_backup(store, "dev/orders-db/none", keys, lambda _b: None)


# -- secrecy ---------------------------------------------------------------------------------------


class RecordingProvider(LocalKeyProvider):
    issued: list[bytes]

    def generate_data_key(self) -> DataKey:
        key = super().generate_data_key()
        self.issued = [*getattr(self, "issued", []), key.plaintext]
        return key


def test_data_key_and_plaintext_never_stored_in_clear(tmp_path: Path, store: FilesystemObjectStore) -> None:
    keys = RecordingProvider(tmp_path / "rec" / "k")
    row = b"42\tjane.doe@example.com\tSECRET-CARD-4111111111111111\n"
    data = row * 20_000
    manifest = _write(store, keys, "dev/orders-db/s", data)
    (data_key,) = keys.issued
    everything = b"".join(path.read_bytes() for path in (tmp_path / "store").rglob("*") if path.is_file())
    for needle in (
        b"SECRET-CARD",
        zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)[20:60],
        data_key,
        data_key.hex().encode(),
        base64.b64encode(data_key),
    ):
        assert needle not in everything
    assert data_key.hex() not in repr(manifest)
    # the wrong key's error message carries no key material either
    with pytest.raises(IntegrityError) as info:
        verify_backup(store, "dev/orders-db/s", SameIdProvider(keys.key_id))
    assert data_key.hex() not in str(info.value)


# -- bounded memory --------------------------------------------------------------------------------


def test_pipeline_memory_is_bounded(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    total, piece = 64 << 20, 64 << 10
    digest = hashlib.sha256()

    def source() -> Iterator[bytes]:
        for index in range(total // piece):
            block = os.urandom(piece // 2) + bytes(piece // 2) if index % 2 else bytes(piece)
            digest.update(block)
            yield block

    restored = hashlib.sha256()
    tracemalloc.start()
    try:
        manifest = write_backup(
            store,
            keys,
            "dev/orders-db/big",
            source(),
            environment="dev",
            source=BackupSourceInfo(kind="sqlite", name="big"),
            started_at=NOW,
            consistent_at=NOW,
        )
        restore_backup(store, "dev/orders-db/big", keys, restored.update)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest.sizes.plaintext == total
    assert restored.hexdigest() == digest.hexdigest() == manifest.sha256.plaintext
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"backup_id": "dev//x"}, "invalid backup id"),
        ({"environment": ""}, "environment must not be empty"),
        ({"started_at": datetime(2024, 1, 1)}, "started_at must be timezone-aware"),
        ({"extra": {"when": datetime.now(UTC)}}, "extra must be JSON-serialisable"),
        ({"extra": lambda: {"when": object()}}, "extra must be JSON-serialisable"),
        ({"chunk_size": 1}, "chunk_size must be between"),
        ({"zstd_level": 30}, "zstd level must be between 1 and 22"),
        ({"tables": lambda: [{"name": "t"}]}, "invalid backup description: tables"),
    ],
)
def test_bad_arguments_are_refused_and_leave_nothing(
    store: FilesystemObjectStore, keys: LocalKeyProvider, change: dict[str, object], pattern: str
) -> None:
    arguments: dict[str, object] = {
        "backup_id": "dev/orders-db/bad",
        "environment": "dev",
        "source": BackupSourceInfo(kind="postgres", name="orders-db"),
        "started_at": NOW,
        "consistent_at": NOW,
        "chunk_size": CHUNK,
    }
    arguments.update(change)
    backup_id = arguments.pop("backup_id")
    with pytest.raises(ConfigurationError, match=pattern):
        write_backup(store, keys, backup_id, [b"data"], **arguments)  # type: ignore[arg-type]
    assert list(store.list("")) == []


class ShortKeyProvider(LocalKeyProvider):
    def generate_data_key(self) -> DataKey:
        key = super().generate_data_key()
        return DataKey(plaintext=key.plaintext[:16], wrapped=key.wrapped, key_id=key.key_id)


def test_key_provider_with_a_short_key_is_refused(store: FilesystemObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="16-byte data key; AES-256 needs 32"):
        _write(store, ShortKeyProvider(tmp_path / "short" / "k"), "dev/orders-db/short", b"x")
    assert list(store.list("")) == []


def test_late_metadata_is_read_after_the_stream(store: FilesystemObjectStore, keys: LocalKeyProvider) -> None:
    facts: dict[str, object] = {}
    tools: dict[str, str] = {}

    def source() -> Iterator[bytes]:
        yield b"COPY public.orders FROM stdin;\n"
        tools["pg_dump"] = "16.3"
        facts["objects"] = 12

    manifest = _write(
        store, keys, "dev/orders-db/late", source(), tools=lambda: tools, extra=lambda: dict(facts)
    )
    assert manifest.tools.others == {"pg_dump": "16.3"}
    assert manifest.extra == {"objects": 12}
    assert verify_backup(store, "dev/orders-db/late", keys) == manifest


class SinkFailedError(OSError):
    pass


def test_sink_errors_propagate(
    store: FilesystemObjectStore, keys: LocalKeyProvider, victim: Manifest
) -> None:
    def sink(_piece: bytes) -> None:
        raise SinkFailedError("restore target is full")

    with pytest.raises(SinkFailedError, match="target is full"):
        restore_backup(store, BACKUP, keys, sink)
