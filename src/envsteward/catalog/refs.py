"""Secret references as the catalog uses them; defined in :mod:`envsteward.secret_refs`.

They live outside this package so that models the catalog embeds (health checks, for example) can use them
without importing the whole catalog first (which would be a circular import).
"""

from envsteward.secret_refs import (
    SCHEMES,
    SECRET_PREFIX,
    SecretRef,
    SecretRefError,
    SecretRefField,
    is_secret_ref,
)

__all__ = ["SCHEMES", "SECRET_PREFIX", "SecretRef", "SecretRefError", "SecretRefField", "is_secret_ref"]
