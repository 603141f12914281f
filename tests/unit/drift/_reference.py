"""A deliberately simple reference for the drift engine: a plain recursive walk over every value, no
skipping, no rules. The engine's findings must be identical to this on any input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from envsteward.tree import Keyed, join, key_text

Finding = tuple[str, str, Any, Any]
_MISSING = object()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a) and isinstance(b, float) and math.isnan(b):
        return True
    return bool(a == b)


def reference_diff(desired: Any, live: Any, list_keys: dict[str, str] | None = None) -> list[Finding]:
    """Findings ``(path, kind, desired, live)``; ``list_keys`` maps exact list paths to their key field."""
    out: list[Finding] = []
    _walk(desired, live, "", out, list_keys or {})
    return out


def _walk(a: Any, b: Any, path: str, out: list[Finding], list_keys: dict[str, str]) -> None:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        out.append((path, "type_changed", a, b))
    elif ka == "object":
        for key in a:
            child = join(path, key_text(key))
            if key in b:
                _walk(a[key], b[key], child, out, list_keys)
            else:
                out.append((child, "removed", a[key], None))
        for key in b:
            if key not in a:
                out.append((join(path, key_text(key)), "added", None, b[key]))
    elif ka == "array":
        field = list_keys.get(path)
        keyed_a = _keyed(a, field) if field else None
        keyed_b = _keyed(b, field) if field else None
        if field and keyed_a is not None and keyed_b is not None:
            for key, item in keyed_a.items():
                child = join(path, Keyed(field, key[1]))
                if key in keyed_b:
                    _walk(item, keyed_b[key], child, out, list_keys)
                else:
                    out.append((child, "removed", item, None))
            for key, item in keyed_b.items():
                if key not in keyed_a:
                    out.append((join(path, Keyed(field, key[1])), "added", None, item))
            return
        for i in range(max(len(a), len(b))):
            child = join(path, i)
            if i >= len(b):
                out.append((child, "removed", a[i], None))
            elif i >= len(a):
                out.append((child, "added", None, b[i]))
            else:
                _walk(a[i], b[i], child, out, list_keys)
    elif not _equal(a, b):
        out.append((path, "changed", a, b))


def _keyed(items: list[Any], field: str) -> dict[tuple[str, Any], Any] | None:
    out: dict[tuple[str, Any], Any] = {}
    for item in items:
        if not isinstance(item, Mapping) or field not in item:
            return None
        value = item[field]
        if _kind(value) not in ("bool", "int", "float", "str", "null"):
            return None
        key = (_kind(value), value)
        if key in out:
            return None
        out[key] = item
    return out
