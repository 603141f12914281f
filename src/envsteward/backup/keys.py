"""Where the local backup key lives, and the warning that its only copy sits beside the data it protects.

With the embedded default's key provider (``key_provider: local``) the key-encryption key is a file under
``$ENVSTEWARD_HOME/keys/``, next to the filesystem object store of both "regions": losing that folder makes
every backup, the DR replica included, unreadable. Until a copy is made (``envsteward backup key export``,
recorded beside the key by :func:`envsteward.adapters.local_keys.record_export`), every backup run warns
(:func:`local_key_warning`; the CLI prints it, the backup flow logs it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from envsteward.adapters.local_keys import export_record

if TYPE_CHECKING:
    from envsteward.backup.runner import PlannedBackup

KEY_FILE_RELATIVE = Path("keys") / "backup.key"


def local_key_file(home: Path) -> Path:
    """Where the local key provider keeps its key-encryption key under ``home`` (``ENVSTEWARD_HOME``)."""
    return home / KEY_FILE_RELATIVE


def uses_local_key(planned: Iterable[PlannedBackup]) -> list[str]:
    """``env/target`` of each planned backup whose data key the local key wraps. Pure."""
    return [item.label() for item in planned if item.target.encrypted and item.target.key_provider == "local"]


def local_key_warning(home: Path, planned: Iterable[PlannedBackup]) -> str | None:
    """The warning for a backup run of ``planned``, or None: none of them uses the local key, or the key
    now in the key file has a recorded export. Reads local files only; never raises.
    """
    targets = uses_local_key(planned)
    if not targets:
        return None
    key_file = local_key_file(home)
    if export_record(key_file) is not None:
        return None
    shown = ", ".join(targets[:3]) + (f" and {len(targets) - 3} more" if len(targets) > 3 else "")
    return (
        f"the only copy of the local backup key ({key_file}) lives beside the data it protects; if that "
        f"folder is lost, the backups of {shown} (DR replicas included) cannot be decrypted. Run "
        "`envsteward backup key export --out FILE` and keep FILE and its passphrase apart from the backups, "
        "or use key_provider vault_transit or aws_kms (a multi-region key) in production; see the README, "
        "'Disaster recovery: keys'"
    )
