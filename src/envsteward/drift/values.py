"""Values as the drift engine sees them: type-exact sameness, JSON type names, display copies, refs.

Two values are *the same* when they are type-exact equal: ``type(a) is type(b)`` all the way down, so
``true`` vs ``1`` and ``7`` vs ``7.0`` differ although Python's ``==`` says equal. For two containers, C-level
``==`` runs first (it stops at the first difference); when it says equal, a ``marshal.dumps(version=0)`` of
both sides confirms type-exactness in C: version-0 marshal encodes every value with its exact type (``True``
/ ``1`` / ``1.0`` differ), has no reference or interning flags, and refuses subclasses and foreign types.
Equal bytes therefore imply type-exact equality; unequal bytes (for example the same mapping in another key
order) only send the walk down the slow path, which is always exact.

Equality details: two NaNs are equal; ``0.0`` equals ``-0.0``; any mapping is an object and any list or
tuple an array (so a ruamel ``CommentedMap`` equals a ``dict``), scalar subclasses count as their base type.
"""

from __future__ import annotations

import marshal
import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from envsteward.drift.redaction import REDACTED
from envsteward.secret_refs import SECRET_PREFIX, SecretRef
from envsteward.tree import MISSING

NONE_TYPE = type(None)
_EXACT_SCALARS = frozenset({str, int, bool, NONE_TYPE})
_KIND = {str: str, int: int, float: float, bool: bool, NONE_TYPE: NONE_TYPE, dict: dict, list: list}
_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    NONE_TYPE: "null",
    dict: "object",
    list: "array",
    SecretRef: "secret_ref",
}

# secrecy levels of a node, inherited by everything under it
NOT_SECRET, BY_NAME, BY_PATH, BY_REF = 0, 1, 2, 3


def kind_of(value: Any) -> type:
    """The comparison type: exact for JSON scalars (bool, int, float, str, None are all different), any
    mapping is ``dict``, any list or tuple is ``list``, scalar subclasses count as their base type."""
    kind = _KIND.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return bool
    for base in (int, float, str):
        if isinstance(value, base):
            return base
    if isinstance(value, Mapping):
        return dict
    if isinstance(value, list | tuple):
        return list
    return type(value)


def scalar_equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def is_same(a: Any, b: Any) -> bool:
    """Fast, conservative type-exact equality: True only when ``a`` and ``b`` are type-exact equal. False
    may be wrong for equal values (the caller then walks them), never the other way round."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _EXACT_SCALARS:
        return bool(a == b)
    if kind is dict or kind is list:
        if a != b:
            return False
        try:
            return marshal.dumps(a, 0) == marshal.dumps(b, 0)
        except ValueError:  # a foreign type, a subclass, or too deep: let the walk decide
            return False
    return False


def is_ref(value: Any) -> bool:
    return type(value) is SecretRef or (isinstance(value, str) and value.startswith(SECRET_PREFIX))


def ref_text(value: Any) -> str:
    if isinstance(value, SecretRef):
        return SECRET_PREFIX + value.uri()
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        return value
    return REDACTED


def type_name(value: Any) -> str | None:
    """The JSON name of a value's type (``boolean``, ``integer``, ``number``, ``string``, ``null``,
    ``object``, ``array``, ``secret_ref``); None for :data:`MISSING`."""
    if value is MISSING:
        return None
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        return "secret_ref"
    kind = type(value) if type(value) is SecretRef else kind_of(value)
    return _TYPE_NAMES.get(kind, kind.__name__)


def json_scalar(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, SecretRef):
        return SECRET_PREFIX + value.uri()
    if isinstance(value, bool):
        return bool(value)
    for base in (int, float, str):
        if isinstance(value, base):
            return json_scalar(base(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def index_by_key(items: Any, field: str) -> dict[tuple[type, Any], tuple[int, Any, Any]] | None:
    """Items of a list by the value of their ``field``; None when an item is not a mapping, lacks the
    field, has a non-scalar key value, or two items share a key value (then the list is compared by
    position)."""
    out: dict[tuple[type, Any], tuple[int, Any, Any]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or field not in item:
            return None
        value = item[field]
        kind = kind_of(value)
        if kind not in (str, int, float, bool, NONE_TYPE):
            return None
        key = (kind, value)
        if key in out:
            return None
        out[key] = (index, item, value)
    return out
