"""Small helpers shared by the config-source adapters: nested mappings built from path-like names.

Vault KV paths, SSM parameter names and Secrets Manager secret names are all slash-separated; each
source turns them into the nested mapping the catalog's desired configuration has at the mount point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envsteward.errors import PermanentError


def split_path(name: str) -> tuple[str, ...]:
    """``"/a//b/c/"`` -> ``("a", "b", "c")`` (empty segments dropped)."""
    return tuple(part for part in name.split("/") if part)


def set_nested(
    tree: dict[str, Any], key_path: tuple[str, ...], value: Any, *, system: str, where: str
) -> None:
    """Set ``tree[k1][k2]...[kn] = value``, creating intermediate mappings.

    When ``value`` is a mapping and a mapping already sits at the leaf, the two are merged. Raises
    PermanentError (naming ``where`` and the key path, never a value) when a leaf and a subtree collide.
    """
    if not key_path:
        if not isinstance(value, Mapping):
            raise PermanentError(f"{where}: a value cannot sit at the root of the subtree", system=system)
        _merge(tree, value, (), system=system, where=where)
        return
    node = tree
    for depth, part in enumerate(key_path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            shown = "/".join(key_path[: depth + 1])
            raise PermanentError(f"{where}: {shown} is both a value and a folder", system=system)
        node = child
    leaf = key_path[-1]
    if leaf in node:
        existing = node[leaf]
        if isinstance(existing, dict) and isinstance(value, Mapping):
            _merge(existing, value, key_path, system=system, where=where)
            return
        raise PermanentError(f"{where}: {'/'.join(key_path)} is defined twice", system=system)
    node[leaf] = dict(value) if isinstance(value, Mapping) else value


def set_leaf(
    data: dict[str, Any], key_path: tuple[str, ...], value: Any, *, system: str, operation: str
) -> None:
    """Set ``data[k1]...[kn] = value`` inside one secret's data, creating intermediate mappings.

    Raises PermanentError (naming the key path, never a value) when a key on the way holds a value.
    """
    node = data
    for part in key_path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise PermanentError(
                f"{'/'.join(key_path)}: {part} holds a value, not a mapping",
                system=system,
                operation=operation,
            )
        node = child
    node[key_path[-1]] = value


def _merge(
    into: dict[str, Any], other: Mapping[str, Any], at: tuple[str, ...], *, system: str, where: str
) -> None:
    for key, value in other.items():
        _merge_one(into, key, value, (*at, key), system=system, where=where)


def _merge_one(
    into: dict[str, Any], key: str, value: Any, full: tuple[str, ...], *, system: str, where: str
) -> None:
    if key not in into:
        into[key] = dict(value) if isinstance(value, Mapping) else value
        return
    existing = into[key]
    if isinstance(existing, dict) and isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _merge_one(existing, sub_key, sub_value, (*full, sub_key), system=system, where=where)
        return
    raise PermanentError(f"{where}: {'/'.join(full)} is defined twice", system=system)
