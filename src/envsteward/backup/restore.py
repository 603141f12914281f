"""Verify and restore a stored backup into a destination named on the command line.

Destination syntax (``envsteward backup restore ID --to DEST``), by the backup's source kind:

=========  ==============================================================================================
kind       DEST
=========  ==============================================================================================
postgres   ``postgresql://USER@HOST:PORT/DATABASE`` (or a libpq ``key=value`` string, or just
           ``DATABASE`` on the backed-up server). The database must EXIST and be EMPTY (no user object
           at all: schema, table, type, function, sequence, extension beyond plpgsql). The restore is one
           transaction (``pg_restore --single-transaction``): a failed restore leaves the database empty.
           Password: the catalog target's password reference when the destination is the same server and
           user as the target; otherwise libpq's own (``PGPASSWORD``, ``~/.pgpass``). Never in DEST.
sqlite     a file path (``/restore/app.db`` or ``file:///restore/app.db``); the file must not exist.
config     a file path, as for sqlite (the JSON snapshot document is written there).
vault_kv   ``vault://MOUNT/PREFIX`` (e.g. ``vault://secret/restore/0412``); existing secrets are never
           overwritten (ConflictError).
ssm        ``ssm:///PREFIX`` (the target's region) or ``ssm://REGION/PREFIX``; existing parameters are
           never overwritten.
=========  ==============================================================================================

Nothing is restored from a backup that does not verify: the whole object is read, authenticated,
decompressed and checked against its manifest (every chunk's tag, sizes, SHA-256s, the manifest's MAC)
BEFORE the destination is even opened; the restore is then a second pass that authenticates every chunk
again. A failure in that pass aborts the destination (restore into scratch places and discard on error).

External calls: the object store, the key provider, and the destination system.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from envsteward.backup.manifest import Manifest, TableChecksum
from envsteward.backup.pipeline import read_manifest, restore_backup, verify_backup
from envsteward.backup.progress import ProgressCallback
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
)
from envsteward.ports import KeyProvider, ObjectStore

if TYPE_CHECKING:
    from envsteward.backup.ports import KeyServices, RestoreServices
    from envsteward.backup.sources import RestoreReport, RestoreTarget
    from envsteward.backup.stores import BackupStores
    from envsteward.catalog import BackupTarget

KEY_PROVIDERS = ("local", "vault_transit", "aws_kms")


def catalog_target_for(services: KeyServices, manifest: Manifest) -> BackupTarget | None:
    """The catalog target a backup was taken from, or None when the catalog no longer has it."""
    try:
        environment = services.catalog().environment(manifest.environment)
    except EnvstewardError:
        return None
    return next((item for item in environment.backups if item.name == manifest.source.name), None)


def key_provider_for(
    services: KeyServices, manifest: Manifest, target: BackupTarget | None = None
) -> KeyProvider:
    """The key provider that can unwrap ``manifest``'s data key: the kind recorded in the manifest
    (``extra.key_provider``), else the catalog target's, else ``local``; the key is the manifest's.

    The local key is only read, never created: a missing key file is a ConfigurationError naming where
    it was expected. Raises ConfigurationError for an unknown recorded kind. No network call until it is
    used.
    """
    kind = manifest.extra.get("key_provider")
    if kind is None and target is not None:
        kind = target.key_provider
    kind = str(kind or "local")
    if kind not in KEY_PROVIDERS:
        raise ConfigurationError(
            f"backup {manifest.backup_id} records key provider {kind!r}; known: {', '.join(KEY_PROVIDERS)}"
        )
    if kind == "local":
        # read-only: never create a key (services.key_provider would, for the next backup run)
        from envsteward.adapters.local_keys import LocalKeyProvider

        return LocalKeyProvider(local_key_file(services), create=False)
    return services.key_provider(kind, manifest.encryption.key_id)


def local_key_file(services: KeyServices) -> Path:
    """Where the local key provider keeps its key-encryption key (as ``Services.key_provider`` does)."""
    from envsteward.backup.keys import local_key_file as key_file_under

    return key_file_under(services.settings.home)


def verify_stored_backup(
    services: KeyServices, store: ObjectStore, backup_id: str, progress: ProgressCallback | None = None
) -> Manifest:
    """Read the whole backup, decrypt it and check every checksum (nothing written anywhere).

    Raises NotFoundError, IntegrityError (naming what failed), the key provider's and store's errors.
    """
    manifest = read_manifest(store, backup_id)
    keys = key_provider_for(services, manifest, catalog_target_for(services, manifest))
    with _naming(backup_id):
        return verify_backup(store, backup_id, keys, progress)


@dataclass(frozen=True)
class RegionCheck:
    """The outcome of verifying one region's copy of a backup (JSON-able, no secret in it)."""

    region: str
    """``primary`` or ``dr``."""
    store: str
    ok: bool
    error: str | None = None
    chunks: int | None = None
    stored_bytes: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "store": self.store,
            "ok": self.ok,
            "error": self.error,
            "chunks": self.chunks,
            "stored_bytes": self.stored_bytes,
        }


def verify_all_regions(
    services: KeyServices, stores: BackupStores, backup_id: str, progress: ProgressCallback | None = None
) -> list[RegionCheck]:
    """Verify every copy of ``backup_id``: the primary and (when a DR store is configured) the replica,
    each read whole, decrypted and checked; the replica's manifest must also equal the primary's byte for
    byte. A missing copy is a failed check. Writes nothing.

    Calls both stores and the key provider. A failure of one region is returned, not raised (the other
    is still checked); only errors that concern neither copy (e.g. a bad key configuration) propagate.
    """
    from envsteward.backup.manifest import manifest_object_key
    from envsteward.backup.stores import describe_store

    checks: list[RegionCheck] = []
    manifests: dict[str, bytes] = {}
    for region, store in (("primary", stores.primary), ("dr", stores.dr)):
        if store is None:
            continue
        where = describe_store(store)
        try:
            manifest = verify_stored_backup(services, store, backup_id, progress)
            manifests[region] = store.get_bytes(manifest_object_key(backup_id))
        except (NotFoundError, IntegrityError) as exc:
            checks.append(RegionCheck(region, where, ok=False, error=str(exc)))
            continue
        checks.append(
            RegionCheck(
                region, where, ok=True, chunks=manifest.format.chunks, stored_bytes=manifest.sizes.ciphertext
            )
        )
    if len(manifests) == 2 and manifests["primary"] != manifests["dr"]:
        checks = [
            RegionCheck(
                check.region,
                check.store,
                ok=False,
                error=f"backup {backup_id}: the replica's manifest differs from the primary's",
            )
            if check.region == "dr"
            else check
            for check in checks
        ]
    return checks


@contextmanager
def _naming(backup_id: str) -> Iterator[None]:
    """Make every IntegrityError name the backup (the format's messages name only the chunk)."""
    try:
        yield
    except IntegrityError as exc:
        if backup_id in str(exc):
            raise
        raise IntegrityError(f"backup {backup_id}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------
# Destinations
# ---------------------------------------------------------------------------------------------------------


def _file_path(text: str, kind: str) -> str:
    if text.startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"{kind} restore destination {text!r}: file URLs must be local (file:///path)"
            )
        return parts.path
    if "://" in text:
        raise ConfigurationError(
            f"a {kind} backup restores into a file: give a path (e.g. /restore/app.db), not {text!r}"
        )
    if not text:
        raise ConfigurationError(f"a {kind} backup restores into a file: the destination path is empty")
    return text


def _vault_location(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "vault" or not parts.netloc or not parts.path.strip("/"):
        raise ConfigurationError(
            f"a vault_kv backup restores under vault://MOUNT/PREFIX (e.g. vault://secret/restore/0412), "
            f"not {text!r}; use a scratch prefix: existing secrets are never overwritten"
        )
    return f"{parts.netloc}/{parts.path.strip('/')}"


def _ssm_location(text: str) -> tuple[str | None, str]:
    parts = urlsplit(text)
    if parts.scheme != "ssm" or not parts.path.strip("/"):
        raise ConfigurationError(
            f"an ssm backup restores under ssm:///PREFIX or ssm://REGION/PREFIX (e.g. ssm:///restore/0412), "
            f"not {text!r}"
        )
    return (parts.netloc or None), "/" + parts.path.strip("/")


def _postgres_target(
    services: RestoreServices, target: BackupTarget | None, destination: str
) -> RestoreTarget:
    from envsteward.adapters.postgres import dsn_database, same_server
    from envsteward.backup.sources.postgres import PostgresRestoreTarget

    if not destination:
        raise ConfigurationError("a postgres backup restores into a database: give postgresql://USER@HOST/DB")
    is_dsn = "://" in destination or "=" in destination
    if not is_dsn:
        if target is None:
            raise ConfigurationError(
                f"the backup's target is no longer in the catalog, so {destination!r} cannot be resolved "
                "to a server: give a full postgresql://USER@HOST:PORT/DATABASE"
            )
        return services.restore_target(target, destination)
    if target is not None and getattr(target, "dsn", None) and same_server(target.dsn, destination):  # type: ignore[union-attr]
        dbname = dsn_database(destination)
        if dbname:
            return services.restore_target(target, dbname)
    return PostgresRestoreTarget(destination)


def _table_mismatches(
    store: ObjectStore,
    backup_id: str,
    *,
    keys: KeyProvider,
    expected: Sequence[TableChecksum],
    actual: Sequence[TableChecksum],
    restore_target: RestoreTarget,
) -> list[str]:
    """:func:`compare_tables`; a v5 / v4 (order-dependent) mismatch at the same row count is re-checked
    order-independently by reading the backup again (same rows in another order: not a mismatch). Calls
    the object store, the key provider and the restored database (re-check only)."""
    from envsteward.backup.sources.postgres import (
        PostgresRestoreTarget,
        compare_tables,
        order_suspects,
        reorder_check,
    )

    mismatches = compare_tables(expected, actual)
    suspects = order_suspects(expected, actual)
    if not suspects or not isinstance(restore_target, PostgresRestoreTarget):
        return mismatches
    verdict = reorder_check(
        restore_target.client,
        expected,
        suspects,
        lambda sink: restore_backup(store, backup_id, keys, sink, verify_first=False),
    )
    settled = {f"table {name}:" for name, why in verdict.items() if why is None}
    return [problem for problem in mismatches if not any(problem.startswith(s) for s in settled)]


def _check_empty_database(restore_target: RestoreTarget) -> None:
    """Refuse a database that holds any user object (not only tables: a lone ``CREATE TYPE`` makes the
    restore fail half-way), naming what was found. Calls PostgreSQL."""
    client = getattr(restore_target, "client", None)
    if client is None:
        return
    shown = 5
    found = client.user_objects(limit=shown + 1)
    if found:
        more = ", ..." if len(found) > shown else ""
        raise ConflictError(
            f"database {client.target} is not empty ({', '.join(found[:shown])}{more}); restore into an "
            "empty database you created for it (CREATE DATABASE ...)"
        )


def restore_target_for(
    services: RestoreServices, manifest: Manifest, destination: str, target: BackupTarget | None = None
) -> RestoreTarget:
    """Build the restore target for ``destination`` (see the module docstring for the syntax).

    Raises ConfigurationError for a destination that does not fit the backup's kind. No network call
    except building a Vault/AWS client.
    """
    from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget
    from envsteward.backup.sources.sqlite import SqliteRestoreTarget
    from envsteward.backup.sources.ssm import SSMRestoreTarget
    from envsteward.backup.sources.vault_kv import VaultKVRestoreTarget

    kind = manifest.source.kind
    if kind == "postgres":
        return _postgres_target(services, target, destination)
    if kind == "sqlite":
        return SqliteRestoreTarget(_file_path(destination, kind))
    if kind == "config":
        return ConfigSnapshotRestoreTarget(_file_path(destination, kind))
    if kind == "vault_kv":
        return VaultKVRestoreTarget(services.vault_client(), _vault_location(destination))
    if kind == "ssm":
        region, prefix = _ssm_location(destination)
        region = region or getattr(target, "region", None)
        return SSMRestoreTarget(services.aws_clients(), prefix, region=region)
    raise ConfigurationError(
        f"backup {manifest.backup_id} is of kind {kind!r}, which envsteward cannot restore"
    )


@dataclass(frozen=True)
class RestoreOutcome:
    backup_id: str
    kind: str
    destination: dict[str, str]
    report: RestoreReport
    table_mismatches: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "kind": self.kind,
            "destination": self.destination,
            "bytes": self.report.bytes_read,
            "items": self.report.items,
            "seconds": round(self.report.seconds, 3),
            "tables_match": not self.table_mismatches,
            "table_mismatches": list(self.table_mismatches),
        }


def restore_stored_backup(
    services: RestoreServices,
    store: ObjectStore,
    backup_id: str,
    destination: str,
    progress: ProgressCallback | None = None,
) -> RestoreOutcome:
    """Verify backup ``backup_id`` completely, then restore it into ``destination``.

    Nothing reaches the destination unless the whole backup verified first. Raises NotFoundError,
    IntegrityError, ConfigurationError (bad destination), ConflictError (non-empty database, existing
    file/secret/parameter), and the destination's errors.
    """
    manifest = read_manifest(store, backup_id)
    target = catalog_target_for(services, manifest)
    keys = key_provider_for(services, manifest, target)
    restore_target = restore_target_for(services, manifest, destination, target)
    with _naming(backup_id):
        verify_backup(store, backup_id, keys, progress)
    if manifest.source.kind == "postgres":
        _check_empty_database(restore_target)
        from envsteward.backup.sources.postgres import PostgresRestoreTarget

        if isinstance(restore_target, PostgresRestoreTarget):
            # all or nothing: a failure anywhere (pg_restore, or this process) rolls the whole restore back
            restore_target.single_transaction = True
            restore_target.expected_tables = manifest.tables  # summarise with the backup's algorithm
    with _naming(backup_id), restore_target.begin() as writer:
        restore_backup(store, backup_id, keys, writer.write, progress, verify_first=False)
        report = writer.finish()
    mismatches: list[str] = []
    if manifest.tables is not None and report.tables is not None:
        mismatches = _table_mismatches(
            store,
            backup_id,
            keys=keys,
            expected=manifest.tables,
            actual=report.tables,
            restore_target=restore_target,
        )
    return RestoreOutcome(
        backup_id=backup_id,
        kind=manifest.source.kind,
        destination=restore_target.describe(),
        report=report,
        table_mismatches=tuple(mismatches),
    )
