"""The disaster-recovery replica: copy a completed backup to the DR store, verify the copy, record the lag.

:func:`replicate_backup` copies ``<id>/data.bin`` first and its manifest LAST (with ``put_if_absent``), as
the pipeline does for the primary: a replica is complete exactly when its manifest exists. The copy's
checksum is compared with the SHA-256 of the data object that the (authenticated) manifest records, which
the pipeline computed locally while writing: so the check is end to end, not "S3 agrees with S3".

* S3 to S3: a server-side ``CopyObject`` into the DR region (:meth:`S3ObjectStore.copy_to`; the data never
  passes through this process). Verified with the copy's whole-object SHA-256 as S3 reports it; when S3
  has only a composite (multipart) checksum, by reading the copy back and hashing it.
* Any other pair (the filesystem embedded default): the object is streamed across (bounded memory),
  hashed on the way, then read back from the DR store and hashed again.

A copy that does not match is deleted from the DR store (no manifest is written) and IntegrityError is
raised. Replication lag (replica complete minus backup complete) is returned and written as a small record
``<id>/replica.json`` next to the backup in the PRIMARY store; the caller also puts it in the audit log.

External calls: the two object stores (S3 or local folders).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from envsteward.backup.manifest import Manifest, data_object_key, manifest_object_key
from envsteward.backup.pipeline import read_manifest
from envsteward.backup.stores import describe_store
from envsteward.errors import ConflictError, EnvstewardError, IntegrityError, NotFoundError
from envsteward.ports import ObjectStore

REPLICA_RECORD_NAME = "replica.json"
READ_PIECE = 1 << 20

ReplicaState = Literal["ok", "missing", "incomplete", "mismatch", "no-dr-store"]


def replica_record_key(backup_id: str) -> str:
    """The object key (in the primary store) of a backup's replication record."""
    return f"{backup_id}/{REPLICA_RECORD_NAME}"


@dataclass(frozen=True)
class ReplicaResult:
    """One replication, JSON-able and free of secrets."""

    backup_id: str
    destination: str
    """``s3://dr-bucket/prefix`` or the DR folder."""
    region: str | None
    method: Literal["s3-copy", "stream-copy", "already-replicated"]
    verified_by: Literal["s3-checksum", "read-back"]
    size: int
    sha256: str
    """Hex SHA-256 of the data object (the manifest's ``sha256.ciphertext``), which the copy matched."""
    backup_completed_at: datetime
    replicated_at: datetime
    copy_seconds: float
    lag_seconds: float
    """``replicated_at - backup_completed_at``: how long the backup existed in one region only."""

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["backup_completed_at"] = self.backup_completed_at.isoformat()
        document["replicated_at"] = self.replicated_at.isoformat()
        document["status"] = "ok"
        return document


def _hex_to_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _is_s3(store: ObjectStore) -> bool:
    from envsteward.adapters.aws import S3ObjectStore

    return isinstance(store, S3ObjectStore)


def _stream_hashing(pieces: Iterator[bytes], digest: Any, sizes: list[int]) -> Iterator[bytes]:
    for piece in pieces:
        digest.update(piece)
        sizes[0] += len(piece)
        yield piece


def _read_back(store: ObjectStore, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for piece in store.get_stream(key, READ_PIECE):
        digest.update(piece)
        size += len(piece)
    return size, digest.hexdigest()


def check_data_copy(store: ObjectStore, manifest: Manifest) -> Literal["s3-checksum", "read-back"]:
    """Raise IntegrityError unless ``store``'s data object for ``manifest`` has the recorded size and SHA-256.

    Uses S3's whole-object SHA-256 (one HeadObject) when there is one, else reads the object and hashes it.
    Returns how it checked. Raises NotFoundError when the object is missing, and the store's errors.
    """
    key = data_object_key(manifest.backup_id)
    expected_size, expected_hex = manifest.sizes.ciphertext, manifest.sha256.ciphertext
    where = f"{describe_store(store)}{key}"
    if _is_s3(store):
        info = store.head(key)
        if info is None:
            raise NotFoundError(f"replica data object {where} does not exist")
        checksum = store.checksum(key)  # type: ignore[attr-defined]
        if checksum.sha256 and not checksum.composite:
            if info.size != expected_size or checksum.sha256 != _hex_to_b64(expected_hex):
                raise IntegrityError(
                    f"backup {manifest.backup_id}: the copy at {where} does not match the manifest "
                    f"(size {info.size} vs {expected_size}, or its SHA-256 differs)"
                )
            return "s3-checksum"
    size, hex_digest = _read_back(store, key)
    if size != expected_size or hex_digest != expected_hex:
        raise IntegrityError(
            f"backup {manifest.backup_id}: the copy at {where} does not match the manifest "
            f"(size {size} vs {expected_size}, or its SHA-256 differs)"
        )
    return "read-back"


def replicate_backup(
    primary: ObjectStore,
    dr: ObjectStore,
    backup_id: str,
    *,
    dr_region: str | None,
    now: Callable[[], datetime] | None = None,
    record: bool = True,
) -> ReplicaResult:
    """Copy backup ``backup_id`` from ``primary`` to ``dr``, verify the copy, write the manifest last.

    Idempotent: when the DR store already holds the identical manifest, only the data checksum is checked
    again. With ``record`` the result is written to ``<id>/replica.json`` in ``primary``.

    Calls both object stores. Raises NotFoundError (no such backup in ``primary``), IntegrityError (the
    copy or the source does not match the manifest; the bad copy is deleted first), ConflictError (the
    DR store holds a DIFFERENT manifest under this id), and the stores' errors (TransientError...).
    """
    clock = now or (lambda: datetime.now(UTC))
    manifest = read_manifest(primary, backup_id)
    manifest_key = manifest_object_key(backup_id)
    data_key = data_object_key(backup_id)
    manifest_bytes = primary.get_bytes(manifest_key)
    started = time.monotonic()

    method: Literal["s3-copy", "stream-copy", "already-replicated"]
    existing = _get_or_none(dr, manifest_key)
    if existing is not None:
        if existing != manifest_bytes:
            raise ConflictError(
                f"backup {backup_id}: the DR store {describe_store(dr)} holds a different manifest under "
                "this id; not overwriting it"
            )
        method = "already-replicated"
        verified_by = check_data_copy(dr, manifest)
    else:
        method = _copy_data(primary, dr, manifest)
        try:
            verified_by = check_data_copy(dr, manifest)
        except IntegrityError:
            with contextlib.suppress(EnvstewardError, OSError):
                dr.delete(data_key)
            raise
        if (
            not dr.put_if_absent(manifest_key, manifest_bytes)
            and dr.get_bytes(manifest_key) != manifest_bytes
        ):
            raise ConflictError(
                f"backup {backup_id}: another run wrote a different manifest to {describe_store(dr)}"
            )
    replicated_at = clock()
    result = ReplicaResult(
        backup_id=backup_id,
        destination=describe_store(dr),
        region=dr_region,
        method=method,
        verified_by=verified_by,
        size=manifest.sizes.ciphertext,
        sha256=manifest.sha256.ciphertext,
        backup_completed_at=manifest.completed_at,
        replicated_at=replicated_at,
        copy_seconds=round(time.monotonic() - started, 3),
        lag_seconds=round(max(0.0, (replicated_at - manifest.completed_at).total_seconds()), 3),
    )
    if record:
        primary.put_bytes(
            replica_record_key(backup_id),
            (json.dumps(result.as_json(), sort_keys=True, indent=2) + "\n").encode("utf-8"),
            {"envsteward-backup-id": backup_id},
        )
    return result


def _copy_data(
    primary: ObjectStore, dr: ObjectStore, manifest: Manifest
) -> Literal["s3-copy", "stream-copy"]:
    key = data_object_key(manifest.backup_id)
    if _is_s3(primary) and _is_s3(dr):
        primary.copy_to(dr, key)  # type: ignore[attr-defined]
        return "s3-copy"
    digest = hashlib.sha256()
    sizes = [0]
    dr.put_stream(
        key,
        _stream_hashing(primary.get_stream(key, READ_PIECE), digest, sizes),
        {"envsteward-backup-id": manifest.backup_id},
    )
    if sizes[0] != manifest.sizes.ciphertext or digest.hexdigest() != manifest.sha256.ciphertext:
        with contextlib.suppress(EnvstewardError, OSError):
            dr.delete(key)
        raise IntegrityError(
            f"backup {manifest.backup_id}: the primary copy does not match its manifest (size or SHA-256); "
            "not replicated - verify the primary backup"
        )
    return "stream-copy"


def _get_or_none(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get_bytes(key)
    except NotFoundError:
        return None


def verify_replica(
    primary: ObjectStore, dr: ObjectStore, backup_id: str
) -> Literal["s3-checksum", "read-back"]:
    """Check that the DR store holds a complete, identical copy of ``backup_id``: the same manifest, byte
    for byte, and a data object with the manifest's size and SHA-256.

    Calls both stores. Raises NotFoundError (no backup in ``primary``, or no replica manifest),
    IntegrityError (different manifest, or damaged/missing data object), and the stores' errors.
    """
    manifest = read_manifest(primary, backup_id)
    primary_bytes = primary.get_bytes(manifest_object_key(backup_id))
    replica_bytes = _get_or_none(dr, manifest_object_key(backup_id))
    if replica_bytes is None:
        raise NotFoundError(f"backup {backup_id} has no complete replica in {describe_store(dr)}")
    if replica_bytes != primary_bytes:
        raise IntegrityError(
            f"backup {backup_id}: the replica's manifest in {describe_store(dr)} differs from the primary's"
        )
    try:
        return check_data_copy(dr, manifest)
    except NotFoundError:
        raise IntegrityError(
            f"backup {backup_id}: the replica in {describe_store(dr)} has a manifest but no data object"
        ) from None


def replica_state(dr: ObjectStore | None, manifest: Manifest) -> ReplicaState:
    """A cheap look at the replica (two requests, no data read), for listings.

    ``ok``: same manifest and a data object of the recorded size; ``missing``: no replica; ``incomplete``:
    data object without manifest, or manifest without data; ``mismatch``: a different manifest or size;
    ``no-dr-store``: no DR store configured. Calls the DR store (get_bytes, head).
    """
    if dr is None:
        return "no-dr-store"
    try:
        replica = Manifest.from_json(dr.get_bytes(manifest_object_key(manifest.backup_id)))
    except NotFoundError:
        return "incomplete" if dr.head(data_object_key(manifest.backup_id)) is not None else "missing"
    except IntegrityError:
        return "mismatch"
    if replica != manifest:
        return "mismatch"
    info = dr.head(data_object_key(manifest.backup_id))
    if info is None:
        return "incomplete"
    return "ok" if info.size == manifest.sizes.ciphertext else "mismatch"


def read_replica_record(primary: ObjectStore, backup_id: str) -> dict[str, Any] | None:
    """The ``replica.json`` record written by :func:`replicate_backup`, or None. Calls the primary store."""
    raw = _get_or_none(primary, replica_record_key(backup_id))
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
