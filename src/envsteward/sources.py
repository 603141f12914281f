"""Live configuration sources: where a source's subtree sits in a configuration tree.

The catalog says which subtree of an environment's configuration lives in which store; the matching
:class:`~envsteward.ports.ConfigSource` is built by :mod:`envsteward.adapters.registry` (``CONFIG_SOURCES``).
"""

from __future__ import annotations

from typing import Any

from envsteward.errors import ConfigurationError


def subtree_at(tree: Any, mount_at: str) -> Any:
    """The value at dotted path ``mount_at`` of ``tree``, or None when it is absent."""
    node = tree
    for part in [p for p in mount_at.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def mount(tree: dict[str, Any], mount_at: str, subtree: Any) -> None:
    """Place ``subtree`` at the dotted path ``mount_at`` of ``tree`` (``""``: merge into the root).

    Raises ConfigurationError when a subtree mounted at the root is not a mapping."""
    if not mount_at:
        if not isinstance(subtree, dict):
            raise ConfigurationError("a source mounted at the root must hold a mapping")
        tree.update(subtree)
        return
    *parents, leaf = mount_at.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = subtree
