"""Backups: a streaming compress-then-encrypt format, its verification, and the backup manifest.

The core of the backup data path (no Prefect, no network of its own): it talks to an
:class:`~envsteward.ports.ObjectStore` and a :class:`~envsteward.ports.KeyProvider` passed in.

* :mod:`.format` — the object format (zstd → AES-256-GCM in authenticated chunks), documented there.
* :mod:`.manifest` — the manifest model, written last to mark a backup complete.
* :mod:`.pipeline` — :func:`write_backup`, :func:`verify_backup`, :func:`restore_backup`,
  :func:`list_backups` and friends.
* :mod:`.progress` — the progress callback used by all three.
"""

from envsteward.backup.format import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    BackupReader,
    BackupWriter,
    StreamHeader,
    StreamStats,
    encrypt_stream,
)
from envsteward.backup.manifest import (
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
from envsteward.backup.pipeline import (
    delete_backup,
    find_incomplete_backups,
    list_backups,
    new_backup_id,
    read_manifest,
    restore_backup,
    tool_versions,
    unwrap_data_key,
    verify_backup,
    write_backup,
)
from envsteward.backup.progress import ProgressCallback, ProgressEvent

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "BackupDigests",
    "BackupReader",
    "BackupSizes",
    "BackupSourceInfo",
    "BackupWriter",
    "CompressionInfo",
    "EncryptionInfo",
    "FormatInfo",
    "Manifest",
    "ProgressCallback",
    "ProgressEvent",
    "StreamHeader",
    "StreamStats",
    "TableChecksum",
    "ToolVersions",
    "check_backup_id",
    "data_object_key",
    "delete_backup",
    "encrypt_stream",
    "find_incomplete_backups",
    "list_backups",
    "manifest_object_key",
    "new_backup_id",
    "read_manifest",
    "restore_backup",
    "tool_versions",
    "unwrap_data_key",
    "verify_backup",
    "write_backup",
]
