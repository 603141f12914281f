"""Keyed fingerprints of the secrets an environment's desired configuration references.

Each secret reference is resolved in this process and its value handed straight to the keyed HMAC; the
value goes nowhere else (not returned, not logged, not in an exception). The drift engine compares these
fingerprints with the fingerprints of the live values, and parity compares them across environments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from envsteward.catalog.refs import SecretRef
from envsteward.errors import EnvstewardError, PermanentError
from envsteward.scan.model import _Frozen


class SecretFingerprints(_Frozen):
    """``by_path``: dotted path -> keyed fingerprint of the resolved secret. ``problems``: path -> why it
    could not be resolved (its value is then checked for presence only)."""

    by_path: dict[str, str] = {}
    problems: dict[str, str] = {}


def fingerprint_secrets(
    secret_refs: Mapping[str, SecretRef],
    resolve: Callable[[SecretRef], SecretStr],
    fingerprint: Callable[[Any], str],
) -> SecretFingerprints:
    """Resolve and fingerprint every reference. Calls the secret stores the references name.

    A permanent failure (missing secret, denied) is recorded in ``problems``; a transient one (the store is
    down) is raised as TransientError so the caller can retry, since fingerprints from a half-answered scan
    would make secrets look changed.
    """
    by_path: dict[str, str] = {}
    problems: dict[str, str] = {}
    for path, ref in sorted(secret_refs.items()):
        try:
            value = resolve(ref)
        except PermanentError as exc:
            problems[path] = f"secret reference {ref.uri()} cannot be resolved: {exc}"
            continue
        except EnvstewardError:
            raise
        except Exception as exc:  # noqa: BLE001 - a vendor message might quote a value: name the type
            problems[path] = f"secret reference {ref.uri()} cannot be resolved ({type(exc).__name__})"
            continue
        by_path[path] = fingerprint(value)
        del value
    return SecretFingerprints(by_path=by_path, problems=problems)
