"""Paths: how envsteward names one place in a configuration tree.

A path names one place in a configuration document, from the root:

* a mapping key is written as is and joined with ``.``: ``database.pool.size``;
* a key that contains ``.``, ``[``, ``]``, ``"``, ``*``, ``?`` or white space, or is empty, is written as a
  JSON string in brackets: ``labels["app.kubernetes.io/name"]``;
* a list position is ``[i]`` (0-based): ``hosts[2]``;
* an item of a list that the rules match *by key* is ``[field=value]``: ``services[name=api].port``.
  The value is written bare when it is a plain word, otherwise as JSON: ``[id=7]``, ``[name="7"]``,
  ``[enabled=true]``;
* the root itself is the empty path ``""``.

Non-string mapping keys (YAML allows ``80: http``) are written as their text (``true``/``false``/``null``
for YAML's booleans and null). In code a path is a tuple of segments (:data:`PathTuple`:
``("services", 0, "name")``); :func:`format_path` writes it, :func:`~envsteward.tree.globs.parse_path`
reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

PLAIN_KEY = re.compile(r'[^.\[\]"*?\s]+')
_PLAIN_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:@]*")
KEYWORDS = frozenset({"true", "false", "null"})


class Keyed(NamedTuple):
    """The path segment of a list item matched by key: ``[field=value]``."""

    field: str
    value: Any


Segment = str | int | Keyed
"""A mapping key (str), a list position (int) or a keyed list item."""

Key = str | int
"""A segment of a concrete document path: a mapping key or a list position."""

PathTuple = tuple[Key, ...]
"""A concrete path as segments: ``("services", 0, "name")``."""


def key_text(key: Any) -> str:
    """The text of a mapping key in a path (non-string YAML keys get their YAML spelling)."""
    if type(key) is str:
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def render_key(key: str) -> str:
    """A mapping key as a path segment, without the leading dot."""
    if PLAIN_KEY.fullmatch(key):
        return key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def render_value(value: Any) -> str:
    """A keyed-item value as written inside ``[field=value]``."""
    if type(value) is str and _PLAIN_WORD.fullmatch(value) and value not in KEYWORDS:
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def join(parent: str, segment: Segment) -> str:
    """The path of ``segment`` under the path ``parent``."""
    if type(segment) is str:
        text = render_key(segment)
        if text[0] == "[" or not parent:
            return parent + text
        return parent + "." + text
    if type(segment) is int:
        return f"{parent}[{segment}]"
    assert isinstance(segment, Keyed)
    return f"{parent}[{segment.field}={render_value(segment.value)}]"


def format_path(segments: Iterable[Segment]) -> str:
    """The path text of a sequence of segments: ``("services", 0, "name")`` -> ``"services[0].name"``;
    ``()`` -> ``""``."""
    path = ""
    for segment in segments:
        path = join(path, segment)
    return path
