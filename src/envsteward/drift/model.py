"""The drift report: what differs, where, how bad, and whether it can be healed.

Items are created already redacted (see :mod:`envsteward.drift.redaction`): a report never holds a secret
value, so printing, serialising, notifying or persisting it is always safe.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from envsteward.ports import JSONValue, Severity


class DriftKind(StrEnum):
    """How the live side differs from the desired side at a path.

    ``added``: only live has it; ``removed``: only desired has it; ``changed``: same type, other value;
    ``type_changed``: another type, even where Python's ``==`` says equal (``true`` vs ``1``, ``7`` vs
    ``7.0``); ``secret_reused``: parity only, two environments hold the same secret value.
    """

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    TYPE_CHANGED = "type_changed"
    SECRET_REUSED = "secret_reused"  # noqa: S105 - a kind name, not a password


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftItem(_Frozen):
    """One difference. ``desired``/``live`` are JSON values, redacted where secret; ``None`` together with a
    ``None`` type means "absent on that side" (an explicit null has type ``"null"``)."""

    path: str
    kind: DriftKind
    severity: Severity
    origin: str | None = None
    """``file:line`` of the desired value (or of its nearest known ancestor), when known."""
    desired: JSONValue = None
    live: JSONValue = None
    desired_type: str | None = None
    live_type: str | None = None
    secret: bool = False
    """The values, or parts of them, are redacted (secret reference, secret path or secret key name)."""
    healable: bool = False
    heal_reason: str = ""
    """Why the item can or cannot be healed automatically."""
    ignored_by: str | None = None
    """The glob of the expired ignore rule that would have hidden this item."""
    key_path: tuple[str, ...] | None = None
    """The mapping keys from the root, for :meth:`ConfigSource.write`; None when the path crosses a list."""
    detail: str | None = None
    fingerprint: str = Field(min_length=16)
    """Stable id for alert de-duplication: SHA-256 over environment, path, kind and the *redacted* values."""


class ExpiredIgnore(_Frozen):
    """An ignore rule whose expiry date has passed: it no longer hides drift, and is reported itself."""

    path: str
    reason: str
    expires: date
    environments: tuple[str, ...] | None = None
    matched: int = 0
    """How many reported items it would have hidden."""


class DriftSummary(_Frozen):
    total: int
    by_severity: dict[str, int]
    by_kind: dict[str, int]
    ignored: int
    """Items hidden by ignore rules that are still valid."""
    expired_ignores: int


_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


class DriftReport(_Frozen):
    """The result of :func:`envsteward.drift.compare` or :func:`envsteward.drift.parity`."""

    environment: str | None = None
    items: tuple[DriftItem, ...] = ()
    expired_ignores: tuple[ExpiredIgnore, ...] = ()
    ignored: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> DriftSummary:
        severities = Counter(item.severity for item in self.items)
        kinds = Counter(item.kind for item in self.items)
        return DriftSummary(
            total=len(self.items),
            by_severity={
                s.value: severities.get(s, 0) for s in _ORDER if s != Severity.INFO or severities[s]
            },
            by_kind={k.value: kinds.get(k, 0) for k in DriftKind if k != DriftKind.SECRET_REUSED or kinds[k]},
            ignored=self.ignored,
            expired_ignores=len(self.expired_ignores),
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def max_severity(self) -> Severity | None:
        """The highest severity among the items; None when there is no drift."""
        if not self.items:
            return None
        return max((item.severity for item in self.items), key=lambda s: s.rank)

    @property
    def has_drift(self) -> bool:
        return bool(self.items)

    def has_drift_at_or_above(self, severity: Severity | str) -> bool:
        """True when any item is at least ``severity`` (an unknown severity name: any item, fail safe)."""
        threshold = severity if isinstance(severity, Severity) else Severity.parse_threshold(severity)
        return any(item.severity.rank >= threshold.rank for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``items``, ``summary``, ``expired_ignores``…)."""
        return self.model_dump(mode="json")
