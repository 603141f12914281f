"""Values at paths: read, write, delete and mount nodes of a configuration tree, walk its nodes.

A tree is plain data: mappings, lists (or tuples) and scalars. A path is a tuple of segments
(:data:`~envsteward.tree.paths.PathTuple`): a ``str`` selects a mapping key, an ``int`` a list position.
"No node here" is :data:`MISSING` (distinct from a ``None`` value); there is one such marker in envsteward.

Writers (:func:`set_at`, :func:`merge_at`, :func:`mount`) create the mappings on the way and raise
:class:`PathConflictError` (a ``ValueError`` naming where, never a value) when a value is in the way; callers
translate it into the error their layer speaks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from envsteward.tree.paths import Key, PathTuple


class _Missing:
    """Sentinel for "no node at this path" (distinct from a ``None`` value); falsy; one instance."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()
"""The one "no node at this path" marker (typed ``Any`` so that it can stand wherever a value can)."""


def is_missing(value: Any) -> bool:
    """True when ``value`` is :data:`MISSING`."""
    return value is MISSING


# Why a value could not be written (PathConflictError.reason).
BLOCKED = "blocked"
"""A non-mapping value sits on the way to the path (at ``PathConflictError.path``)."""
OCCUPIED = "occupied"
"""The path already holds a value that cannot be merged with the new one."""
NOT_A_MAPPING = "not_a_mapping"
"""Only a mapping can be placed at (merged into) the root."""


class PathConflictError(ValueError):
    """A write found a value in the way. ``path`` is where, ``reason`` one of :data:`BLOCKED`,
    :data:`OCCUPIED`, :data:`NOT_A_MAPPING`. The message names the path only, never a value."""

    def __init__(self, path: PathTuple, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{'/'.join(str(part) for part in path) or '<root>'}: {reason}")


def value_at(tree: Any, path: Sequence[Key]) -> Any:
    """The node at ``path`` (mapping keys and list positions from the root) or :data:`MISSING`."""
    node = tree
    for part in path:
        if isinstance(part, str) and isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(part, int) and isinstance(node, list | tuple):
            if not 0 <= part < len(node):
                return MISSING
            node = node[part]
        else:
            return MISSING
    return node


def _parent(tree: dict[Any, Any], path: Sequence[Key], *, make_room: bool) -> dict[Any, Any]:
    """The mapping that holds the last segment of ``path``, creating mappings on the way. A non-mapping on
    the way is replaced by an empty mapping when ``make_room``, else PathConflictError(BLOCKED) is raised."""
    node = tree
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            if (child is not None or part in node) and not make_room:
                raise PathConflictError(tuple(path[: depth + 1]), BLOCKED)
            child = node[part] = {}
        node = child
    return node


def set_at(tree: dict[Any, Any], path: Sequence[Key], value: Any, *, make_room: bool = False) -> None:
    """Set the node at the mapping keys ``path`` (non-empty) to ``value``, replacing what is there and
    creating mappings on the way. A non-mapping on the way is replaced when ``make_room``, else raises
    PathConflictError(BLOCKED) naming it."""
    if not path:
        raise ValueError("set_at needs a non-empty path (use mount to replace the root)")
    _parent(tree, path, make_room=make_room)[path[-1]] = value


def delete_at(tree: Any, path: Sequence[Key]) -> Any:
    """Remove the node at ``path`` and return it (:data:`MISSING`, nothing changed, when there is none)."""
    if not path:
        raise ValueError("delete_at needs a non-empty path")
    parent = value_at(tree, path[:-1])
    last = path[-1]
    if isinstance(last, str) and isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(last, int) and isinstance(parent, list) and 0 <= last < len(parent):
        return parent.pop(last)
    return MISSING


def mount(tree: dict[Any, Any], path: Sequence[Key], subtree: Any) -> None:
    """Place ``subtree`` at ``path`` of ``tree``, replacing what is there (mappings on the way are created,
    values on the way replaced); the root path ``()`` merges a mapping into the root (top-level keys).

    Raises PathConflictError(NOT_A_MAPPING) when a subtree mounted at the root is not a mapping."""
    if not path:
        if not isinstance(subtree, dict):
            raise PathConflictError((), NOT_A_MAPPING)
        tree.update(subtree)
        return
    set_at(tree, path, subtree, make_room=True)


def merge_at(tree: dict[Any, Any], path: Sequence[Key], value: Any) -> None:
    """Place ``value`` at ``path``; where a mapping meets a mapping the two are merged key by key (new
    mappings are copied one level deep), anything else meeting an existing node is a conflict.

    Raises PathConflictError: BLOCKED (a value on the way), OCCUPIED (the path, or a key below it, is defined
    twice), NOT_A_MAPPING (a non-mapping at the root)."""
    if not path:
        if not isinstance(value, Mapping):
            raise PathConflictError((), NOT_A_MAPPING)
        _merge(tree, value, ())
        return
    parent = _parent(tree, path, make_room=False)
    leaf = path[-1]
    if leaf in parent:
        existing = parent[leaf]
        if isinstance(existing, dict) and isinstance(value, Mapping):
            _merge(existing, value, tuple(path))
            return
        raise PathConflictError(tuple(path), OCCUPIED)
    parent[leaf] = dict(value) if isinstance(value, Mapping) else value


def _merge(into: dict[Any, Any], other: Mapping[Any, Any], at: PathTuple) -> None:
    for key, value in other.items():
        here = (*at, key)
        if key not in into:
            into[key] = dict(value) if isinstance(value, Mapping) else value
            continue
        existing = into[key]
        if not (isinstance(existing, dict) and isinstance(value, Mapping)):
            raise PathConflictError(here, OCCUPIED)
        _merge(existing, value, here)


def iter_nodes(tree: Any, prefix: PathTuple = ()) -> Iterator[tuple[PathTuple, Any]]:
    """Every node below ``tree`` (not the root itself), parents before children, in document order."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            path = (*prefix, key)
            yield path, value
            yield from iter_nodes(value, path)
    elif isinstance(tree, list | tuple):
        for index, value in enumerate(tree):
            path = (*prefix, index)
            yield path, value
            yield from iter_nodes(value, path)


def iter_leaves(tree: Any, prefix: PathTuple = ()) -> Iterator[tuple[PathTuple, Any]]:
    """Every leaf (non-container value, empty containers included) below ``tree``, in document order."""
    for path, value in iter_nodes(tree, prefix):
        if not isinstance(value, Mapping | list | tuple) or not value:
            yield path, value
