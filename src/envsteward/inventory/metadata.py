"""What a secret store says about a secret without showing it: the port the secret inventory reads.

The secret-store adapters (``vault://``, ``aws-sm://``, ``ssm://``, ``env://``) implement
:class:`SecretMetadataStore` next to :class:`envsteward.ports.SecretStore`; nothing here holds a value.
Standard library only: adapters import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SecretMetadata:
    """A secret's existence, current version and dates (never its value).

    ``changed_at``: when the current value was set (Vault: the current version's creation, else the
    metadata's ``updated_time``; Secrets Manager: ``LastChangedDate``; SSM: ``LastModifiedDate``); None when
    the store does not tell (environment variables). ``detail`` says why a secret counts as missing.
    """

    exists: bool
    version: str | None = None
    changed_at: datetime | None = None
    rotated_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class StoredSecret:
    """One secret found under a managed prefix, named as a reference would name its location (Vault:
    ``<mount>/<path>``; Secrets Manager: the secret name; SSM: the parameter name)."""

    location: str
    changed_at: datetime | None = None


@runtime_checkable
class SecretMetadataStore(Protocol):
    """A secret store that can describe and list secrets (metadata only)."""

    scheme: str

    def describe_secret(self, location: str, key: str | None) -> SecretMetadata:
        """Existence (of the secret and, with ``key``, of that key), current version and dates. A missing
        secret is a result (``exists=False``), not an error. Raises PermissionDeniedError, TransientError."""
        ...

    def list_secrets(self, prefix: str) -> list[StoredSecret]:
        """Every secret under ``prefix``, sorted by location. Raises PermissionDeniedError, TransientError."""
        ...


@dataclass(frozen=True)
class KeyState:
    """What a backup key provider says about its key-encryption key (never the key): the newest version
    (None where the service does not number them: KMS), the oldest version that still decrypts, and when
    the newest version was made (None when the service does not tell). ``detail``: e.g. KMS's automatic
    rotation status."""

    key_id: str
    latest_version: int | None = None
    min_decryption_version: int | None = None
    created_at: datetime | None = None
    detail: str = ""
