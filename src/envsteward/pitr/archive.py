"""The WAL archive: ``wal push`` for PostgreSQL's ``archive_command``, ``wal fetch`` for ``restore_command``.

Each WAL file is one object in the backup format of :mod:`envsteward.backup.format` (zstd, then AES-256-GCM
in authenticated chunks under a fresh data key wrapped by the target's key provider). The object's header
carries the object key as its id, and the id is bound into every chunk: a segment copied or renamed to
another key fails authentication, as does any flipped, dropped or reordered byte.

Push (:func:`push_wal`):

1. read the file; for a segment, check its first page (the page address its name stands for) and the
   archive's identity (PostgreSQL's system identifier, recorded in ``archive.json`` by the first push):
   a segment of another cluster is refused;
2. encrypt it in memory (a segment is 16 MiB) and store it with ``put_if_absent``: the filesystem store
   links a fully written, fsynced temp file into place, S3 is a single PutObject with ``If-None-Match``,
   so a killed push leaves no object (at most a temp file the store's leftover sweep removes), never a
   partial one that fetch could see;
3. when the object already exists (a push that PostgreSQL retried after a crash, or a concurrent push),
   it is decrypted and compared: the same content succeeds (``already-archived``); different content
   raises ConflictError - PostgreSQL keeps the segment and retries, and the operator must look;
4. with a DR store, the same object bytes are put there the same way, before returning: the push
   succeeds only when both regions hold the segment (synchronous replication; a DR outage therefore
   holds segments back in ``pg_wal`` - watch its size, see the README).

Fetch (:func:`fetch_wal`) reads from the primary store, else (missing there or unreachable) the DR store,
authenticates and decompresses the whole object, checks a segment's first page and identity again, and
only then writes the file (to a temp name, renamed into place). A missing file is :class:`WalNotFoundError`
(PostgreSQL probes for files that do not exist, e.g. the next timeline's ``.history``).

External calls: the object stores and the key provider passed in; local files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from envsteward.backup.format import BackupReader, BackupWriter, StreamHeader
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from envsteward.pitr.walnames import (
    IDENTITY_OBJECT,
    SegmentHeader,
    read_segment_header,
    wal_kind,
    wal_object_key,
)
from envsteward.ports import KeyProvider, ObjectStore

WAL_CHUNK_SIZE = 1 << 20
DEFAULT_WAL_ZSTD_LEVEL = 1
"""zstd level 1: WAL compresses about as well at 1 as at 3 and the archiver is serial (benchmarks/pitr)."""

FetchSource = Literal["any", "primary", "dr"]


class WalNotFoundError(NotFoundError):
    """The WAL file is in no store that was asked (``wal fetch`` exits 1 quietly: PostgreSQL probes)."""


@dataclass(frozen=True)
class WalArchive:
    """Where one target's WAL lives and how it is protected."""

    primary: ObjectStore
    dr: ObjectStore | None
    keys: KeyProvider
    prefix: str
    """``<env>/<target>.pitr/`` (:func:`envsteward.pitr.walnames.archive_prefix`)."""
    zstd_level: int = DEFAULT_WAL_ZSTD_LEVEL


@dataclass(frozen=True)
class PushResult:
    name: str
    status: Literal["archived", "already-archived"]
    dr_status: Literal["archived", "already-archived", "no-dr-store"]
    size: int
    stored_size: int
    seconds: float
    sha256: str = ""
    """SHA-256 (hex) of the bytes read and stored: the archive-ahead binds its ``.ok`` record to it."""
    key: str = ""
    """The object key the file is stored under (in every region)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "dr_status": self.dr_status,
            "size": self.size,
            "stored_size": self.stored_size,
            "seconds": self.seconds,
            "sha256": self.sha256,
            "key": self.key,
        }


@dataclass(frozen=True)
class FetchResult:
    name: str
    region: Literal["primary", "dr"]
    size: int
    seconds: float
    partial: bool = False
    """Served from a streamed ``.partial`` object (the newest segment only; see :func:`fetch_partial`)."""


# ---------------------------------------------------------------------------------------------------------
# One object <-> one WAL file
# ---------------------------------------------------------------------------------------------------------


def seal_wal(keys: KeyProvider, object_id: str, plaintext: bytes, *, zstd_level: int) -> bytes:
    """The backup-format object for ``plaintext`` with ``object_id`` in its header (a fresh data key).

    Calls ``keys.generate_data_key``. Raises its errors and ConfigurationError."""
    data_key = keys.generate_data_key()
    header = StreamHeader.new(
        backup_id=object_id, key_id=data_key.key_id, wrapped_key=data_key.wrapped, chunk_size=WAL_CHUNK_SIZE
    )
    writer = BackupWriter(data_key.plaintext, header, zstd_level=zstd_level)
    parts = [writer.header_bytes(), *writer.write(plaintext), *writer.close()]
    return b"".join(parts)


def open_wal(keys: KeyProvider, object_id: str, sealed: bytes) -> bytes:
    """The plaintext of a WAL object, after every chunk authenticated and its header named ``object_id``.

    Calls ``keys.unwrap``. Raises IntegrityError naming ``object_id`` (altered, truncated, foreign or
    renamed object, wrong key) and the key provider's errors."""
    pieces: list[bytes] = []

    def check_header(header: StreamHeader) -> bytes:
        if header.backup_id != object_id:
            raise IntegrityError(
                f"{object_id}: the stored object was written as {header.backup_id!r} (a WAL file copied or "
                "renamed into place)"
            )
        return keys.unwrap(header.wrapped_key, header.key_id)

    reader = BackupReader(check_header, pieces.append)
    try:
        reader.feed(sealed)
        reader.close()
    except IntegrityError as exc:
        reader.abort()
        raise IntegrityError(f"WAL object {object_id}: {exc}") from None
    return b"".join(pieces)


# ---------------------------------------------------------------------------------------------------------
# Archive identity
# ---------------------------------------------------------------------------------------------------------


def read_identity(store: ObjectStore, prefix: str) -> dict[str, Any] | None:
    """The archive's ``archive.json`` (system identifier, segment size), or None before the first push.

    Calls the store. Raises IntegrityError for a damaged document, the store's errors."""
    try:
        raw = store.get_bytes(prefix + IDENTITY_OBJECT)
    except NotFoundError:
        return None
    try:
        document = json.loads(raw)
        int(document["system_identifier"])
        int(document["segment_size"])
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{prefix}{IDENTITY_OBJECT} is not a valid WAL archive identity") from None
    return dict(document)


def check_identity(
    store: ObjectStore, prefix: str, header: SegmentHeader, name: str, *, create: bool
) -> None:
    """Raise IntegrityError when segment ``name`` belongs to another cluster than the archive's.

    With ``create``, the first segment records the identity (``put_if_absent``: one writer wins). Calls the
    store."""
    identity = read_identity(store, prefix)
    if identity is None:
        if not create:
            return
        document = {
            "system_identifier": str(header.system_identifier),
            "segment_size": header.segment_size,
            "created_at": datetime.now(UTC).isoformat(),
        }
        if store.put_if_absent(prefix + IDENTITY_OBJECT, json.dumps(document, indent=2).encode() + b"\n"):
            return
        identity = read_identity(store, prefix)
        if identity is None:  # pragma: no cover - deleted right after someone created it
            raise TransientError(f"{prefix}{IDENTITY_OBJECT} vanished while it was being created; retry")
    if int(identity["system_identifier"]) != header.system_identifier:
        raise IntegrityError(
            f"WAL segment {name} belongs to the cluster with system identifier {header.system_identifier}, "
            f"but this archive ({prefix}) holds the WAL of system {identity['system_identifier']}: a foreign "
            "segment (two clusters archiving to one target, or a new cluster reusing an old target)"
        )
    if int(identity["segment_size"]) != header.segment_size:
        raise IntegrityError(
            f"WAL segment {name} is {header.segment_size} bytes, this archive holds "
            f"{identity['segment_size']}-byte segments"
        )


# ---------------------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------------------


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"WAL file {path} does not exist") from None
    except OSError as exc:
        raise PermanentError(f"cannot read WAL file {path}: {exc.strerror}") from None


def _get_or_none(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get_bytes(key)
    except NotFoundError:
        return None


def _same_or_conflict(
    archive: WalArchive, *, key: str, name: str, existing: bytes, data: bytes, where: str
) -> None:
    stored = open_wal(archive.keys, key, existing)
    if hashlib.sha256(stored).digest() != hashlib.sha256(data).digest():
        raise ConflictError(
            f"WAL file {name} is already archived in the {where} store with DIFFERENT content "
            f"({len(stored)} bytes stored, {len(data)} bytes now): refusing to overwrite it. Two clusters "
            "may be archiving to the same target, or the server was restored without a new timeline; check "
            "`envsteward pitr check`"
        )


class _Sealed:
    """Seal at most once, lazily (the DR copy reuses the primary's bytes)."""

    def __init__(self, make: Callable[[], bytes], value: bytes | None = None) -> None:
        self._make = make
        self.value = value

    def __call__(self) -> bytes:
        if self.value is None:
            self.value = self._make()
        return self.value


def _store_once(
    archive: WalArchive, store: ObjectStore, *, key: str, name: str, data: bytes, sealed: _Sealed, where: str
) -> tuple[bytes, Literal["archived", "already-archived"]]:
    existing = _get_or_none(store, key)
    if existing is None:
        obj = sealed()
        if store.put_if_absent(key, obj):
            info = store.head(key)
            if info is None or info.size != len(obj):
                raise IntegrityError(
                    f"WAL file {name}: the {where} store reports {info.size if info else 'no'} bytes stored, "
                    f"{len(obj)} were sent"
                )
            return obj, "archived"
        existing = store.get_bytes(key)  # lost a race with a concurrent push of the same file
    if sealed.value is not None and existing == sealed.value:
        return existing, "already-archived"
    _same_or_conflict(archive, key=key, name=name, existing=existing, data=data, where=where)
    return existing, "already-archived"


def push_wal(archive: WalArchive, path: Path, name: str | None = None) -> PushResult:
    """Archive the WAL file at ``path`` (PostgreSQL's ``%p``) as ``name`` (default: the file's name).

    Returns only after the object is stored in the primary store and, when there is one, the DR store.
    Idempotent for the same content. Calls the stores and the key provider; reads ``path``. Raises
    ConfigurationError (not a WAL file name), NotFoundError (no such file), IntegrityError (not a segment,
    a segment of another cluster, a store that kept other bytes), ConflictError (archived before with
    different content), and the stores' and key provider's errors (TransientError: retry later).
    """
    started = time.monotonic()
    name = name or path.name
    kind = wal_kind(name)
    key = wal_object_key(archive.prefix, name)
    data = _read_file(path)
    if kind == "segment":
        header = read_segment_header(data, name)
        check_identity(archive.primary, archive.prefix, header, name, create=True)
    sealed = _Sealed(lambda: seal_wal(archive.keys, key, data, zstd_level=archive.zstd_level))
    stored, status = _store_once(
        archive, archive.primary, key=key, name=name, data=data, sealed=sealed, where="primary"
    )
    dr_status: Literal["archived", "already-archived", "no-dr-store"] = "no-dr-store"
    if archive.dr is not None:
        if kind == "segment":
            check_identity(archive.dr, archive.prefix, header, name, create=True)
        _, dr_status = _store_once(
            archive,
            archive.dr,
            key=key,
            name=name,
            data=data,
            sealed=_Sealed(lambda: stored, stored),
            where="DR",
        )
    return PushResult(
        name=name,
        status=status,
        dr_status=dr_status,
        size=len(data),
        stored_size=len(stored),
        seconds=round(time.monotonic() - started, 4),
        sha256=hashlib.sha256(data).hexdigest(),
        key=key,
    )


# ---------------------------------------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------------------------------------


def _stores(archive: WalArchive, source: FetchSource) -> list[tuple[Literal["primary", "dr"], ObjectStore]]:
    found: list[tuple[Literal["primary", "dr"], ObjectStore]] = []
    if source in ("any", "primary"):
        found.append(("primary", archive.primary))
    if source in ("any", "dr"):
        if archive.dr is None:
            if source == "dr":
                raise ConfigurationError("wal fetch --from dr: no DR store is configured")
        else:
            found.append(("dr", archive.dr))
    return found


def fetch_wal(
    archive: WalArchive,
    name: str,
    destination: Path,
    source: FetchSource = "any",
    *,
    allow_partial: bool = True,
) -> FetchResult:
    """Restore WAL file ``name`` to ``destination`` (PostgreSQL's ``%f`` and ``%p``).

    Tries the primary store, then the DR store (``source`` limits this). A store that does not answer
    (TransientError) is skipped when another one follows. Nothing is written unless the whole object
    authenticated and, for a segment, its first page and cluster identity check out. A segment that no
    store holds whole is served from a streamed partial object when ``allow_partial`` and it is the newest
    one (:func:`fetch_partial`; ``wal stream``).

    Calls the stores and the key provider; writes ``destination`` (via a temp file in its folder). Raises
    WalNotFoundError, IntegrityError naming the segment (PostgreSQL must stop: ``wal fetch`` exits 126),
    ConfigurationError, and the stores' errors.
    """
    started = time.monotonic()
    kind = wal_kind(name)
    key = wal_object_key(archive.prefix, name)
    stores = _stores(archive, source)
    last_error: EnvstewardError | None = None
    for index, (region, store) in enumerate(stores):
        try:
            sealed = store.get_bytes(key)
        except NotFoundError:
            continue
        except TransientError as exc:
            if index + 1 < len(stores):
                last_error = exc
                continue
            raise
        data = open_wal(archive.keys, key, sealed)
        if kind == "segment":
            header = read_segment_header(data, name)
            check_identity(store, archive.prefix, header, name, create=False)
        _write_atomically(destination, data)
        return FetchResult(
            name=name, region=region, size=len(data), seconds=round(time.monotonic() - started, 4)
        )
    if last_error is not None:
        raise last_error
    if allow_partial and kind == "segment":
        partial = fetch_partial(archive, name, destination, source)
        if partial is not None:
            return partial
    where = " or ".join(region for region, _ in stores)
    raise WalNotFoundError(f"WAL file {name} is not in the {where} store")


def absent_names(archive: WalArchive, names: list[str], source: FetchSource = "any") -> list[str]:
    """The names in ``names`` that :func:`fetch_wal` would answer with WalNotFoundError right now: no store
    asked holds the object and, for a segment, no store holds a streamed partial of it.

    A store that does not answer (or any other error) makes the name unknown, never absent: it is left
    out. Calls the stores (``head``); raises ConfigurationError (``--from dr`` without a DR store)."""
    stores = _stores(archive, source)
    found: list[str] = []
    for name in names:
        keys = [wal_object_key(archive.prefix, name)]
        if wal_kind(name) == "segment":
            keys.append(partial_object_key(archive.prefix, name))
        try:
            if all(store.head(key) is None for _, store in stores for key in keys):
                found.append(name)
        except EnvstewardError:
            continue
    return found


def _write_atomically(destination: Path, data: bytes) -> None:
    tmp = destination.with_name(f".{destination.name}.envsteward-{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise PermanentError(f"cannot write {destination}: {exc.strerror}") from None


# ---------------------------------------------------------------------------------------------------------
# Streamed partial segments (``wal stream``)
# ---------------------------------------------------------------------------------------------------------

STREAM_FOLDER = "stream"
"""``<prefix>stream/<segment>.partial``: the segment ``pg_receivewal`` is writing, replaced every few
seconds. Kept apart from ``wal/`` (whose objects are immutable) so prefetch, retention and the
idempotency rules of :func:`push_wal` never mistake one for an archived file."""


def partial_object_key(prefix: str, segment: str) -> str:
    """The key of the streamed partial object of ``segment``. Raises ConfigurationError for a bad name."""
    if wal_kind(segment) != "segment":
        raise ConfigurationError(f"{segment!r} is not a WAL segment name")
    return f"{prefix}{STREAM_FOLDER}/{segment}.partial"


def push_partial(archive: WalArchive, path: Path, segment: str) -> int:
    """Store the partly written segment at ``path`` as the partial object of ``segment`` (replacing the
    previous one) in the primary store, then the DR store. Returns the stored size.

    Calls the stores and the key provider; reads ``path``. Raises NotFoundError, IntegrityError (not the
    start of a segment of this archive's cluster), the stores' and key provider's errors."""
    key = partial_object_key(archive.prefix, segment)
    data = _read_file(path)
    header = read_segment_header(data, segment)
    check_identity(archive.primary, archive.prefix, header, segment, create=True)
    sealed = seal_wal(archive.keys, key, data, zstd_level=archive.zstd_level)
    archive.primary.put_bytes(key, sealed)
    if archive.dr is not None:
        check_identity(archive.dr, archive.prefix, header, segment, create=True)
        archive.dr.put_bytes(key, sealed)
    return len(sealed)


def drop_partials(archive: WalArchive, up_to: str) -> int:
    """Delete the partial objects of segments up to and including ``up_to`` (now archived whole), in both
    stores. Returns how many were deleted. Calls the stores (list, delete)."""
    head = f"{archive.prefix}{STREAM_FOLDER}/"
    deleted = 0
    for store in [archive.primary] + ([archive.dr] if archive.dr is not None else []):
        for info in list(store.list(head)):
            segment = info.key[len(head) :].removesuffix(".partial")
            if len(segment) == len(up_to) and segment[:8] == up_to[:8] and segment <= up_to:
                store.delete(info.key)
                deleted += 1
    return deleted


def _next_segment_name(name: str, segment_size: int) -> str:
    from envsteward.pitr.prefetch import next_segment

    return next_segment(name, segment_size)


def fetch_partial(
    archive: WalArchive, name: str, destination: Path, source: FetchSource = "any"
) -> FetchResult | None:
    """Serve segment ``name`` from its streamed partial object, or None.

    Only for the newest segment: the partial must be the newest partial of its timeline in that store and
    the segment after it must not be archived whole (otherwise serving a cut-off segment would hide a gap).
    The object is authenticated and checked like a whole segment; PostgreSQL replays it up to the last
    complete record and then ends recovery. Calls the stores and the key provider; writes ``destination``.
    Raises IntegrityError and the stores' errors."""
    started = time.monotonic()
    key = partial_object_key(archive.prefix, name)
    head = f"{archive.prefix}{STREAM_FOLDER}/"
    for region, store in _stores(archive, source):
        try:
            sealed = store.get_bytes(key)
        except (NotFoundError, TransientError):
            continue
        newer = [
            info.key
            for info in store.list(head)
            if info.key[len(head) : len(head) + 8] == name[:8] and info.key[len(head) :] > f"{name}.partial"
        ]
        data = open_wal(archive.keys, key, sealed)
        header = read_segment_header(data, name)
        following = wal_object_key(archive.prefix, _next_segment_name(name, header.segment_size))
        if newer or store.head(following) is not None:
            continue
        check_identity(store, archive.prefix, header, name, create=False)
        _write_atomically(destination, data)
        return FetchResult(
            name=name,
            region=region,
            size=len(data),
            seconds=round(time.monotonic() - started, 4),
            partial=True,
        )
    return None
