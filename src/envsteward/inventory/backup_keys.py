"""The backup key-encryption keys (KEKs) in the secret inventory: each key an environment's backups use is
reported like a secret, its age (the newest key version's) against ``secrets.backup_key_max_age_days``
(default 90 days) - overdue means ``envsteward backup rotate-key`` is due.

A key is named ``backup-key://local``, ``backup-key://vault_transit:<key>`` or
``backup-key://aws_kms:<key id>``. Reading it is read-only: the local key file is never created (no file
yet means no local backup was made: nothing to report but that), Vault is asked for the transit key's
versions, KMS for the key's dates and rotation status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsteward.errors import NotFoundError
from envsteward.inventory.classify import NO_KEY_YET, ReferenceFacts
from envsteward.inventory.metadata import KeyState, SecretMetadata
from envsteward.inventory.model import ReferenceUsage

if TYPE_CHECKING:
    from envsteward.backup.rewrap import KeyProviderServices
    from envsteward.catalog.core import Catalog

SCHEME = "backup-key"


def key_reference(kind: str, key_id: str | None) -> str:
    """The inventory's name for a backup KEK (no ``secret+``: it is no secret reference)."""
    return f"{SCHEME}://local" if kind == "local" else f"{SCHEME}://{kind}:{key_id}"


def parse_key_reference(reference: str) -> tuple[str, str | None]:
    """``(kind, key id)`` of a :func:`key_reference`. Raises ValueError for anything else."""
    body = reference.removeprefix(f"{SCHEME}://")
    if body == reference:
        raise ValueError(f"not a backup key reference: {reference!r}")
    if body == "local":
        return "local", None
    kind, _, key_id = body.partition(":")
    if not key_id:
        raise ValueError(f"not a backup key reference: {reference!r}")
    return kind, key_id


def is_key_reference(reference: str) -> bool:
    return reference.startswith(f"{SCHEME}://")


def backup_key_usages(catalog: Catalog, environment: str) -> list[ReferenceUsage]:
    """One usage per KEK the environment's encrypted backup targets use, with the targets' catalog fields
    (``backups.<target>.key_provider``). Pure."""
    used: dict[str, list[str]] = {}
    for target in catalog.environment(environment).backups:
        if target.encrypted:
            reference = key_reference(target.key_provider, target.key_id)
            used.setdefault(reference, []).append(f"backups.{target.name}.key_provider")
    return [
        ReferenceUsage(environment=environment, reference=reference, used_at=tuple(fields))
        for reference, fields in used.items()
    ]


def key_metadata(state: KeyState) -> SecretMetadata:
    """A key's state as secret metadata (version, the newest version's date). Pure."""
    return SecretMetadata(
        exists=True,
        version=str(state.latest_version) if state.latest_version is not None else None,
        changed_at=state.created_at,
        rotated_at=state.created_at,
        detail=state.detail,
    )


def describe_backup_key(services: KeyProviderServices, reference: str) -> ReferenceFacts:
    """The key's facts (read-only: the local key file is only read, never created). Calls Vault transit
    (read key) or KMS (DescribeKey, GetKeyRotationStatus, ListKeyRotations), or reads the key file. Raises
    ConfigurationError (a provider that cannot describe its key), PermissionDeniedError, TransientError;
    a key the service does not have is ``exists=False`` (a missing finding)."""
    from envsteward.backup.keys import local_key_file
    from envsteward.backup.rewrap import KeyRef, open_key

    kind, key_id = parse_key_reference(reference)
    if kind == "local" and not local_key_file(services.settings.home).exists():
        return ReferenceFacts(metadata=SecretMetadata(exists=True, detail=NO_KEY_YET))
    keys = open_key(services, KeyRef(kind, key_id))
    try:
        state = keys.describe()
    except NotFoundError:
        return ReferenceFacts(metadata=SecretMetadata(exists=False, detail="no such key"))
    return ReferenceFacts(metadata=key_metadata(state))
