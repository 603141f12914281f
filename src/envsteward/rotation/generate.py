"""Generated secret values: length and alphabet from the catalog's policy, drawn with ``secrets``."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from envsteward.catalog.models import GeneratedValuePolicy


def generate_value(policy: GeneratedValuePolicy) -> SecretStr:
    """A new value of ``policy.length`` characters drawn uniformly from the policy's alphabet (CSPRNG)."""
    symbols = policy.symbols()
    return SecretStr("".join(secrets.choice(symbols) for _ in range(policy.length)))


def describe_policy(policy: GeneratedValuePolicy) -> str:
    """``32 characters from alphanumeric`` (never a value)."""
    source = "the catalog's characters" if policy.characters else policy.alphabet
    return f"{policy.length} characters from {source}"


def conforms(value: SecretStr, policy: GeneratedValuePolicy) -> bool:
    """Whether ``value`` has the policy's length and only its characters."""
    text = value.get_secret_value()
    allowed = set(policy.symbols())
    return len(text) == policy.length and all(ch in allowed for ch in text)
