"""Backup, verify, restore and list: the format of :mod:`envsteward.backup.format` over the ports.

Write path: source stream → zstd → AES-256-GCM chunks → ``ObjectStore.put_stream("<id>/data.bin")`` →
(read back and verify, by default) → ``"<id>/manifest.json"`` written last with ``put_if_absent``. The
manifest marks the backup complete: when anything before it fails, the data object is deleted and the
error propagates, so an interrupted backup leaves neither object behind.

Read path: ``"<id>/manifest.json"`` → ``KeyProvider.unwrap`` → stream the data object → check the header
against the manifest and the manifest's MAC → authenticate every chunk → decompress → hash → compare sizes
and SHA-256 of plaintext and ciphertext with the manifest. Any mismatch raises IntegrityError.

"Nothing is restored from a backup that did not verify": :func:`restore_backup` by default verifies the
whole object first (a pass that writes plaintext nowhere) and only then streams it to the sink in a
second pass, which authenticates every chunk again before handing on its plaintext. If the object changes
between the two passes (or with ``verify_first=False``, if the object is bad), the sink may already have
received plaintext from authenticated chunks when IntegrityError is raised: restore into a scratch target
and discard it on any error.

External calls: the ``ObjectStore`` and ``KeyProvider`` passed in; nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeAlias, TypeVar

import zstandard
from pydantic import ValidationError

from envsteward import __version__ as envsteward_version
from envsteward.backup.format import (
    DATA_KEY_BYTES,
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    BackupReader,
    BackupWriter,
    StreamHeader,
    StreamStats,
    derive_keys,
)
from envsteward.backup.manifest import (
    DATA_OBJECT_NAME,
    MANIFEST_OBJECT_NAME,
    BackupDigests,
    BackupSizes,
    BackupSourceInfo,
    CompressionInfo,
    EncryptionInfo,
    FormatInfo,
    Manifest,
    TableChecksum,
    ToolVersions,
    check_backup_id,
    data_object_key,
    manifest_object_key,
)
from envsteward.backup.progress import Phase, ProgressCallback, ProgressEvent
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
)
from envsteward.ports import KeyProvider, ObjectInfo, ObjectStore

T = TypeVar("T")
Sink = Callable[[bytes], None]
Late: TypeAlias = T | Callable[[], T]
"""A value, or a zero-argument callable returning it once the source stream has been read to its end."""
READ_PIECE = 1 << 20
DEFAULT_ZSTD_THREADS = 0


def new_backup_id(environment: str, source_name: str, now: datetime | None = None) -> str:
    """A fresh id ``<environment>/<source>/<UTC timestamp>-<random hex>``; sorts by time within a source.

    Raises ConfigurationError when the names cannot be part of an object key.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return check_backup_id(f"{environment}/{source_name}/{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}")


def tool_versions(others: Mapping[str, str] | None = None) -> ToolVersions:
    """The versions of envsteward and zstd in this process, plus ``others`` (e.g. pg_dump's)."""
    return ToolVersions(
        envsteward=envsteward_version,
        zstandard=zstandard.__version__,
        libzstd=".".join(str(part) for part in zstandard.ZSTD_VERSION),
        others=dict(others or {}),
    )


# ---------------------------------------------------------------------------------------------------------
# Write
# ---------------------------------------------------------------------------------------------------------


def write_backup(
    store: ObjectStore,
    key_provider: KeyProvider,
    backup_id: str,
    source_stream: Iterable[bytes],
    *,
    environment: str,
    source: BackupSourceInfo,
    started_at: datetime,
    consistent_at: datetime,
    tables: Late[Sequence[TableChecksum] | None] = None,
    tools: Late[Mapping[str, str] | None] = None,
    extra: Late[Mapping[str, Any] | None] = None,
    progress: ProgressCallback | None = None,
    zstd_level: int = 3,
    zstd_threads: int = DEFAULT_ZSTD_THREADS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    verify_after_write: bool = True,
    now: Callable[[], datetime] | None = None,
) -> Manifest:
    """Compress, encrypt and store ``source_stream`` as backup ``backup_id``; write its manifest last.

    ``tables`` (row counts and checksums), ``tools`` (tool versions, ``{"pg_dump": "16.3"}``) and ``extra``
    (free-form JSON labels, never secrets) may each be given as a zero-argument callable instead: it is
    called once after the stream was read to its end, since a dump often knows them only then.

    ``verify_after_write`` reads the stored object back and verifies it before the manifest is written
    (costs one read of the object; on by default).
    ``zstd_threads``: zstd worker threads; 0 (the default) compresses in this thread, -1 uses one worker
    per CPU. Workers help only on an idle multi-core host and cost about 15-20 MiB each
    (benchmarks/backup/README.md); set 2-4 on a dedicated backup worker, never -1 on a large host.

    Calls ``key_provider.generate_data_key`` once and the object store (put_stream, head, get_stream,
    put_if_absent, delete on failure). Raises ConfigurationError for bad arguments, ConflictError when
    the backup already exists, IntegrityError when the stored object does not match what was sent, the
    store's and key provider's errors, and any exception raised by ``source_stream`` — in every case after
    removing the partial data object, and with no manifest written.
    """
    check_backup_id(backup_id)
    _check_inputs(environment=environment, started_at=started_at, consistent_at=consistent_at)
    labels: Late[Mapping[str, Any] | None] = extra if callable(extra) else _json_labels(extra)  # fail early
    data_key_name = data_object_key(backup_id)
    manifest_name = manifest_object_key(backup_id)
    if store.head(manifest_name) is not None:
        raise ConflictError(f"backup {backup_id} already exists (its manifest is present); use a new id")

    data_key = key_provider.generate_data_key()
    if len(data_key.plaintext) != DATA_KEY_BYTES:
        raise ConfigurationError(
            f"key provider {data_key.key_id!r} returned a {len(data_key.plaintext)}-byte data key; "
            f"AES-256 needs {DATA_KEY_BYTES}"
        )
    header = StreamHeader.new(
        backup_id=backup_id, key_id=data_key.key_id, wrapped_key=data_key.wrapped, chunk_size=chunk_size
    )
    writer = BackupWriter(data_key.plaintext, header, zstd_level=zstd_level, zstd_threads=zstd_threads)

    def report() -> None:
        if progress is not None:
            progress(
                ProgressEvent(
                    phase="backup",
                    backup_id=backup_id,
                    stored_bytes=writer.stats.ciphertext_size,
                    plaintext_bytes=writer.stats.plaintext_size,
                    done=writer.closed,
                )
            )

    def frames() -> Iterator[bytes]:
        yield writer.header_bytes()
        for data in source_stream:
            sealed = writer.write(bytes(data))
            yield from sealed
            if sealed:
                report()
        yield from writer.close()
        report()

    metadata = {"envsteward-backup-format": str(FORMAT_VERSION), "envsteward-backup-id": backup_id}
    manifest_written = False
    try:
        info = store.put_stream(data_key_name, frames(), metadata)
        _check_upload(backup_id, writer, info)
        stats = writer.stats
        manifest = _build_manifest(
            tables=_resolve(tables),
            tools=_resolve(tools),
            extra=_json_labels(_resolve(labels)),
            backup_id=backup_id,
            environment=environment,
            source=source,
            started_at=started_at,
            consistent_at=consistent_at,
            completed_at=(now or _utcnow)(),
            data_object=data_key_name,
            sizes=BackupSizes(
                plaintext=stats.plaintext_size,
                compressed=stats.compressed_size,
                ciphertext=stats.ciphertext_size,
            ),
            sha256=BackupDigests(plaintext=stats.plaintext_sha256, ciphertext=stats.ciphertext_sha256),
            encryption=EncryptionInfo(
                key_id=data_key.key_id,
                key_version=data_key.key_version,
                wrapped_data_key=base64.b64encode(data_key.wrapped).decode("ascii"),
            ),
            compression=CompressionInfo(level=zstd_level),
            format=FormatInfo(version=FORMAT_VERSION, chunk_size=chunk_size, chunks=stats.chunks),
        ).with_mac(writer.keys.mac_key)
        if verify_after_write:
            _read_object(store, manifest, data_key.plaintext, sink=_drop, progress=progress, phase="verify")
        manifest_written = True
        if not store.put_if_absent(manifest_name, manifest.to_json()):
            manifest_written = False  # someone else's manifest: not ours to delete
            _conflict(backup_id)
    except BaseException:
        writer.abort()
        if manifest_written:
            _discard(store, manifest_name)
        _discard(store, data_key_name)
        raise
    return manifest


def _check_upload(backup_id: str, writer: BackupWriter, info: ObjectInfo) -> None:
    if not writer.closed:
        raise IntegrityError(
            f"backup {backup_id}: the object store stopped reading the stream before its end"
        )
    if info.size != writer.stats.ciphertext_size:
        raise IntegrityError(
            f"backup {backup_id}: the object store reports {info.size} bytes stored for "
            f"{info.key}, {writer.stats.ciphertext_size} were sent"
        )


def _conflict(backup_id: str) -> NoReturn:
    raise ConflictError(f"backup {backup_id} was completed concurrently by another run")


def _check_inputs(*, environment: str, started_at: datetime, consistent_at: datetime) -> None:
    if not environment:
        raise ConfigurationError("write_backup: environment must not be empty")
    for name, value in (("started_at", started_at), ("consistent_at", consistent_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(f"write_backup: {name} must be timezone-aware (use datetime.now(UTC))")


def _resolve(value: Late[T]) -> T:
    return value() if callable(value) else value


def _json_labels(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    labels = dict(extra or {})
    try:
        json.dumps(labels)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"write_backup: extra must be JSON-serialisable: {exc}") from None
    return labels


def _build_manifest(
    *,
    tables: Sequence[TableChecksum] | None,
    tools: Mapping[str, str] | None,
    extra: dict[str, Any],
    **fields: Any,
) -> Manifest:
    """Raises ConfigurationError naming the fields the caller got wrong (never their values)."""
    try:
        return Manifest(
            tables=tuple(tables) if tables is not None else None,
            tools=tool_versions(tools),
            extra=extra,
            **fields,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False)[:10]
        )
        raise ConfigurationError(f"write_backup: invalid backup description: {problems}") from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _discard(store: ObjectStore, key: str) -> None:
    """Best-effort cleanup after a failure; the original error is the one that matters."""
    with contextlib.suppress(EnvstewardError, OSError):
        store.delete(key)


def _drop(_: bytes) -> None:
    """A sink that keeps nothing (verification only hashes)."""


# ---------------------------------------------------------------------------------------------------------
# Read
# ---------------------------------------------------------------------------------------------------------


def read_manifest(store: ObjectStore, backup_id: str) -> Manifest:
    """The manifest of a complete backup, parsed but not yet authenticated (no key provider involved).

    Raises NotFoundError when there is no manifest (no such backup, or it never completed),
    IntegrityError when it is not a valid manifest of this backup, and the store's errors.
    """
    name = manifest_object_key(backup_id)
    try:
        raw = store.get_bytes(name)
    except NotFoundError:
        raise NotFoundError(
            f"backup {backup_id} not found: no manifest at {name} (no such backup, or it never completed)"
        ) from None
    manifest = Manifest.from_json(raw, origin=name)
    if manifest.backup_id != backup_id or manifest.data_object != data_object_key(backup_id):
        raise IntegrityError(
            f"{name} describes backup {manifest.backup_id!r} (data object {manifest.data_object!r}), "
            f"not {backup_id!r}"
        )
    return manifest


def verify_backup(
    store: ObjectStore,
    backup_id: str,
    key_provider: KeyProvider,
    progress: ProgressCallback | None = None,
) -> Manifest:
    """Read the whole backup, authenticate and decompress it, and check it against its manifest.

    No plaintext is written anywhere: it is only hashed. Calls the object store (get_bytes, get_stream)
    and ``key_provider.unwrap``. Returns the (authenticated) manifest. Raises NotFoundError,
    IntegrityError (naming what failed: which chunk, which hash or size), and the store's and key
    provider's errors.
    """
    manifest = read_manifest(store, backup_id)
    data_key = unwrap_data_key(key_provider, manifest)
    _read_object(store, manifest, data_key, sink=_drop, progress=progress, phase="verify")
    return manifest


def restore_backup(
    store: ObjectStore,
    backup_id: str,
    key_provider: KeyProvider,
    sink: Sink,
    progress: ProgressCallback | None = None,
    *,
    verify_first: bool = True,
) -> Manifest:
    """Stream the backup's plaintext to ``sink`` (pieces of at most 256 KiB), after verifying it.

    With ``verify_first`` (the default) the whole backup is verified before ``sink`` sees a byte, so a
    backup that does not verify delivers nothing. The second pass authenticates every chunk again
    before passing on its plaintext and re-checks everything at the end; if the object changed between
    the passes, IntegrityError is raised after some plaintext was delivered. With ``verify_first=False``
    there is one pass: plaintext is delivered chunk by chunk after each chunk authenticated, and
    truncation or a hash mismatch is detected only at the end. In both cases restore into a scratch
    target and discard it when this raises.

    Calls the object store and ``key_provider.unwrap`` (once). Raises what :func:`verify_backup` raises,
    and whatever ``sink`` raises.
    """
    manifest = read_manifest(store, backup_id)
    data_key = unwrap_data_key(key_provider, manifest)
    if verify_first:
        _read_object(store, manifest, data_key, sink=_drop, progress=progress, phase="verify")
    try:
        _read_object(store, manifest, data_key, sink=sink, progress=progress, phase="restore")
    except IntegrityError as exc:
        if verify_first:
            raise IntegrityError(
                f"{exc} (the backup verified, then changed while it was restored: discard the target)"
            ) from None
        raise
    return manifest


def unwrap_data_key(key_provider: KeyProvider, manifest: Manifest) -> bytes:
    """Unwrap the manifest's data key. Raises IntegrityError when the provider cannot, or returns junk."""
    encryption = manifest.encryption
    try:
        data_key = key_provider.unwrap(encryption.wrapped_key_bytes(), encryption.key_id)
    except IntegrityError as exc:
        raise IntegrityError(
            f"backup {manifest.backup_id}: the key provider cannot unwrap its data key "
            f"(key {encryption.key_id!r}; wrong key provider or key?): {exc}"
        ) from None
    if len(data_key) != DATA_KEY_BYTES:
        raise IntegrityError(
            f"backup {manifest.backup_id}: the key provider returned a {len(data_key)}-byte data key, "
            f"expected {DATA_KEY_BYTES}"
        )
    return data_key


def _read_object(
    store: ObjectStore,
    manifest: Manifest,
    data_key: bytes,
    *,
    sink: Sink,
    progress: ProgressCallback | None,
    phase: Phase,
) -> StreamStats:
    backup_id = manifest.backup_id
    expected_wrapped = manifest.encryption.stream_wrapped_key_bytes()

    def check_header(header: StreamHeader) -> bytes:
        mismatches = [
            name
            for name, found, wanted in (
                ("backup id", header.backup_id, manifest.backup_id),
                ("key id", header.key_id, manifest.encryption.stream_key_id()),
                ("wrapped data key", header.wrapped_key, expected_wrapped),
                ("chunk size", header.chunk_size, manifest.format.chunk_size),
                ("format version", header.version, manifest.format.version),
            )
            if found != wanted
        ]
        if mismatches:
            raise IntegrityError(
                f"backup {backup_id}: the data object's header does not match the manifest "
                f"({', '.join(mismatches)} differ): the object was replaced or belongs to another backup"
            )
        manifest.check_mac(derive_keys(data_key, header.salt).mac_key)
        return data_key

    reader = BackupReader(check_header, sink)
    total = manifest.sizes.ciphertext

    def report(done: bool) -> None:
        if progress is not None:
            progress(
                ProgressEvent(
                    phase=phase,
                    backup_id=backup_id,
                    stored_bytes=reader.stats.ciphertext_size,
                    plaintext_bytes=reader.stats.plaintext_size,
                    total_stored_bytes=total,
                    done=done,
                )
            )

    try:
        stats = _feed(reader, store.get_stream(manifest.data_object, READ_PIECE), backup_id, total, report)
    except BaseException:
        reader.abort()  # stops its hashing thread
        raise
    mismatches = [
        f"{name}: object has {found}, manifest says {wanted}"
        for name, found, wanted in (
            ("ciphertext size", stats.ciphertext_size, manifest.sizes.ciphertext),
            ("ciphertext SHA-256", stats.ciphertext_sha256, manifest.sha256.ciphertext),
            ("compressed size", stats.compressed_size, manifest.sizes.compressed),
            ("chunk count", stats.chunks, manifest.format.chunks),
            ("plaintext size", stats.plaintext_size, manifest.sizes.plaintext),
            ("plaintext SHA-256", stats.plaintext_sha256, manifest.sha256.plaintext),
        )
        if found != wanted
    ]
    if mismatches:
        raise IntegrityError(f"backup {backup_id} does not match its manifest: {'; '.join(mismatches)}")
    report(done=True)
    return stats


def _feed(
    reader: BackupReader,
    pieces: Iterable[bytes],
    backup_id: str,
    total: int,
    report: Callable[[bool], None],
) -> StreamStats:
    for piece in pieces:
        reader.feed(piece)
        if reader.stats.ciphertext_size > total:
            raise IntegrityError(
                f"backup {backup_id}: the data object is longer than the {total} bytes the manifest records"
            )
        report(False)
    return reader.close()


# ---------------------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------------------


def list_backups(store: ObjectStore, prefix: str = "") -> list[Manifest]:
    """The manifests of every complete backup whose id starts with ``prefix``, in id order.

    Incomplete backups (no manifest) are not listed; see :func:`find_incomplete_backups`. The manifests
    are not authenticated here (that needs the key provider: :func:`verify_backup`). Calls the object
    store (list, get_bytes). Raises IntegrityError naming a manifest object that is not valid.
    """
    suffix = "/" + MANIFEST_OBJECT_NAME
    manifests: list[Manifest] = []
    for info in store.list(prefix):
        if not info.key.endswith(suffix):
            continue
        backup_id = info.key[: -len(suffix)]
        try:
            manifests.append(read_manifest(store, backup_id))
        except NotFoundError:
            continue  # deleted since it was listed
        except ConfigurationError:
            continue  # not a key this module writes
    return manifests


def find_incomplete_backups(store: ObjectStore, prefix: str = "") -> list[str]:
    """Ids of backups whose data object exists without a manifest (crashed runs; safe to delete).

    A backup being written right now also looks like this: only clean up ids older than any running
    backup. Calls the object store (list).
    """
    data_ids: set[str] = set()
    complete: set[str] = set()
    for info in store.list(prefix):
        head, _, name = info.key.rpartition("/")
        if name == DATA_OBJECT_NAME:
            data_ids.add(head)
        elif name == MANIFEST_OBJECT_NAME:
            complete.add(head)
    return sorted(data_ids - complete)


def delete_backup(store: ObjectStore, backup_id: str) -> None:
    """Delete a backup: the manifest first (so it stops counting as complete), then the data object.

    Deleting a missing backup is not an error. Calls the object store (delete).
    """
    store.delete(manifest_object_key(backup_id))
    store.delete(data_object_key(backup_id))
