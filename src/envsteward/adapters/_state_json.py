"""What both state stores share: the key check and the JSON encoding of values (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Callable

from envsteward.errors import PermanentError
from envsteward.ports import JSONValue

UpdateFn = Callable[[JSONValue | None], JSONValue | None]


def check_key(key: str) -> None:
    """Raises PermanentError unless ``key`` is a non-empty string."""
    if not isinstance(key, str) or not key:
        raise PermanentError("state keys must be non-empty strings", system="state")


def encode(key: str, value: JSONValue) -> str:
    """``value`` as compact, sorted JSON. Raises PermanentError (naming ``key``) for a non-JSON value."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"value is not plain JSON: {exc}", system="state", operation=f"put {key}"
        ) from None
