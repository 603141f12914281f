"""Confirmed status per check, and the decision to alert (a pure function: no flapping).

A check's *confirmed* status changes only after ``consecutive`` results in a row agree on a new status.

Baseline (decided here, documented in the README's health section):

* The very first ``up`` result is the baseline at once, without an alert: a healthy service is the quiet
  state and there is nothing to tell anyone.
* A check whose first results are ``down`` or ``degraded`` gets its confirmed status, *with* an alert (from
  ``unknown``), once ``consecutive`` results agree: fail safe — a service that is broken the day envsteward
  starts watching it is still broken, and someone must hear about it.
* Afterwards every confirmed change alerts exactly once: up→down, down→degraded, down→up (recovery)...
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from envsteward.health.result import CheckResult, CheckStatus

STATE_KEY_PREFIX = "health"


def state_key(environment: str, check: str) -> str:
    """The state-store key holding one check's :class:`CheckState`."""
    return f"{STATE_KEY_PREFIX}/{environment}/{check}"


class CheckState(BaseModel):
    """What is kept between runs for one check. JSON-serialisable via :meth:`to_json`/:meth:`from_json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confirmed: CheckStatus | None = None
    """The status people were last told about (or the silent ``up`` baseline); None until established."""
    confirmed_since: AwareDatetime | None = None
    candidate: CheckStatus
    """The latest status, i.e. the status of the current run of agreeing results."""
    count: int = Field(ge=1)
    """How many results in a row have had ``candidate`` status."""
    last_detail: str = ""
    last_latency_ms: float | None = None
    last_checked_at: AwareDatetime
    changed_at: AwareDatetime | None = None
    """``checked_at`` of the result that confirmed the latest change (lets a replay re-derive it)."""
    changed_from: CheckStatus | None = None
    changed_from_since: AwareDatetime | None = None

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: object) -> CheckState | None:
        """Parse a stored state; None for missing or unreadable data (the check starts over, fail safe:
        a lost state can delay an alert by ``consecutive`` runs, never invent one)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls.model_validate(data)
        except ValueError:
            return None


class StatusChange(BaseModel):
    """A confirmed change of a check's status: alert on it, once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str
    check: str
    kind: str
    from_status: CheckStatus | None
    """None when the check had no confirmed status yet (first confirmation of a non-``up`` status)."""
    to_status: CheckStatus
    count: int
    """How many consecutive results confirmed the change."""
    result: CheckResult
    """The result that confirmed it."""
    since: datetime | None = None
    """When the previous confirmed status began (None for a first confirmation)."""

    @property
    def is_recovery(self) -> bool:
        return self.to_status is CheckStatus.UP

    @property
    def reason(self) -> str:
        before = self.from_status.value if self.from_status else "unknown"
        return (
            f"{self.environment}/{self.check} is {self.to_status.value} (was {before}) after {self.count} "
            f"consecutive result(s): {self.result.detail or self.to_status.value}"
        )


def advance(
    previous: CheckState | None, result: CheckResult, consecutive: int
) -> tuple[CheckState, StatusChange | None]:
    """Fold one result into a check's state; return the new state and the confirmed change, if any.

    Pure and idempotent: folding the same result again (a retried task that already wrote its state)
    returns the stored state unchanged, and the same change again if that result confirmed one, so a retry
    neither counts a result twice nor loses an alert. ``consecutive`` < 1 is treated as 1.
    """
    if previous is not None and result.checked_at <= previous.last_checked_at:
        if result.checked_at == previous.last_checked_at:
            return previous, _replayed_change(previous, result)
        return previous, None  # older than what is stored: a late duplicate, ignore it
    needed = max(1, consecutive)
    status = result.status
    count = previous.count + 1 if previous is not None and previous.candidate is status else 1
    confirmed = previous.confirmed if previous else None
    confirmed_since = previous.confirmed_since if previous else None

    change: StatusChange | None = None
    changed_at = previous.changed_at if previous else None
    changed_from = previous.changed_from if previous else None
    changed_from_since = previous.changed_from_since if previous else None
    if confirmed is None and status is CheckStatus.UP:
        confirmed, confirmed_since = status, result.checked_at  # silent baseline
    elif status is not confirmed and count >= needed:
        change = StatusChange(
            environment=result.environment,
            check=result.check,
            kind=result.kind,
            from_status=confirmed,
            to_status=status,
            count=count,
            result=result,
            since=confirmed_since,
        )
        changed_at, changed_from, changed_from_since = result.checked_at, confirmed, confirmed_since
        confirmed, confirmed_since = status, result.checked_at

    state = CheckState(
        confirmed=confirmed,
        confirmed_since=confirmed_since,
        candidate=status,
        count=count,
        last_detail=result.detail,
        last_latency_ms=result.latency_ms,
        last_checked_at=result.checked_at,
        changed_at=changed_at,
        changed_from=changed_from,
        changed_from_since=changed_from_since,
    )
    return state, change


def _replayed_change(state: CheckState, result: CheckResult) -> StatusChange | None:
    if state.changed_at != result.checked_at or state.confirmed is None:
        return None
    return StatusChange(
        environment=result.environment,
        check=result.check,
        kind=result.kind,
        from_status=state.changed_from,
        to_status=state.confirmed,
        count=state.count,
        result=result,
        since=state.changed_from_since,
    )
