"""Build the PITR pieces for one catalog target from narrow services (the CLI's entry point).

``ENV/TARGET`` names a PostgreSQL backup target with ``pitr.enabled: true``. The archive uses the
backup stores of :mod:`envsteward.backup.stores` (the DR store only when the target has a
``replica_region``) and the target's key provider; readers never create a local key.

External calls: none here (stores and key providers are built, not used).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from envsteward.backup.ports import StoreServices
from envsteward.errors import ConfigurationError
from envsteward.pitr.archive import WalArchive
from envsteward.pitr.walnames import archive_prefix

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.backup.stores import BackupStores
    from envsteward.catalog import Catalog
    from envsteward.catalog.models import PostgresBackup
    from envsteward.catalog.refs import SecretRef
    from envsteward.ports import KeyProvider


class PitrServices(StoreServices, Protocol):
    """What the PITR commands need: the stores, the catalog, key providers and secret resolution."""

    def catalog(self) -> Catalog: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...

    def resolve_secret(self, ref: SecretRef) -> SecretStr: ...


def pitr_target(services: PitrServices, selector: str) -> tuple[str, PostgresBackup]:
    """``ENV/TARGET`` -> (environment, catalog target). Raises ConfigurationError / CatalogError naming
    what is wrong (unknown target, not postgres, pitr not enabled)."""
    from envsteward.backup.runner import find_target

    environment, sep, name = selector.partition("/")
    if not sep or not environment or not name or "/" in name:
        raise ConfigurationError(
            f"--target {selector!r}: expected ENVIRONMENT/TARGET, e.g. production/orders-db"
        )
    spec = find_target(services.catalog(), environment, name)
    if spec.kind != "postgres":
        raise ConfigurationError(
            f"backup target {selector} is {spec.kind}; point-in-time recovery is for postgres"
        )
    if not spec.pitr.enabled:
        raise ConfigurationError(f"backup target {selector} does not enable pitr (set pitr.enabled: true)")
    return environment, spec


def target_keys(services: PitrServices, spec: PostgresBackup, *, write: bool) -> KeyProvider:
    """The target's key provider; for readers the local key is only read, never created."""
    if spec.key_provider == "local" and not write:
        from envsteward.adapters.local_keys import LocalKeyProvider
        from envsteward.backup.keys import local_key_file

        return LocalKeyProvider(local_key_file(Path(services.settings.home)), create=False)
    return services.key_provider(spec.key_provider, spec.key_id)


def target_stores(services: PitrServices, spec: PostgresBackup) -> BackupStores:
    """The backup stores, checked against the target's regions. Raises ConfigurationError."""
    from envsteward.backup.stores import backup_stores

    stores = backup_stores(services)
    stores.check_target(spec)
    return stores


def wal_archive(services: PitrServices, selector: str, *, write: bool) -> WalArchive:
    """The WAL archive of target ``ENV/TARGET`` (see the module docstring)."""
    environment, spec = pitr_target(services, selector)
    stores = target_stores(services, spec)
    return WalArchive(
        primary=stores.primary,
        dr=stores.dr if spec.replica_region is not None else None,
        keys=target_keys(services, spec, write=write),
        prefix=archive_prefix(environment, spec.name),
        zstd_level=spec.pitr.zstd_level,
    )
