"""Which keys hold secrets by their name, and how a redacted value is shown.

A value is redacted when it sits at or under a secret reference, a path the rules mark secret, or a key
whose name says secret. A redacted value is shown as :data:`REDACTED` or, when the caller supplies a keyed
HMAC function, as its fingerprint. Never the value, never a plain (unkeyed) hash of it.
"""

from __future__ import annotations

import functools
import re

REDACTED = "<redacted>"

# Matched against the key lower-cased, with camelCase split and any non-alphanumeric run turned into "_".
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "privatekey",
    "credential",
    "access_key",
    "accesskey",
    "signing_key",
    "encryption_key",
    "master_key",
    "session_key",
    "client_key",
    "auth_key",
    "connection_string",
    "conn_str",
)
_SECRET_WORDS = frozenset({"pwd", "pass", "dsn", "cookie", "jwt", "pat", "psk", "otp", "totp"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=65536)
def is_secret_key(key: str) -> bool:
    """True when a mapping key's name says it holds a secret (``password``, ``DB_PASSWORD``, ``apiKey``,
    ``client-secret``, ``private_key``, ``credentials``, ``auth_token``…). Errs on the side of redacting."""
    normal = _NON_ALNUM.sub("_", _CAMEL.sub("_", key).lower()).strip("_")
    if any(part in normal for part in _SECRET_PARTS):
        return True
    return any(word in _SECRET_WORDS for word in normal.split("_"))
