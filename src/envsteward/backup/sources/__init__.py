"""Backup sources: plug-ins that stream a consistent dump of one system out, and restore one into a target.

One interface (:mod:`.base`): :class:`BackupSource` (``describe()``, ``dump()`` -> :class:`DumpStream`)
and :class:`RestoreTarget` (``restore(chunks)`` or push-style ``begin()``). The plug-ins:

============  ==========================================  ==========================================
kind          source                                      restore target
============  ==========================================  ==========================================
postgres      ``pg_dump -Fc --snapshot`` (+ table sums)   ``pg_restore`` from stdin into a database
sqlite        online backup API, streamed                 atomic file replace
vault_kv      KV v2 tree, current versions, JSON lines    ``kv_write`` under a (scratch) prefix
ssm           parameters under a path, JSON lines         ``put_parameter`` under a (scratch) prefix
config        rendered catalog configuration, JSON        a JSON document (memory and/or file)
============  ==========================================  ==========================================

:func:`build_backup_source` builds a source from a catalog backup target; :func:`build_restore_target`
builds the matching target for a destination (scratch database, file, prefix). Kinds are the catalog's.
Other kinds can be plugged in with :func:`register_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.backup.sources.base import (
    CHUNK_SIZE,
    BackupSource,
    DumpStream,
    RestoreReport,
    RestoreTarget,
    RestoreWriter,
)
from envsteward.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.catalog import BackupTarget, Catalog
    from envsteward.catalog.refs import SecretRef


class SourceServices(Protocol):
    """What building a source needs from :class:`envsteward.services.Services` (which satisfies it)."""

    def vault_client(self) -> VaultClient: ...

    def aws_clients(self) -> AWSClients: ...

    def resolve_secret(self, ref: SecretRef) -> SecretStr: ...

    def catalog(self) -> Catalog: ...


SourceBuilder = Callable[[Any, str, SourceServices], BackupSource]
"""``(catalog backup target, environment name, services) -> BackupSource``."""
TargetBuilder = Callable[..., RestoreTarget]
"""``(catalog backup target, services, destination, *, overwrite) -> RestoreTarget``."""


@dataclass(frozen=True)
class _Plugin:
    source: SourceBuilder
    target: TargetBuilder


_REGISTRY: dict[str, _Plugin] = {}


def register_source(kind: str, source: SourceBuilder, target: TargetBuilder) -> None:
    """Register (or replace) the builders of a source kind."""
    _REGISTRY[kind] = _Plugin(source=source, target=target)


def source_kinds() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(_REGISTRY))


def _plugin(kind: str, name: str) -> _Plugin:
    plugin = _REGISTRY.get(kind)
    if plugin is None:
        raise ConfigurationError(
            f"backup target {name!r} has kind {kind!r}, which no backup source handles "
            f"(known: {', '.join(source_kinds())})"
        )
    return plugin


def build_backup_source(target: BackupTarget, *, environment: str, services: SourceServices) -> BackupSource:
    """The backup source for one of ``environment``'s catalog backup targets.

    Resolves a PostgreSQL password reference (calls its secret store) and may build Vault/AWS clients;
    makes no other external call. Raises ConfigurationError for an unknown kind, and the secret store's
    errors (NotFoundError...) for a password reference that does not resolve.
    """
    return _plugin(target.kind, target.name).source(target, environment, services)


def build_restore_target(
    target: BackupTarget, *, services: SourceServices, destination: str, overwrite: bool = False
) -> RestoreTarget:
    """A restore target for dumps of ``target`` at ``destination``, whose meaning depends on the kind:

    * postgres: the NAME of an existing database on the same server (same user and password), e.g. the
      scratch database of a DR drill;
    * sqlite, config: a file path;
    * vault_kv: a ``<kv-mount>/<prefix>`` location; ssm: a parameter path prefix (in the target's region).

    ``overwrite`` (not for postgres, whose database the caller creates empty) allows replacing existing
    files, secrets or parameters; by default they cause ConflictError. Raises ConfigurationError.
    """
    return _plugin(target.kind, target.name).target(target, services, destination, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------------------
# The built-in plug-ins
# ---------------------------------------------------------------------------------------------------------


def _postgres_password(target: Any, services: SourceServices) -> SecretStr | None:
    return services.resolve_secret(target.password) if target.password is not None else None


def _postgres_source(target: Any, environment: str, services: SourceServices) -> BackupSource:
    from envsteward.backup.sources.postgres import PostgresBackupSource

    return PostgresBackupSource(
        target.name, target.dsn, _postgres_password(target, services), summarize=target.table_checksums
    )


def _postgres_target(
    target: Any, services: SourceServices, destination: str, *, overwrite: bool
) -> RestoreTarget:
    from psycopg.conninfo import make_conninfo

    from envsteward.backup.sources.postgres import PostgresRestoreTarget

    if overwrite:
        raise ConfigurationError(
            "postgres restores go into an empty database the caller creates: no overwrite"
        )
    return PostgresRestoreTarget(
        make_conninfo(target.dsn, dbname=destination), _postgres_password(target, services)
    )


def _sqlite_source(target: Any, environment: str, services: SourceServices) -> BackupSource:
    from envsteward.backup.sources.sqlite import SqliteBackupSource

    return SqliteBackupSource(target.name, target.path)


def _sqlite_target(
    target: Any, services: SourceServices, destination: str, *, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.sqlite import SqliteRestoreTarget

    return SqliteRestoreTarget(destination, overwrite=overwrite)


def _vault_source(target: Any, environment: str, services: SourceServices) -> BackupSource:
    from envsteward.backup.sources.vault_kv import VaultKVBackupSource

    return VaultKVBackupSource(target.name, services.vault_client(), target.path)


def _vault_target(
    target: Any, services: SourceServices, destination: str, *, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.vault_kv import VaultKVRestoreTarget

    return VaultKVRestoreTarget(services.vault_client(), destination, overwrite=overwrite)


def _ssm_source(target: Any, environment: str, services: SourceServices) -> BackupSource:
    from envsteward.backup.sources.ssm import SSMBackupSource

    return SSMBackupSource(target.name, services.aws_clients(), target.prefix, region=target.region)


def _ssm_target(target: Any, services: SourceServices, destination: str, *, overwrite: bool) -> RestoreTarget:
    from envsteward.backup.sources.ssm import SSMRestoreTarget

    return SSMRestoreTarget(services.aws_clients(), destination, region=target.region, overwrite=overwrite)


def _config_source(target: Any, environment: str, services: SourceServices) -> BackupSource:
    from envsteward.backup.sources.config_snapshot import ConfigSnapshotSource

    return ConfigSnapshotSource(target.name, environment, lambda: services.catalog().render(environment))


def _config_target(
    target: Any, services: SourceServices, destination: str, *, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget

    return ConfigSnapshotRestoreTarget(destination or None, overwrite=overwrite)


register_source("postgres", _postgres_source, _postgres_target)
register_source("sqlite", _sqlite_source, _sqlite_target)
register_source("vault_kv", _vault_source, _vault_target)
register_source("ssm", _ssm_source, _ssm_target)
register_source("config", _config_source, _config_target)

__all__ = [
    "CHUNK_SIZE",
    "BackupSource",
    "DumpStream",
    "RestoreReport",
    "RestoreTarget",
    "RestoreWriter",
    "SourceServices",
    "build_backup_source",
    "build_restore_target",
    "register_source",
    "source_kinds",
]
