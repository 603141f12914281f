"""Helpers the rotator adapters share: one key of a JSON secret replaced, values compared in constant time."""

from __future__ import annotations

import hmac
import json
from typing import Any

from pydantic import SecretStr

from envsteward.errors import IntegrityError, NotFoundError, PermanentError


def with_key(text: str, key: str | None, value: SecretStr, where: str) -> SecretStr:
    """``text`` with ``key`` set to ``value`` (a JSON object), or ``value`` itself without a key. Raises
    NotFoundError when the object has no such key (rotation replaces, never adds), PermanentError when
    ``text`` is not a JSON object."""
    if key is None:
        return value
    data = _object(text, where)
    if key not in data:
        raise NotFoundError(f"secret has no key {key!r}", system="rotation", operation=where)
    data[key] = value.get_secret_value()
    return SecretStr(json.dumps(data))


def key_of(text: str, key: str | None, where: str) -> SecretStr:
    """The value of ``key`` in the JSON object ``text`` (or ``text`` itself without a key)."""
    if key is None:
        return SecretStr(text)
    data = _object(text, where)
    if key not in data:
        raise NotFoundError(f"secret has no key {key!r}", system="rotation", operation=where)
    found = data[key]
    return SecretStr(found if isinstance(found, str) else json.dumps(found))


def _object(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PermanentError(
            "a key was asked for but the secret is not a JSON object", system="rotation", operation=where
        )
    return data


def same(left: SecretStr, right: SecretStr) -> bool:
    """Constant-time equality of two secret values."""
    return hmac.compare_digest(left.get_secret_value().encode(), right.get_secret_value().encode())


def require_same(found: SecretStr, expected: SecretStr, where: str, what: str) -> None:
    """Raises IntegrityError (naming ``what``, never a value) unless ``found`` equals ``expected``."""
    if not same(found, expected):
        raise IntegrityError(
            f"{what} does not read back as the value written", system="rotation", operation=where
        )
