"""``secret+env://NAME`` references: a variable of this process's environment (embedded default, tests)."""

from __future__ import annotations

import os

from pydantic import SecretStr

from envsteward.errors import NotFoundError
from envsteward.inventory.metadata import SecretMetadata, StoredSecret


class EnvSecretStore:
    """Reads secrets from this process's environment variables (env references have no key)."""

    scheme = "env"

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """The variable's value. Raises NotFoundError when it is not set. Reads the process environment."""
        if location not in os.environ:
            raise NotFoundError(
                f"environment variable {location} is not set; export it where envsteward runs",
                system="env",
                operation=f"read {location}",
            )
        return SecretStr(os.environ[location])

    def secret_exists(self, location: str, key: str | None) -> bool:
        """True when the variable is set. Reads this process's environment only."""
        return location in os.environ

    def describe_secret(self, location: str, key: str | None) -> SecretMetadata:
        """Whether the variable is set (no version or dates: the environment keeps none)."""
        if location in os.environ:
            return SecretMetadata(exists=True)
        return SecretMetadata(exists=False, detail="environment variable not set")

    def list_secrets(self, prefix: str) -> list[StoredSecret]:
        """The variables whose names start with ``prefix``. Reads this process's environment only."""
        return [StoredSecret(name) for name in sorted(os.environ) if name.startswith(prefix)]
