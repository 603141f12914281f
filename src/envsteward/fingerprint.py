"""Keyed fingerprints of values: a way to say "this is the same secret" without showing it.

A fingerprint is ``hmac-sha256:`` followed by the first 16 hex digits of HMAC-SHA256(key, canonical bytes),
where the canonical bytes are a type tag, a NUL byte and the value's payload:

=============  =====================================================================
Python value   canonical bytes
=============  =====================================================================
``str``        ``b"str\\0"`` + UTF-8 (a ``SecretStr`` is fingerprinted as its string)
``bytes``      ``b"bytes\\0"`` + the bytes (a ``SecretBytes`` as its bytes)
``None``       ``b"null\\0null"``
``bool``       ``b"bool\\0true"`` / ``b"bool\\0false"``
``int``        ``b"int\\0"`` + decimal digits
``float``      ``b"float\\0"`` + JSON number (NaN and infinities are refused)
dict / list    ``b"object\\0"`` / ``b"array\\0"`` + canonical JSON (sorted keys, no whitespace, UTF-8)
=============  =====================================================================

so ``1``, ``"1"``, ``1.0`` and ``True`` all fingerprint differently. A fingerprint is never a plain hash:
without the key nobody can test guesses of a secret against it. The same key gives the same fingerprint in
every process and environment, which is what parity checks compare.

The key comes from the environment variable named by ``Settings.fingerprint_key_env`` (hex or base64, at
least 16 bytes), else from ``<home>/keys/fingerprint.key``, created with mode 0600 on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretBytes, SecretStr

from envsteward._keyfiles import read_or_create_key_file
from envsteward.errors import ConfigurationError

if TYPE_CHECKING:
    from envsteward.settings import Settings

FINGERPRINT_PREFIX = "hmac-sha256:"
FINGERPRINT_HEX_DIGITS = 16
MIN_KEY_BYTES = 16
GENERATED_KEY_BYTES = 32
KEY_FILE_RELATIVE = Path("keys") / "fingerprint.key"


class Fingerprinter:
    """Computes keyed fingerprints (HMAC-SHA256) of values. Its repr never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: SecretBytes | bytes) -> None:
        """Raises ConfigurationError when the key is shorter than 16 bytes."""
        raw = key.get_secret_value() if isinstance(key, SecretBytes) else bytes(key)
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"fingerprint key is {len(raw)} bytes; it must be at least {MIN_KEY_BYTES} bytes "
                f"(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        self._key = raw

    def __repr__(self) -> str:
        return "Fingerprinter(key=<redacted>)"

    def fingerprint(self, value: Any) -> str:
        """Return ``hmac-sha256:<16 hex>`` for ``value`` (see the module docstring for the canonical bytes).

        Raises TypeError for values that have no canonical form (sets, arbitrary objects, NaN).
        """
        digest = hmac.new(self._key, canonical_bytes(value), hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest[:FINGERPRINT_HEX_DIGITS]

    def matches(self, value: Any, fingerprint: str) -> bool:
        """True when ``value`` has ``fingerprint`` (constant-time comparison)."""
        return hmac.compare_digest(self.fingerprint(value), fingerprint)


def canonical_bytes(value: Any) -> bytes:
    """The type-tagged canonical bytes that are fingerprinted. Raises TypeError for unsupported values."""
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    if isinstance(value, str):
        return b"str\0" + value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return b"bytes\0" + bytes(value)
    if value is None:
        return b"null\0null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return b"bool\0" + (b"true" if value else b"false")
    if isinstance(value, int):
        return b"int\0" + str(value).encode("ascii")
    if isinstance(value, float):
        return b"float\0" + _canonical_json(value)
    if isinstance(value, Mapping):
        return b"object\0" + _canonical_json(value)
    if isinstance(value, list | tuple):
        return b"array\0" + _canonical_json(value)
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}")


def _canonical_json(value: Any) -> bytes:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # The message names the type problem only; json's messages never include string values.
        raise TypeError(f"cannot fingerprint this value: {exc}") from None
    return text.encode("utf-8")


def parse_key(text: str, where: str) -> bytes:
    """Decode a key written as hex or base64 (hex wins when both would parse).

    ``where`` names the variable or file for the error message. Raises ConfigurationError (without the key).
    """
    text = text.strip()
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if not text:
        raise ConfigurationError(f"fingerprint key in {where} is empty")
    if not raw:
        raise ConfigurationError(f"fingerprint key in {where} is neither hex nor base64")
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"fingerprint key in {where} is {len(raw)} bytes; it must be at least {MIN_KEY_BYTES} bytes"
        )
    return raw


def load_fingerprinter(settings: Settings) -> Fingerprinter:
    """Build the Fingerprinter from settings: the env var named by ``fingerprint_key_env``, else the key file.

    The key file ``<home>/keys/fingerprint.key`` is created (32 random bytes, hex, mode 0600) when missing.
    Raises ConfigurationError for an unparsable key, or a key file that group or others can read.
    """
    env_name = settings.fingerprint_key_env
    env_value = os.environ.get(env_name) if env_name else None
    if env_value:
        return Fingerprinter(parse_key(env_value, f"environment variable {env_name}"))
    return Fingerprinter(load_or_create_key_file(settings.home / KEY_FILE_RELATIVE))


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key at ``path``, creating it (32 random bytes as hex, mode 0600, race-free) when missing.

    Reads and writes local files only. Raises ConfigurationError when the file is readable by group or
    others, or cannot be read, created or parsed (the message names the file, never the key).
    """
    text = read_or_create_key_file(
        path, lambda: secrets.token_hex(GENERATED_KEY_BYTES), what="fingerprint key file"
    )
    return parse_key(text, f"key file {path}")
