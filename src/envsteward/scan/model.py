"""What a drift scan produces: per-environment results, parity results, heal plans and heal outcomes.

Every model here is safe to print, log, persist, put in an artifact or return from a flow: drift items are
already redacted by the engine, heal actions only exist for items the engine found non-secret, and source
errors are envstewardError messages (which never carry values) or an exception's type name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsteward.drift import DriftKind, DriftReport
from envsteward.ports import JSONValue, Severity


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScanStatus(StrEnum):
    """``ok``: no drift; ``drift``: drift found; ``unknown``: a source (or the secret store) could not be
    read, so the result is incomplete and must not be taken as "no drift"."""

    OK = "ok"
    DRIFT = "drift"
    UNKNOWN = "unknown"


class SourceState(_Frozen):
    """How reading one live source went."""

    name: str
    kind: str
    mount_at: str
    writable: bool
    ok: bool
    error: str | None = None
    """Why it could not be read (a safe message: envsteward errors never hold values)."""


class HealWrite(_Frozen):
    """One leaf to write through :meth:`ConfigSource.write` (key path relative to the source's mount)."""

    key_path: tuple[str, ...]
    value: JSONValue


class HealAction(_Frozen):
    """Write the desired value back to the live source at ``path``.

    Only built for items the drift engine found healable, hence never secret. ``live_fingerprint`` is the
    keyed fingerprint of the live value the scan saw (None: absent); the executor re-reads the source and
    skips the action when the live value is no longer that one.
    """

    environment: str
    source: str
    path: str
    key_path: tuple[str, ...]
    """Relative to the source's mount point."""
    writes: tuple[HealWrite, ...]
    desired: JSONValue
    desired_fingerprint: str
    live_fingerprint: str | None
    severity: Severity
    kind: DriftKind
    item_fingerprint: str

    @property
    def id(self) -> str:
        """The name of the action in approval forms and the audit log: ``<environment>:<path>``."""
        return f"{self.environment}:{self.path}"


class NotHealable(_Frozen):
    path: str
    reason: str


class HealPlan(_Frozen):
    """What a heal would do for one environment (a plan only: nothing is written by planning)."""

    threshold: Severity
    automatic: tuple[HealAction, ...] = ()
    """At or below the threshold, in a writable source: healed without approval when healing is on."""
    needs_approval: tuple[HealAction, ...] = ()
    """Above the threshold: healed only after a reviewer approves them."""
    not_healable: tuple[NotHealable, ...] = ()


class HealResult(StrEnum):
    HEALED = "healed"
    ALREADY_DESIRED = "already_desired"
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_APPROVED = "not_approved"


class HealOutcome(_Frozen):
    """What happened to one heal action."""

    action_id: str
    environment: str
    source: str
    path: str
    severity: Severity
    result: HealResult
    reason: str
    item_fingerprint: str
    approved_by: str | None = None

    @classmethod
    def for_action(
        cls, action: HealAction, result: HealResult, reason: str, approved_by: str | None = None
    ) -> HealOutcome:
        return cls(
            action_id=action.id,
            environment=action.environment,
            source=action.source,
            path=action.path,
            severity=action.severity,
            result=result,
            reason=reason,
            item_fingerprint=action.item_fingerprint,
            approved_by=approved_by,
        )


class EnvironmentScan(_Frozen):
    """The desired-vs-live result of one environment."""

    environment: str
    status: ScanStatus
    reason: str | None = None
    sources: tuple[SourceState, ...] = ()
    report: DriftReport
    heal: HealPlan
    notes: tuple[str, ...] = ()
    """Things the reader should know (a secret reference that could not be resolved...)."""
    scanned_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ParityScan(_Frozen):
    """Parity of two neighbouring environments on the promotion path (desired configurations and the keyed
    fingerprints of their resolved secrets)."""

    left: str
    right: str
    status: ScanStatus
    reason: str | None = None
    report: DriftReport

    @property
    def scope(self) -> str:
        return parity_scope(self.left, self.right)

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "scope": self.scope}


def parity_scope(left: str, right: str) -> str:
    """The name a parity pair goes by in reports, alert state and artifacts: ``staging<->production``."""
    return f"{left}<->{right}"
