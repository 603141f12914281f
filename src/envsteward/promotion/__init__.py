"""Promotions: development -> staging -> production, planned, validated, approved, applied, rolled back.

* :func:`plan_promotion` (pure) — the changes the target would receive, the keys it skips and why, the
  secret-reference checks, the tier-rule result and the plan hash (:mod:`envsteward.promotion.plan`);
* :mod:`envsteward.promotion.approval` (pure) — who may approve, distinct approvers, rejection, timeout;
* :mod:`envsteward.promotion.snapshot` / :mod:`envsteward.promotion.engine` — snapshot, apply (idempotent,
  no-ops reported), verify, rollback and rollback verification through the adapters;
* :mod:`envsteward.promotion.render` — the plan as a readable markdown diff (no secret values);
* :mod:`envsteward.promotion.lock` — one promotion per target at a time;
* :mod:`envsteward.promotion.runbook` — the steps over real systems, for tasks and the CLI.

No Prefect here: ``flows/promote.py`` orchestrates these.
"""

from envsteward.promotion.approval import (
    Answer,
    ApprovalState,
    Ruling,
    Status,
    decide,
    judge,
    start,
    time_out,
)
from envsteward.promotion.engine import (
    ApplyError,
    VerificationError,
    apply_plan,
    rollback,
    verify_plan,
    verify_rollback,
)
from envsteward.promotion.lock import PromotionLockedError, acquire, release
from envsteward.promotion.model import (
    ApplyReport,
    Change,
    PolicyFinding,
    PromotionOutcome,
    PromotionPlan,
    SecretCheck,
    Skipped,
    WriteOutcome,
    WriteStatus,
)
from envsteward.promotion.plan import (
    PromotionRefusedError,
    check_route,
    describe_staleness,
    plan_hash,
    plan_promotion,
)
from envsteward.promotion.render import render_approval_description, render_plan_markdown, render_plan_text
from envsteward.promotion.snapshot import TargetSnapshot, take_snapshot

__all__ = [
    "Answer",
    "ApplyError",
    "ApplyReport",
    "ApprovalState",
    "Change",
    "PolicyFinding",
    "PromotionLockedError",
    "PromotionOutcome",
    "PromotionPlan",
    "PromotionRefusedError",
    "Ruling",
    "SecretCheck",
    "Skipped",
    "Status",
    "TargetSnapshot",
    "VerificationError",
    "WriteOutcome",
    "WriteStatus",
    "acquire",
    "apply_plan",
    "check_route",
    "decide",
    "describe_staleness",
    "judge",
    "plan_hash",
    "plan_promotion",
    "release",
    "render_approval_description",
    "render_plan_markdown",
    "render_plan_text",
    "rollback",
    "start",
    "take_snapshot",
    "time_out",
    "verify_plan",
    "verify_rollback",
]
