"""Live configuration sources: where a source's subtree sits in a configuration tree.

The catalog says which subtree of an environment's configuration lives in which store; the matching
:class:`~envsteward.ports.ConfigSource` is built by :mod:`envsteward.adapters.registry` (``CONFIG_SOURCES``).
"""

from __future__ import annotations

from typing import Any

from envsteward.errors import ConfigurationError
from envsteward.tree import MISSING, PathConflictError, parse_path, value_at
from envsteward.tree import mount as mount_at_path


def subtree_at(tree: Any, mount_at: str) -> Any:
    """The value at the mount path ``mount_at`` (``app.database``) of ``tree``, or None when it is absent."""
    value = value_at(tree, parse_path(mount_at))
    return None if value is MISSING else value


def mount(tree: dict[str, Any], mount_at: str, subtree: Any) -> None:
    """Place ``subtree`` at the mount path ``mount_at`` of ``tree`` (``""``: merge into the root).

    Raises ConfigurationError when a subtree mounted at the root is not a mapping."""
    try:
        mount_at_path(tree, parse_path(mount_at), subtree)
    except PathConflictError:
        raise ConfigurationError("a source mounted at the root must hold a mapping") from None
