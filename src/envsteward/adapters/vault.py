"""Vault (hvac) adapter: the client wrapper, its error mapping and the port implementations.

Import from here; the code lives in ``vault_client`` (hvac wrapper), ``vault_errors`` (the one mapping
from hvac/requests exceptions to envsteward errors) and ``vault_ports`` (ConfigSource, SecretStore,
KeyProvider) and ``vault_signing`` (the audit checkpoint signer).
"""

from __future__ import annotations

from envsteward.adapters.vault_client import (
    KVMetadata,
    KVSecret,
    KVVersion,
    TransitKeyInfo,
    VaultClient,
    VaultHealth,
    split_mount_path,
    transit_key_version,
)
from envsteward.adapters.vault_errors import translate_vault_error, vault_errors
from envsteward.adapters.vault_ports import VaultKVSource, VaultSecretStore, VaultTransitKeyProvider
from envsteward.adapters.vault_signing import VaultCheckpointSigner

__all__ = [
    "KVMetadata",
    "KVSecret",
    "KVVersion",
    "TransitKeyInfo",
    "VaultCheckpointSigner",
    "VaultClient",
    "VaultHealth",
    "VaultKVSource",
    "VaultSecretStore",
    "VaultTransitKeyProvider",
    "split_mount_path",
    "transit_key_version",
    "translate_vault_error",
    "vault_errors",
]
