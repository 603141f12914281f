"""Parity: two neighbouring environments on the promotion path, compared by shape, not by value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from envsteward.drift.compiled_rules import CompiledRules
from envsteward.drift.items import BY_REF, Fingerprint, Node
from envsteward.drift.model import DriftKind, DriftReport
from envsteward.drift.rules import DriftRules
from envsteward.drift.values import is_same
from envsteward.drift.walk import Walker
from envsteward.ports import Severity


def parity(
    left_name: str,
    left: Any,
    right_name: str,
    right: Any,
    *,
    environment_specific: Iterable[str] = (),
    secret_fingerprints_left: Mapping[str, str] | None = None,
    secret_fingerprints_right: Mapping[str, str] | None = None,
    rules: DriftRules | None = None,
    origins: Mapping[str, str] | None = None,
    fingerprint: Fingerprint | None = None,
) -> DriftReport:
    """Check two neighbouring environments on the promotion path (e.g. staging and production) for parity.

    Findings: keys present in one and missing in the other (``removed``: only in ``left``; ``added``: only
    in ``right``), type mismatches (``type_changed``, including a secret reference on one side and a literal
    on the other), except at or under a path matching an ``environment_specific`` glob. Different values of
    the same type are not findings. A secret value used by both environments (the same keyed fingerprint in
    ``secret_fingerprints_left`` and ``secret_fingerprints_right``, at any paths) is a ``secret_reused``
    item of severity critical. Items put the left value in ``desired`` and the right one in ``live``
    (redacted as in :func:`compare`); ``rules`` give severities, secret paths and list keys (ignores do not
    apply to parity). Parity items are never healable: they are fixed in the catalog.

    Raises ConfigurationError for a malformed glob; pure otherwise.
    """
    rules = rules or DriftRules()
    compiled = CompiledRules(
        rules,
        environment=None,
        today=date.today(),
        use_ignores=False,
        environment_specific=environment_specific,
    )
    environment = f"{left_name}<->{right_name}"
    walker = Walker(
        compiled,
        environment=environment,
        origins=origins,
        secret_paths=frozenset(),
        secret_fingerprints=None,
        fingerprint=fingerprint,
        parity=(left_name, right_name),
    )
    if not is_same(left, right):
        walker.diff(left, right, walker.root)
    by_fingerprint: dict[str, list[str]] = {}
    for path, value in (secret_fingerprints_right or {}).items():
        by_fingerprint.setdefault(value, []).append(path)
    for left_path, value in sorted((secret_fingerprints_left or {}).items()):
        for right_path in sorted(by_fingerprint.get(value, ())):
            node = _node_for(walker, left_path)
            walker.add_item(
                node,
                DriftKind.SECRET_REUSED,
                Severity.CRITICAL,
                value,
                value,
                desired_type="secret_ref",
                live_type="secret_ref",
                secret=True,
                detail=(
                    f"{left_name}:{left_path} and {right_name}:{right_path} hold the same secret value "
                    "(equal keyed fingerprints)"
                ),
            )
    return DriftReport(environment=environment, items=tuple(walker.items), ignored=0)


def _node_for(walker: Walker, path: str) -> Node:
    """A node for a path given as text (for items not found by the walk); no glob states, no key path."""
    return Node(walker.root, path, path, None, frozenset(), BY_REF)
