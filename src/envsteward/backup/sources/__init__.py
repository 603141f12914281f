"""Backup sources: plug-ins that stream a consistent dump of one system out, and restore one into a target.

One interface (:mod:`.base`): :class:`BackupSource` (``describe()``, ``dump()`` -> :class:`DumpStream`)
and :class:`RestoreTarget` (``restore(chunks)`` or push-style ``begin()``). The plug-ins, one module each:

============  ==========================================  ==========================================
kind          source                                      restore target
============  ==========================================  ==========================================
postgres      ``pg_dump -Fc --snapshot`` (+ table sums)   ``pg_restore`` from stdin into a database
sqlite        online backup API, streamed                 atomic file replace
vault_kv      KV v2 tree, current versions, JSON lines    ``kv_write`` under a (scratch) prefix
ssm           parameters under a path, JSON lines         ``put_parameter`` under a (scratch) prefix
config        rendered catalog configuration, JSON        a JSON document (memory and/or file)
============  ==========================================  ==========================================

Which plug-in serves a catalog backup target is the adapter registry's ``BACKUP_SOURCES`` and
``RESTORE_TARGETS`` (:mod:`envsteward.adapters.registry`); callers ask
``Services.backup_source(target, environment)`` / ``Services.restore_target(target, destination)``. A new
kind is one module here plus one line in each of those tables. This package imports nothing from the
registry (the registry imports these modules lazily).
"""

from __future__ import annotations

from envsteward.backup.sources.base import (
    CHUNK_SIZE,
    BackupSource,
    DumpStream,
    RestoreReport,
    RestoreTarget,
    RestoreWriter,
)

__all__ = [
    "CHUNK_SIZE",
    "BackupSource",
    "DumpStream",
    "RestoreReport",
    "RestoreTarget",
    "RestoreWriter",
]
