"""``secret+env://NAME`` references: a variable of this process's environment (embedded default, tests)."""

from __future__ import annotations

import os

from pydantic import SecretStr

from envsteward.errors import NotFoundError


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
