"""Approval timeouts of promotions that no process is waiting for.

A promotion started from a deployment *suspends* at its approval gate: no process runs it. When nobody
answers, Prefect's server fails the run at the pause's deadline ("The flow was paused and never resumed")
and none of the promotion's code runs, so nothing would audit the timeout, tell the channels or release
the target's lease. The ``expire-promotions`` flow does it instead: Prefect runs it for the ``promote``
deployment's failed runs (a deployment trigger) and on a schedule (the sweep, which also covers runs the
trigger missed and the embedded runner, which has no triggers).

* :func:`decide_expiry` (pure) — does this lease belong to a promotion whose approval timed out? Only
  when the lease records its approval deadline, no rollback journal is left for the target, and its run
  is either failed by Prefect for never being resumed, or still waiting more than :data:`GRACE` past the
  deadline (a run paused in a live process times itself out at the deadline; the grace keeps the sweep
  from racing it). A run that is running, finished otherwise, or cannot be asked about is left alone
  (fail closed: the lease stays held).
* :func:`expire_lease` — releases the lease (atomically, only while this run holds it), then audits
  ``promotion.timed_out`` and returns the notification for the target's channels.

Nothing here calls Prefect: the flow asks the API for the run's state (:class:`RunStatus`) and sets the
run's final state to ``Timed out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from envsteward.ports import AlertEvent, Notification, Severity
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.deps import PromotionServices

GRACE = timedelta(seconds=60)
"""How long past its approval deadline a still-waiting run is left to time itself out (a local pause)."""
NEVER_RESUMED = "and never resumed"
"""Part of the message Prefect's server sets when it fails a pause that expired ("The flow was paused and
never resumed." from its pause-expiration service, "The flow was suspended and never resumed." when a late
resume is refused)."""
TIMED_OUT_STATE = "Timed out"
"""The name of the final state of a promotion whose approval timed out (also set by the flow itself)."""


class RunStatus(StrEnum):
    """What the Prefect API says about the lease holder's flow run."""

    WAITING = "waiting"
    """Paused or suspended (at an approval gate)."""
    NEVER_RESUMED = "never-resumed"
    """Failed by Prefect because its pause expired."""
    TIMED_OUT = "timed-out"
    """Already in the ``Timed out`` state (the flow, or an earlier expiry, recorded it)."""
    RUNNING = "running"
    FINISHED = "finished"
    UNKNOWN = "unknown"
    """Not found, or the API did not answer."""


def classify_run(state_type: str | None, state_name: str | None, message: str | None) -> RunStatus:
    """A Prefect flow run state (its type, e.g. ``PAUSED``, its name and message) as a :class:`RunStatus`.
    Pure. None for the type means the run has no state (or could not be read): unknown."""
    if state_type is None:
        return RunStatus.UNKNOWN
    if state_name == TIMED_OUT_STATE:
        return RunStatus.TIMED_OUT
    if state_type == "PAUSED":
        return RunStatus.WAITING
    if state_type == "FAILED" and NEVER_RESUMED in (message or ""):
        return RunStatus.NEVER_RESUMED
    if state_type in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
        return RunStatus.FINISHED
    return RunStatus.RUNNING


@dataclass(frozen=True)
class ExpiryDecision:
    expire: bool
    reason: str


def approval_deadline(lease: dict[str, Any]) -> datetime | None:
    """The approval deadline a lease records (None: not recorded or unreadable)."""
    text = lease.get("approval_deadline")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def decide_expiry(
    lease: dict[str, Any], run: RunStatus, now: datetime, *, journal_left: bool, local: bool = False
) -> ExpiryDecision:
    """Whether ``lease``'s promotion timed out waiting for approval, and why (either way). ``local``: the
    run has no deployment, so it paused inside a process that may still be alive and record its timeout
    itself; it gets :data:`GRACE` past the deadline even when Prefect already failed it. Pure."""
    deadline = approval_deadline(lease)
    if deadline is None:
        return ExpiryDecision(False, "the lease records no approval deadline")
    if journal_left:
        return ExpiryDecision(False, "a rollback journal is left: the rollback sweep owns this target")
    if run is RunStatus.NEVER_RESUMED:
        if local and now < deadline + GRACE:
            return ExpiryDecision(False, "a local run's process records its own timeout first")
        return ExpiryDecision(True, "Prefect failed the run: it was suspended and never resumed")
    if run is RunStatus.TIMED_OUT:
        return ExpiryDecision(True, "the run is already marked timed out; its lease was left")
    if run is RunStatus.WAITING:
        if now >= deadline + GRACE:
            return ExpiryDecision(
                True, f"still waiting for approval after its deadline ({deadline:%Y-%m-%d %H:%M:%SZ})"
            )
        return ExpiryDecision(False, "waiting for approval; the deadline has not passed")
    return ExpiryDecision(False, f"the run is {run.value}")


@dataclass(frozen=True)
class ExpiryReport:
    """One lease the expiry looked at: expired (audited, released) or left, and why."""

    target: str
    run_id: str
    source: str
    expired: bool
    reason: str
    audit_seq: int | None = None

    def line(self) -> str:
        verb = "timed out (audited, lease released)" if self.expired else "left"
        return (
            f"{self.target}: promotion {self.source} -> {self.target} (flow run {self.run_id}) "
            f"{verb}: {self.reason}"
        )


def timeout_reason(lease: dict[str, Any]) -> str:
    """The words the audit record and the notification use, like the flow's own timeout."""
    hours = lease.get("timeout_hours")
    within = f"within {float(hours):g} h" if isinstance(hours, int | float) else "by its deadline"
    return f"no decision {within}: rejected"


def expire_lease(
    services: PromotionServices, lease: dict[str, Any], why: str, *, actor: str | None = None
) -> ExpiryReport:
    """Release ``lease`` (only while its run still holds it: the release is the claim, so two sweeps never
    both audit), audit ``promotion.timed_out`` and report. Calls the state store and the audit log."""
    target, run_id = str(lease.get("target")), str(lease.get("run_id"))
    source = str(lease.get("source"))
    if not promotion_lock.release(services.state_store(), target, run_id):
        return ExpiryReport(target, run_id, source, False, "the lease was already released")
    record = services.audit_log().append(
        "promotion.timed_out",
        target=f"promotion/{source}->{target}",
        environment=target,
        actor=actor,
        details={
            "run_id": run_id,
            "plan_hash": lease.get("plan_hash", ""),
            "reason": timeout_reason(lease),
            "requested_by": lease.get("requested_by"),
            "approval_deadline": lease.get("approval_deadline"),
            "detected": why,
        },
    )
    return ExpiryReport(target, run_id, source, True, why, audit_seq=record.seq)


def expiry_notification(report: ExpiryReport, lease: dict[str, Any], link: str | None) -> Notification:
    """The channels' message for an expired promotion (same title shape as the flow's own outcomes)."""
    return Notification(
        title=f"Promotion {report.source} → {report.target}: timed-out",
        text=(
            f"{timeout_reason(lease)} (requested by {lease.get('requested_by')}; flow run {report.run_id}). "
            f"Nothing was written; the lease on {report.target} is released."
        ),
        severity=Severity.MEDIUM,
        event=AlertEvent.INFO,
        environment=report.target,
        dedup_key=f"promotion-{report.target}-{str(lease.get('plan_hash', ''))[:16]}",
        link=link,
    )
