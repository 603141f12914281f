"""One tree vocabulary: paths, globs and values at paths, for catalog, drift, scan, promotion and adapters.

* :mod:`envsteward.tree.paths` — segments and how a path is written (``services[0].name``);
* :mod:`envsteward.tree.globs` — path globs (``services.*.port``, ``**.password``) and :func:`parse_path`;
* :mod:`envsteward.tree.globset` — many globs matched at once, one segment at a time, along a walk;
* :mod:`envsteward.tree.values` — the value at a path (or :data:`MISSING`), set, delete, merge, mount, walk.

A leaf package: it imports nothing else from envsteward.
"""

from envsteward.tree.globs import (
    Glob,
    GlobError,
    compile_glob,
    glob_matches,
    parse_glob,
    parse_path,
    validate_glob,
)
from envsteward.tree.globset import GlobSet, States
from envsteward.tree.paths import Key, Keyed, PathTuple, Segment, format_path, join, key_text
from envsteward.tree.values import (
    MISSING,
    PathConflictError,
    delete_at,
    is_missing,
    iter_leaves,
    iter_nodes,
    merge_at,
    mount,
    set_at,
    value_at,
)

__all__ = [
    "MISSING",
    "Glob",
    "GlobError",
    "GlobSet",
    "Key",
    "Keyed",
    "PathConflictError",
    "PathTuple",
    "Segment",
    "States",
    "compile_glob",
    "delete_at",
    "format_path",
    "glob_matches",
    "is_missing",
    "iter_leaves",
    "iter_nodes",
    "join",
    "key_text",
    "merge_at",
    "mount",
    "parse_glob",
    "parse_path",
    "set_at",
    "validate_glob",
    "value_at",
]
