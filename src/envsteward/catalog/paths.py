"""Paths and path globs over a configuration tree, in the one syntax envsteward uses everywhere.

The syntax is defined by :mod:`envsteward.drift.paths` (the drift engine, the drift rules, the
environment-specific keys and the tier rules all share it):

* a path names one node from the root: mapping keys joined with ``.`` (``services.api.instances``), list
  items as ``[i]`` (``services[0].name``); a key with special characters is written as a JSON string in
  brackets (``labels["app.kubernetes.io/name"]``); the root is ``""``;
* a glob adds wildcards: ``*`` one mapping key (``services.*.instances``), ``**`` any number of segments,
  including none (``**.debug``), ``[*]`` any one list item, and ``*``/``?`` inside a key (``*_PASSWORD``).

This module adapts that syntax to what the catalog and the tier rules need: path tuples
(``("services", 0, "name")``), tree walking and a glob wrapper that knows its parent and last segment.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from envsteward.drift import paths as _syntax

Segment = str | int
"""A mapping key (str) or a list index (int)."""
PathTuple = tuple[Segment, ...]


class _Missing:
    """Sentinel for "no node at this path" (distinct from a ``None`` value)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def format_path(parts: Sequence[Segment]) -> str:
    """``("services", 0, "name")`` -> ``"services[0].name"``; ``()`` -> ``""``."""
    return _syntax.render(list(parts))


def parse_path(text: str) -> PathTuple:
    """Parse a path without wildcards (``""`` is the root). Raises ValueError naming the problem."""
    if not text.strip():
        return ()
    glob = _syntax.parse_glob(text.strip())
    parts: list[Segment] = []
    for kind, arg, _ in glob.tokens:
        if kind == _syntax.KEY:
            parts.append(str(arg))
        elif kind == _syntax.INDEX:
            parts.append(int(arg))
        else:
            raise ValueError(f"invalid path {text!r}: wildcards and [field=value] are not allowed here")
    return tuple(parts)


def _token_text(token: _syntax.Token) -> str:
    kind, arg, extra = token
    if kind == _syntax.KEY:
        return _syntax.render_key(str(arg))
    if kind == _syntax.KEY_GLOB:
        return str(extra)
    if kind == _syntax.ANY_KEY:
        return "*"
    if kind == _syntax.DEEP:
        return "**"
    if kind == _syntax.INDEX:
        return f"[{arg}]"
    if kind == _syntax.ANY_ITEM:
        return "[*]"
    if kind == _syntax.KEYED:
        return f"[{arg}={_syntax.render_value(extra)}]"
    return f"[{arg}=*]"


def _tokens_text(tokens: Sequence[_syntax.Token]) -> str:
    text = ""
    for token in tokens:
        piece = _token_text(token)
        text += piece if piece.startswith("[") or not text else f".{piece}"
    return text


@dataclass(frozen=True)
class PathGlob:
    """A compiled path glob; build it with :func:`compile_glob`."""

    text: str
    glob: _syntax.Glob

    @property
    def tokens(self) -> tuple[_syntax.Token, ...]:
        return self.glob.tokens

    @property
    def is_literal(self) -> bool:
        """True when the glob has no wildcard at all (it names exactly one path)."""
        return all(token[0] in (_syntax.KEY, _syntax.INDEX) for token in self.tokens)

    @property
    def has_double_star(self) -> bool:
        return any(token[0] == _syntax.DEEP for token in self.tokens)

    @property
    def last_key(self) -> str | None:
        """The last segment when it is a literal mapping key, else None."""
        if self.tokens and self.tokens[-1][0] == _syntax.KEY:
            return str(self.tokens[-1][1])
        return None

    def parent(self) -> PathGlob:
        """The glob without its last segment (the root glob ``""`` for a one-segment glob)."""
        tokens = self.tokens[:-1]
        return PathGlob(
            _tokens_text(tokens), _syntax.Glob(_tokens_text(tokens), tokens, self.glob.specificity)
        )

    def literal_prefix(self) -> PathTuple:
        """The leading literal segments (up to the first wildcard)."""
        parts: list[Segment] = []
        for kind, arg, _ in self.tokens:
            if kind == _syntax.KEY:
                parts.append(str(arg))
            elif kind == _syntax.INDEX:
                parts.append(int(arg))
            else:
                break
        return tuple(parts)

    def literal_path(self) -> PathTuple:
        """The path a literal glob names. Raises ValueError when the glob has wildcards."""
        if not self.is_literal:
            raise ValueError(f"glob {self.text!r} has wildcards")
        return self.literal_prefix()

    def matches(self, path: Sequence[Segment] | str) -> bool:
        """True when ``path`` (a tuple of segments or a path string) matches the whole glob."""
        parts = parse_path(path) if isinstance(path, str) else tuple(path)
        return _match(self.glob, parts)

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=65536)
def _match(glob: _syntax.Glob, path: PathTuple) -> bool:
    return glob.matches(list(path))


@functools.lru_cache(maxsize=4096)
def compile_glob(text: str) -> PathGlob:
    """Compile a path glob. Raises ValueError (GlobError) naming the problem."""
    stripped = text.strip()
    return PathGlob(stripped, _syntax.parse_glob(stripped))


def glob_matches(pattern: str, path: Sequence[Segment] | str) -> bool:
    """Convenience: ``compile_glob(pattern).matches(path)``."""
    return compile_glob(pattern).matches(path)


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


def get_at(tree: Any, path: Sequence[Segment]) -> Any:
    """The node at ``path`` or :data:`MISSING`."""
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
