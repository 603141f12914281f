"""The health check's Vault call: ``sys/health`` through :class:`envsteward.adapters.vault.VaultClient`, at
the check's own address (no token: a Vault other than the one in settings) or through the caller's client."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envsteward.adapters.vault import VaultHealth


def vault_health_at(addr: str, timeout_seconds: float, *, verify_tls: bool = True) -> VaultHealth:
    """``sys/health`` of the Vault at ``addr``, asked anonymously.

    Calls Vault over HTTP. Never raises for a sealed, standby or unreachable Vault (the result says so);
    raises the adapter's PermanentError for an answer that is not a Vault health document.
    """
    from envsteward.adapters.vault import VaultClient

    return VaultClient.anonymous(addr, timeout_seconds=timeout_seconds, verify_tls=verify_tls).health()
