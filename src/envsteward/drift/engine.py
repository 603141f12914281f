"""The drift engine: compare a desired configuration with the live one (:func:`compare`).

How it stays fast on large documents: the walk (:mod:`envsteward.drift.walk`) never looks inside subtrees
that are the same, checked type-exactly and mostly in C (:mod:`envsteward.drift.values`); rules (severity,
ignore, secret paths, list keys, environment-specific keys) are compiled once per call into one
:class:`~envsteward.tree.GlobSet` (:mod:`envsteward.drift.compiled_rules`), stepped one segment per visited
node; only nodes on the way to a difference are ever visited. Findings are identical to a plain recursive
walk (a randomised test checks this against one).

Each difference becomes a redacted item (:mod:`envsteward.drift.items`), whose healing is decided by
:func:`~envsteward.drift.items.heal_decision`: an item matched by an expired ignore must be reviewed, not
healed; a secret (by reference, secret path or key name, anywhere in the item's values) is never written by
the healer (rotate it at its source); a key present only in live (``added``: removed from desired) is not
deleted automatically; the document root and paths that cross a list (positions or keyed items) cannot be
written as one key (``ConfigSource.write`` takes mapping keys); anything else can be healed by writing the
desired value. Two environments are compared for parity by :mod:`envsteward.drift.parity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from envsteward.drift.compiled_rules import CompiledRules
from envsteward.drift.items import Fingerprint, heal_decision, item_fingerprint
from envsteward.drift.model import DriftReport, ExpiredIgnore
from envsteward.drift.rules import DriftRules
from envsteward.drift.values import is_same, type_name
from envsteward.drift.walk import Walker

__all__ = ["Fingerprint", "compare", "heal_decision", "item_fingerprint", "type_name"]


def compare(
    desired: Any,
    live: Any,
    rules: DriftRules | None = None,
    *,
    environment: str | None = None,
    origins: Mapping[str, str] | None = None,
    secret_paths: Iterable[str] = (),
    secret_fingerprints: Mapping[str, str] | None = None,
    fingerprint: Fingerprint | None = None,
    today: date | None = None,
) -> DriftReport:
    """Compare the desired configuration with the live one and return every difference, redacted.

    ``desired``/``live``: nested mappings, lists and scalars (JSON/YAML data). A
    :class:`~envsteward.catalog.refs.SecretRef` leaf (or a ``secret+…`` string) on the desired side means
    "a secret is expected here": its presence is checked, and its value only by fingerprint, when
    ``secret_fingerprints[path]`` (the keyed fingerprint of the resolved desired secret) and ``fingerprint``
    (the keyed HMAC function applied to the live value) are both given. Secrets are never resolved here.

    ``rules``: severity, ignore (with expiry, per environment), secret paths and list keys (see
    :mod:`envsteward.tree.globs` for the glob syntax). ``environment`` selects per-environment ignores and
    goes into each item's fingerprint. ``origins``: ``file:line`` by path (positional paths of the desired
    document, ``services[0].port``, or the keyed form); an item without an exact origin gets its nearest
    ancestor's. ``secret_paths``: exact paths where the desired side holds a secret reference. ``today``:
    the date ignore expiries are checked against (default: today).

    Raises ConfigurationError for a malformed glob in ``rules`` (naming the field); pure otherwise.
    """
    rules = rules or DriftRules()
    compiled = CompiledRules(rules, environment=environment, today=today or date.today(), use_ignores=True)
    walker = Walker(
        compiled,
        environment=environment,
        origins=origins,
        secret_paths=frozenset(secret_paths),
        secret_fingerprints=secret_fingerprints,
        fingerprint=fingerprint,
    )
    if not is_same(desired, live):
        walker.diff(desired, live, walker.root)
    return DriftReport(
        environment=environment,
        items=tuple(walker.items),
        expired_ignores=tuple(
            ExpiredIgnore(
                path=rule.path,
                reason=rule.reason,
                expires=rule.expires,
                environments=tuple(rule.environments) if rule.environments is not None else None,
                matched=walker.expired_matches.get(id(rule), 0),
            )
            for rule in compiled.expired
            if rule.expires is not None
        ),
        ignored=walker.ignored,
    )
