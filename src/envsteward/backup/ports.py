"""What the backup runner, restore and store helpers need from the process: narrow protocols that
:class:`envsteward.services.Services` satisfies structurally (nothing in ``backup/`` imports it).

Each function asks for the smallest of these that covers the methods it calls, so a drill (with its own
``DrillServices``) or a test double can pass what it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit import AuditLog
    from envsteward.backup.sources.base import BackupSource, RestoreTarget
    from envsteward.catalog import BackupTarget, Catalog
    from envsteward.ports import KeyProvider, ObjectStore
    from envsteward.settings import Settings


class StoreServices(Protocol):
    """For :func:`envsteward.backup.stores.backup_stores`: the settings (``storage``, ``aws``, ``home``),
    the primary object store, and the AWS clients (the DR bucket's)."""

    @property
    def settings(self) -> Settings: ...

    def object_store(self) -> ObjectStore: ...

    def aws_clients(self) -> AWSClients: ...


class KeyServices(Protocol):
    """For finding the key provider that unwraps a stored backup's data key
    (:func:`envsteward.backup.restore.key_provider_for`): the catalog (the backup's target), the settings
    (``home``, for the local key file) and the key providers."""

    @property
    def settings(self) -> Settings: ...

    def catalog(self) -> Catalog: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...


class RestoreServices(KeyServices, Protocol):
    """For verifying and restoring a stored backup (:mod:`envsteward.backup.restore`): the key lookup, plus
    the clients of Vault and AWS destinations and the registry's restore targets."""

    def vault_client(self) -> VaultClient: ...

    def aws_clients(self) -> AWSClients: ...

    def restore_target(
        self, target: BackupTarget, destination: str, *, overwrite: bool = False
    ) -> RestoreTarget: ...


class BackupServices(StoreServices, Protocol):
    """For running backups (:mod:`envsteward.backup.runner`): the stores, the catalog, the registry's
    backup sources, the key providers and the audit log."""

    def catalog(self) -> Catalog: ...

    def backup_source(self, target: BackupTarget, environment: str) -> BackupSource: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...

    def audit_log(self) -> AuditLog: ...


__all__ = ["BackupServices", "KeyServices", "RestoreServices", "StoreServices"]
