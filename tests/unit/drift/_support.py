"""Shared helpers for the drift tests: a keyed test fingerprint and JSON case loading."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

CASES = Path(__file__).parent / "cases"
TEST_KEY = b"drift-test-hmac-key"


def hmac_fingerprint(value: Any) -> str:
    """A keyed fingerprint like the real Fingerprinter's: HMAC-SHA256 under a test key."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "hmac-sha256:" + hmac.new(TEST_KEY, text.encode(), hashlib.sha256).hexdigest()[:32]


def resolve(value: Any) -> Any:
    """Replace ``{"$hmac": "text"}`` markers in expected data by the test fingerprint of ``text``."""
    if isinstance(value, dict):
        if set(value) == {"$hmac"}:
            return hmac_fingerprint(value["$hmac"])
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def plain_hashes(secret: str) -> list[str]:
    """Unkeyed digests of a secret: none of them may appear in a report."""
    data = secret.encode()
    return [hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")]
