"""Self-healing: plan which drift items can be written back, decide approvals, and execute heals safely.

* :func:`plan_heals` (pure): items the engine found healable, in a readable and writable source, at or below
  the heal threshold are ``automatic``; above it they ``need approval``; everything else is listed with the
  reason it cannot be healed.
* :func:`decide_approval` (pure): a reviewer's answer to the approval form -> approved and declined actions,
  with reasons (reviewer and comment required; the reviewer must be an approver of the environment when the
  catalog lists approvers, and not the requester).
* :func:`execute_heals`: for the actions of ONE source: re-read the source right before writing, skip an
  action whose live value changed since the scan (or is already the desired one), write, re-read to verify,
  and audit every action (``drift.healed``, ``drift.heal_skipped``, ``drift.heal_failed``).

Heal actions only exist for non-secret items (the engine never marks a secret healable), so their desired
values may appear in audit records and results; live values are compared by keyed fingerprint only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envsteward.catalog.refs import SecretRef
from envsteward.drift import DriftItem, DriftKind
from envsteward.errors import EnvstewardError, is_transient
from envsteward.ports import ConfigSource, Severity
from envsteward.scan.live import Deadline, describe_failure
from envsteward.scan.model import (
    HealAction,
    HealOutcome,
    HealPlan,
    HealResult,
    HealWrite,
    NotHealable,
    SourceState,
    _Frozen,
)
from envsteward.tree import MISSING, parse_path, value_at

if TYPE_CHECKING:
    from envsteward.audit import AuditLog

Fingerprint = Callable[[Any], str]


# ---------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------


def owning_source(key_path: Sequence[str], sources: Sequence[SourceState]) -> SourceState | None:
    """The source whose mount point is the longest prefix of ``key_path`` (None when no source holds it)."""
    best: tuple[int, SourceState] | None = None
    for state in sources:
        parts = parse_path(state.mount_at)
        if tuple(key_path[: len(parts)]) == parts and (best is None or len(parts) > best[0]):
            best = (len(parts), state)
    return best[1] if best else None


def _leaves(value: Any, prefix: tuple[str, ...]) -> list[HealWrite]:
    if isinstance(value, Mapping):
        out: list[HealWrite] = []
        for key, item in value.items():
            out.extend(_leaves(item, (*prefix, str(key))))
        return out
    return [HealWrite(key_path=prefix, value=value)]


def _holds_ref(value: Any) -> bool:
    if isinstance(value, SecretRef):
        return True
    if isinstance(value, Mapping):
        return any(_holds_ref(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_ref(item) for item in value)
    return False


def plan_heals(
    environment: str,
    items: Sequence[DriftItem],
    *,
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    sources: Sequence[SourceState],
    threshold: Severity,
    fingerprint: Fingerprint,
) -> HealPlan:
    """Decide, for every drift item, whether and how it would be healed (nothing is written here).

    ``desired``/``live``: the trees the items were computed from; ``fingerprint``: the keyed HMAC used to
    remember the live value the scan saw. Pure apart from calling ``fingerprint``.
    """
    automatic: list[HealAction] = []
    approval: list[HealAction] = []
    refused: list[NotHealable] = []

    def refuse(item: DriftItem, reason: str) -> None:
        refused.append(NotHealable(path=item.path, reason=reason))

    for item in items:
        if not item.healable or item.key_path is None:
            refuse(item, item.heal_reason or "the drift engine marked it not healable")
            continue
        source = owning_source(item.key_path, sources)
        if source is None:
            refuse(item, "no source of the environment holds this path")
            continue
        if not source.ok:
            refuse(item, f"source {source.name} could not be read")
            continue
        if not source.writable:
            refuse(item, f"source {source.name} is read-only (set writable: true in the catalog to heal)")
            continue
        want = value_at(desired, item.key_path)
        have = value_at(live, item.key_path)
        if want is MISSING:
            refuse(item, "the desired value is absent")
            continue
        if _holds_ref(want):
            refuse(item, "the desired value holds a secret reference")
            continue
        if item.kind == DriftKind.TYPE_CHANGED and (
            isinstance(want, Mapping | list) or isinstance(have, Mapping | list)
        ):
            refuse(item, "a mapping or list replaced by another type needs a person")
            continue
        relative = tuple(item.key_path[len(parse_path(source.mount_at)) :])
        writes = _leaves(want, relative)
        if not writes or any(not write.key_path for write in writes):
            refuse(item, "nothing to write as single keys (an empty mapping, or the source's whole tree)")
            continue
        action = HealAction(
            environment=environment,
            source=source.name,
            path=item.path,
            key_path=relative,
            writes=tuple(writes),
            desired=want,
            desired_fingerprint=fingerprint(want),
            live_fingerprint=None if have is MISSING else fingerprint(have),
            severity=item.severity,
            kind=item.kind,
            item_fingerprint=item.fingerprint,
        )
        (automatic if item.severity.rank <= threshold.rank else approval).append(action)
    return HealPlan(
        threshold=threshold,
        automatic=tuple(automatic),
        needs_approval=tuple(approval),
        not_healable=tuple(refused),
    )


# ---------------------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------------------


class ApprovalDecision(_Frozen):
    """The outcome of a reviewer's answer: which actions may be healed, which not, and why."""

    reviewer: str
    comment: str
    approved: tuple[HealAction, ...] = ()
    declined: tuple[HealAction, ...] = ()
    reasons: dict[str, str] = {}
    """action id -> why it was declined (not selected, reviewer not allowed...)."""
    declined_by_reviewer: tuple[str, ...] = ()
    """Ids a valid reviewer chose not to approve (remembered: not asked again until the drift changes)."""


def decide_approval(
    candidates: Sequence[HealAction],
    *,
    approve_all: bool,
    approve_ids: Sequence[str],
    reviewer: str,
    comment: str,
    approvers: Mapping[str, Sequence[str]],
    requester: str | None,
) -> ApprovalDecision:
    """Apply a reviewer's answer to the candidates. Pure.

    Fail safe: without a reviewer or a comment nothing is approved; a reviewer who is the requester, or who
    is not on the environment's approver list (when the catalog lists approvers), approves nothing there.
    One approval suffices for a heal: it restores the value the catalog (already reviewed) declares.
    """
    reviewer, comment = reviewer.strip(), comment.strip()
    chosen = set(approve_ids)
    approved: list[HealAction] = []
    declined: list[HealAction] = []
    reasons: dict[str, str] = {}
    by_reviewer: list[str] = []
    for action in candidates:
        reason = None
        allowed = list(approvers.get(action.environment, ()))
        if not reviewer or not comment:
            reason = "a reviewer and a comment are required"
        elif requester is not None and reviewer == requester:
            reason = f"{reviewer} requested this scan and cannot approve its heals"
        elif allowed and reviewer not in allowed:
            reason = (
                f"{reviewer} is not an approver of {action.environment} (approvers: {', '.join(allowed)})"
            )
        elif not approve_all and action.id not in chosen:
            reason = f"not approved by {reviewer}"
            by_reviewer.append(action.id)
        if reason is None:
            approved.append(action)
        else:
            declined.append(action)
            reasons[action.id] = reason
    return ApprovalDecision(
        reviewer=reviewer,
        comment=comment,
        approved=tuple(approved),
        declined=tuple(declined),
        reasons=reasons,
        declined_by_reviewer=tuple(by_reviewer),
    )


DECLINED_STATE_KEY = "drift/heal-declined"


def previously_declined(state: Any, candidates: Sequence[HealAction]) -> set[str]:
    """Item fingerprints of candidates a reviewer declined before (``state``: the stored document)."""
    stored = state if isinstance(state, Mapping) else {}
    return {action.item_fingerprint for action in candidates if action.item_fingerprint in stored}


def remember_declined(
    state: Any,
    decision: ApprovalDecision | None,
    candidates: Sequence[HealAction],
    scanned: Sequence[str],
    when: str,
) -> dict[str, Any]:
    """The new declined-heals document: entries of scanned environments whose drift is gone (or changed,
    which changes its fingerprint) are dropped; the reviewer's declines are added. Pure."""
    stored = dict(state) if isinstance(state, Mapping) else {}
    current = {action.item_fingerprint for action in candidates}
    kept = {
        fp: entry
        for fp, entry in stored.items()
        if not (isinstance(entry, Mapping) and entry.get("environment") in scanned and fp not in current)
    }
    if decision is not None:
        chosen = set(decision.declined_by_reviewer)
        for action in decision.declined:
            if action.id in chosen:
                kept[action.item_fingerprint] = {
                    "environment": action.environment,
                    "path": action.path,
                    "by": decision.reviewer,
                    "at": when,
                }
    return kept


# ---------------------------------------------------------------------------------------------------------
# Executing
# ---------------------------------------------------------------------------------------------------------


def execute_heals(
    actions: Sequence[HealAction],
    source: ConfigSource,
    fingerprint: Fingerprint,
    audit: AuditLog | None,
    *,
    approvals: Mapping[str, tuple[str, str]] | None = None,
    deadline: Deadline | None = None,
) -> list[HealOutcome]:
    """Heal ``actions`` (all of one source) and return one outcome per action, in order.

    Re-reads the source right before writing (one read for all actions); an action whose live value is no
    longer the one the scan saw is skipped (someone changed it meanwhile), one already at the desired value
    is skipped as well. Then writes each action's leaves, re-reads once and verifies every written action
    by keyed fingerprint. Every outcome is audited (``drift.healed``, ``drift.heal_skipped``,
    ``drift.heal_failed``) when ``audit`` is given, and every write is announced before it is made
    (``drift.heal_writing``): a process killed between a write and its outcome still leaves the write in
    the audit log; ``approvals`` maps action id -> (reviewer, comment).
    No write is made once ``deadline`` has passed (the action is ``failed``: not written).

    Calls the source's system (read, write, read). Raises TransientError when the first read fails
    transiently (nothing was written: safe to retry); any other failure becomes a ``failed`` outcome.
    """
    approvals = approvals or {}
    deadline = deadline or Deadline.never()
    outcomes: dict[str, HealOutcome] = {}
    try:
        before = source.read()
    except EnvstewardError as exc:
        if is_transient(exc):
            raise
        return [
            _finish(action, HealResult.FAILED, f"cannot re-read the source: {exc}", audit, approvals)
            for action in actions
        ]
    written: list[HealAction] = []
    for action in actions:
        now = value_at(before, action.key_path)
        now_fp = None if now is MISSING else fingerprint(now)
        if now_fp == action.desired_fingerprint:
            outcomes[action.id] = _finish(
                action,
                HealResult.ALREADY_DESIRED,
                "the live value is already the desired one",
                audit,
                approvals,
            )
            continue
        if now_fp != action.live_fingerprint:
            outcomes[action.id] = _finish(
                action,
                HealResult.SKIPPED,
                "the live value changed since the scan; not overwritten (the next scan looks again)",
                audit,
                approvals,
            )
            continue
        try:
            deadline.check(f"writing {action.path}")
            _announce(action, audit, approvals)
            for write in action.writes:
                deadline.check(f"writing {action.path}")
                source.write(write.key_path, write.value)
        except Exception as exc:  # noqa: BLE001 - reported per action; messages are safe (describe_failure)
            outcomes[action.id] = _finish(
                action, HealResult.FAILED, f"write failed: {describe_failure(exc)}", audit, approvals
            )
            continue
        written.append(action)
    if written:
        try:
            after: Mapping[str, Any] | None = source.read()
            problem = ""
        except Exception as exc:  # noqa: BLE001
            after, problem = None, describe_failure(exc)
        for action in written:
            if after is None:
                outcomes[action.id] = _finish(
                    action, HealResult.FAILED, f"written, but cannot verify: {problem}", audit, approvals
                )
                continue
            value = value_at(after, action.key_path)
            if value is not MISSING and fingerprint(value) == action.desired_fingerprint:
                outcomes[action.id] = _finish(
                    action, HealResult.HEALED, "written and verified", audit, approvals
                )
            else:
                outcomes[action.id] = _finish(
                    action,
                    HealResult.FAILED,
                    "written, but the value read back differs from the desired one",
                    audit,
                    approvals,
                )
    return [outcomes[action.id] for action in actions]


_AUDIT_ACTION = {
    HealResult.HEALED: "drift.healed",
    HealResult.ALREADY_DESIRED: "drift.heal_skipped",
    HealResult.SKIPPED: "drift.heal_skipped",
    HealResult.FAILED: "drift.heal_failed",
}


def _details(action: HealAction, approval: tuple[str, str] | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "source": action.source,
        "path": action.path,
        "kind": action.kind.value,
        "severity": action.severity.value,
        "desired": action.desired,
        "live_fingerprint_at_scan": action.live_fingerprint,
        "item_fingerprint": action.item_fingerprint,
    }
    if approval is not None:
        details["approved_by"], details["approval_comment"] = approval
    return details


def _announce(action: HealAction, audit: AuditLog | None, approvals: Mapping[str, tuple[str, str]]) -> None:
    """Audit ``drift.heal_writing`` before the first write of ``action`` (its outcome follows)."""
    if audit is not None:
        audit.append(
            "drift.heal_writing",
            target=f"{action.environment}/{action.source}:{action.path}",
            environment=action.environment,
            details=_details(action, approvals.get(action.id)),
        )


def _finish(
    action: HealAction,
    result: HealResult,
    reason: str,
    audit: AuditLog | None,
    approvals: Mapping[str, tuple[str, str]],
) -> HealOutcome:
    approval = approvals.get(action.id)
    if audit is not None and result in _AUDIT_ACTION:
        details = {**_details(action, approval), "result": result.value, "reason": reason}
        audit.append(
            _AUDIT_ACTION[result],
            target=f"{action.environment}/{action.source}:{action.path}",
            environment=action.environment,
            details=details,
        )
    return HealOutcome.for_action(action, result, reason, approval[0] if approval else None)


def not_approved_outcomes(decision: ApprovalDecision) -> list[HealOutcome]:
    """Outcomes for the declined actions of an approval decision (nothing written)."""
    return [
        HealOutcome.for_action(
            action, HealResult.NOT_APPROVED, decision.reasons.get(action.id, "not approved")
        )
        for action in decision.declined
    ]


def unexecuted_outcomes(actions: Sequence[HealAction], result: HealResult, reason: str) -> list[HealOutcome]:
    """Outcomes for actions that were not executed (``not_approved``, or ``failed`` when their heal task
    failed as a whole)."""
    return [HealOutcome.for_action(a, result, reason) for a in actions]
