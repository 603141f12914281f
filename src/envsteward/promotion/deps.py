"""What the promotion's journal, repair and snapshot code needs from the services container.

:class:`envsteward.services.Services` satisfies :class:`PromotionServices`; the modules below it take this
narrow Protocol instead, so nothing under ``envsteward.promotion`` imports ``envsteward.services``
(DESIGN.md principle 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.ports import ConfigSource, StateStore
    from envsteward.settings import Settings


class SnapshotServices(Protocol):
    """What taking a snapshot needs: the catalog and the Vault/AWS clients."""

    def catalog(self) -> Catalog: ...

    def vault_client(self) -> VaultClient: ...

    def aws_clients(self) -> AWSClients: ...


class PromotionServices(SnapshotServices, Protocol):
    """What the rollback journal and its repair need: settings (the home folder for file copies), the
    state store, the audit log and the target's config sources, besides the snapshot's needs."""

    @property
    def settings(self) -> Settings: ...

    def state_store(self) -> StateStore: ...

    def audit_log(self) -> AuditLog: ...

    def config_source(self, environment: str, source_name: str) -> ConfigSource: ...
