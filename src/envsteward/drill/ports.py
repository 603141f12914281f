"""What a drill needs from the process: :class:`DrillServices` (``envsteward.services.Services`` satisfies
it structurally; nothing here imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from envsteward.health.runner import CheckServices

if TYPE_CHECKING:
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.ports import KeyProvider, ObjectStore, StateStore
    from envsteward.settings import Settings


class DrillServices(CheckServices, Protocol):
    """The catalog, the audit log, the state store (the drill ledger, the history) and the settings
    (``home`` for file scratch targets); the Vault client
    (Vault KV scratch prefixes); the secret resolver and AWS clients (the drill server's password, the
    health checks run against the restored target); the object store and key providers (the backup
    stores and the key that unwraps a backup's data key)."""

    settings: Settings

    def catalog(self) -> Catalog: ...

    def audit_log(self) -> AuditLog: ...

    def state_store(self) -> StateStore: ...

    def vault_client(self) -> VaultClient: ...

    def object_store(self) -> ObjectStore: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...


__all__ = ["DrillServices"]
