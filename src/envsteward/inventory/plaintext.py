"""Values that look like secrets where no secret belongs (pure).

Two kinds of evidence, each with a rule name that reports carry (never the value):

* a **secret-like key name** (``password``, ``token``, ``secret``, ``api_key``, ``private_key``...: the
  key's last word, so ``token_endpoint`` or ``password_min_length`` do not count) holding a non-empty
  string that is not a secret reference;
* a **known credential format** anywhere: AWS access key ids, Slack tokens, PEM private keys, JWTs,
  GitHub and Stripe live keys, and high-entropy strings.

The high-entropy rule is deliberately narrow so that ordinary configuration (hashes, UUIDs, image tags,
host names, identifiers) does not trip it: a single token of 24+ characters from the base64/URL-safe
alphabet (no dots, colons or spaces), mixing lower case, upper case and digits (at least two of each),
whose Shannon entropy is at least 4.0 bits per character. Hex digests and UUIDs have two character
classes only and never match.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from envsteward.secret_refs import SecretRef, is_secret_ref
from envsteward.tree import format_path, iter_leaves, parse_path

SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials", "apikey"}
)
"""A key whose last word is one of these names a secret."""
SECRET_KEY_QUALIFIERS = frozenset({"api", "private", "access", "secret", "signing", "encryption", "master"})
"""``<qualifier>_key`` names a secret (``api_key``, ``private_key``); ``key`` alone does not."""

FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key-id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("pem-private-key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("stripe-live-key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}\b")),
)
_TOKEN = re.compile(r"^[A-Za-z0-9+/=_-]{24,}$")
MIN_ENTROPY_BITS = 4.0


@dataclass(frozen=True)
class PlaintextHit:
    """A secret-looking value at ``path``: the rule that matched and a keyed fingerprint of the value
    (so that a changed value is a changed finding); never the value."""

    path: str
    rule: str
    fingerprint: str


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


def secret_like_key(key: str) -> bool:
    """True for key names that name a secret: ``db_password``, ``authToken``, ``api_key``, ``apiKey``."""
    words = _words(key)
    if not words:
        return False
    last = words[-1]
    if last in SECRET_WORDS:
        return True
    return last == "key" and len(words) >= 2 and words[-2] in SECRET_KEY_QUALIFIERS


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s character distribution."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()) if text else 0.0


def high_entropy(text: str) -> bool:
    """The narrow high-entropy rule of the module docstring."""
    if not _TOKEN.match(text):
        return False
    lower = sum(c.islower() for c in text)
    upper = sum(c.isupper() for c in text)
    digits = sum(c.isdigit() for c in text)
    return min(lower, upper, digits) >= 2 and shannon_entropy(text) >= MIN_ENTROPY_BITS


def credential_format(text: str) -> str | None:
    """The name of the first known credential format ``text`` contains, or None."""
    for name, pattern in FORMATS:
        if pattern.search(text):
            return name
    if high_entropy(text.strip()):
        return "high-entropy-string"
    return None


def looks_secret(key: str | None, value: Any) -> str | None:
    """The rule that makes ``value`` (found under ``key``) look like a plaintext secret, or None. Only
    strings count; secret references never do."""
    if not isinstance(value, str) or isinstance(value, SecretRef) or is_secret_ref(value):
        return None
    found = credential_format(value)
    if found is not None:
        return found
    if key is not None and value.strip() and secret_like_key(key):
        return "secret-like-key"
    return None


def find_plaintext(
    tree: Any,
    fingerprint: Callable[[Any], str],
    *,
    prefix: str = "",
    skip: Callable[[str], bool] | None = None,
) -> Iterator[PlaintextHit]:
    """Every leaf of ``tree`` that looks like a plaintext secret, in document order. ``prefix``: the
    dotted path ``tree`` sits at; ``skip(path)``: paths not to judge (where a secret is expected)."""
    for parts, value in iter_leaves(tree, parse_path(prefix) if prefix else ()):
        path = format_path(parts)
        if skip is not None and skip(path):
            continue
        key = next((p for p in reversed(parts) if isinstance(p, str)), None)
        rule = looks_secret(key, value)
        if rule is not None:
            yield PlaintextHit(path=path, rule=rule, fingerprint=fingerprint(value))


def desired_plaintext(data: Mapping[str, Any], fingerprint: Callable[[Any], str]) -> list[PlaintextHit]:
    """Plaintext secrets in a rendered desired configuration (references are SecretRef objects there)."""
    return list(find_plaintext(data, fingerprint))
