"""Small helpers shared by the config-source adapters: nested mappings built from path-like names.

Vault KV paths, SSM parameter names and Secrets Manager secret names are all slash-separated; each
source turns them into the nested mapping the catalog's desired configuration has at the mount point.
The tree itself is written with :mod:`envsteward.tree`; this module only speaks the stores' naming and
translates a conflict into the adapters' error.
"""

from __future__ import annotations

from typing import Any

from envsteward.errors import PermanentError
from envsteward.tree import PathConflictError, merge_at, set_at
from envsteward.tree.values import BLOCKED, NOT_A_MAPPING


def split_path(name: str) -> tuple[str, ...]:
    """``"/a//b/c/"`` -> ``("a", "b", "c")`` (empty segments dropped)."""
    return tuple(part for part in name.split("/") if part)


def _shown(path: tuple[Any, ...]) -> str:
    return "/".join(str(part) for part in path)


def set_nested(
    tree: dict[str, Any], key_path: tuple[str, ...], value: Any, *, system: str, where: str
) -> None:
    """Set ``tree[k1][k2]...[kn] = value``, creating intermediate mappings.

    When ``value`` is a mapping and a mapping already sits at the leaf, the two are merged. Raises
    PermanentError (naming ``where`` and the key path, never a value) when a leaf and a subtree collide.
    """
    try:
        merge_at(tree, key_path, value)
    except PathConflictError as exc:
        if exc.reason == NOT_A_MAPPING:
            message = f"{where}: a value cannot sit at the root of the subtree"
        elif exc.reason == BLOCKED:
            message = f"{where}: {_shown(exc.path)} is both a value and a folder"
        else:
            message = f"{where}: {_shown(exc.path)} is defined twice"
        raise PermanentError(message, system=system) from None


def set_leaf(
    data: dict[str, Any], key_path: tuple[str, ...], value: Any, *, system: str, operation: str
) -> None:
    """Set ``data[k1]...[kn] = value`` inside one secret's data, creating intermediate mappings.

    Raises PermanentError (naming the key path, never a value) when a key on the way holds a value.
    """
    try:
        set_at(data, key_path, value)
    except PathConflictError as exc:
        raise PermanentError(
            f"{_shown(key_path)}: {exc.path[-1]} holds a value, not a mapping",
            system=system,
            operation=operation,
        ) from None
