"""The promotion's data: a plan (what the target would receive and why), and what applying it did.

Everything here is JSON-ready and holds no secret value: a plan only carries values that are not secret
(secret keys are promoted by reference, and a reference is where a secret lives, not what it is), so a plan
may be persisted as a Prefect result, shown in an artifact, put in the audit log and sent to Slack.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envsteward.ports import JSONValue


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Change(_Frozen):
    """One key the target receives: ``after`` (the source's value) replaces ``before`` (absent when created).

    ``target_source`` is the target's live source that holds the key, ``key_path`` the path relative to
    that source's mount point (what :meth:`ConfigSource.write` takes).
    """

    path: str
    kind: Literal["create", "update"]
    target_source: str
    key_path: tuple[str, ...]
    before: JSONValue = None
    after: JSONValue = None


class Skipped(_Frozen):
    """A difference between source and target that the plan does not promote, and why."""

    path: str
    reason: str


class SecretCheck(_Frozen):
    """A secret key in scope: it is promoted by reference only. ``reference`` is the target's own reference
    (a URI, no value); ``exists`` whether the target's secret store holds it."""

    path: str
    reference: str | None
    exists: bool
    detail: str


class PolicyFinding(_Frozen):
    """A tier rule the target's configuration would break after the plan."""

    rule_id: str
    path: str
    origin: str | None
    message: str
    severity: str
    blocking: bool = True
    """False: the violation is at a key the promotion does not touch (a warning, not a blocker)."""
    drift: str | None = None
    """For a warning: the drift finding at the key (live differs from the catalog, or not)."""


class PromotionPlan(_Frozen):
    """What promoting ``source`` to ``target`` would change, checked against the target's tier rules.

    ``blockers`` say why the plan must not be applied (empty: it may be, after approval). ``plan_hash`` is a
    SHA-256 over the route, the selection, the target's current values at the changed keys and the changes
    themselves: the stale-plan guard compares it right before applying.
    """

    source: str
    target: str
    select: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    secret_checks: tuple[SecretCheck, ...] = ()
    violations: tuple[PolicyFinding, ...] = ()
    blockers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    """Tier-rule violations in keys the promotion does not touch: shown, never blocking."""
    target_state: dict[str, str] = Field(default_factory=dict)
    """Changed path -> digest of the target's current value there (``absent`` when it has none)."""
    approvals_needed: int = 0
    approvers: tuple[str, ...] = ()
    timeout_hours: float = 24.0
    plan_hash: str = ""

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def empty(self) -> bool:
        """True when there is nothing to write (the target already matches the source in scope)."""
        return not self.changes

    def summary(self) -> dict[str, Any]:
        """A short JSON summary (counts, hash, blockers) for results and audit details."""
        return {
            "source": self.source,
            "target": self.target,
            "select": list(self.select),
            "changes": len(self.changes),
            "skipped": len(self.skipped),
            "secret_checks": len(self.secret_checks),
            "violations": len(self.violations),
            "blockers": list(self.blockers),
            "warnings": list(self.warnings),
            "plan_hash": self.plan_hash,
        }


class WriteStatus(StrEnum):
    WRITTEN = "written"
    NO_OP = "no-op"
    """The target already held the value (a retried or repeated apply): nothing was written."""
    FAILED = "failed"
    NOT_ATTEMPTED = "not-attempted"


class WriteOutcome(_Frozen):
    path: str
    status: WriteStatus
    error: str | None = None


class ApplyReport(_Frozen):
    """What the apply step did, change by change (values are not repeated: see the plan)."""

    outcomes: tuple[WriteOutcome, ...] = ()

    @property
    def written(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is WriteStatus.WRITTEN)

    @property
    def no_ops(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is WriteStatus.NO_OP)

    @property
    def failed(self) -> tuple[WriteOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.status is WriteStatus.FAILED)


class PromotionOutcome(StrEnum):
    DRY_RUN = "dry-run"
    NOTHING_TO_PROMOTE = "nothing-to-promote"
    BLOCKED = "blocked"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    STALE = "stale"
    APPLIED = "applied"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
