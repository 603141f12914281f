"""``secret_exists`` for secret stores whose only way to tell is to read the secret (SSM, Secrets Manager)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsteward.errors import NotFoundError

if TYPE_CHECKING:
    from pydantic import SecretStr


class SecretExistsByReading:
    """Mix-in: ``secret_exists`` reads the secret (and key) with ``get_secret`` and drops the value."""

    def get_secret(self, location: str, key: str | None) -> SecretStr:  # pragma: no cover - overridden
        raise NotImplementedError

    def secret_exists(self, location: str, key: str | None) -> bool:
        """True when the secret (and key) exist; calls the store through ``get_secret``. Raises
        PermissionDeniedError, TransientError, or PermanentError when a key is asked of a value that is not
        a JSON object."""
        try:
            self.get_secret(location, key)
        except NotFoundError:
            return False
        return True
