"""The rotation plan and the approval request as Markdown (no values: references, steps, names)."""

from __future__ import annotations

from envsteward.promotion.approval import ApprovalState
from envsteward.rotation.model import RotationPlan


def plan_markdown(plan: RotationPlan, *, dry_run: bool) -> str:
    """The plan, step by step."""
    lines = [
        f"# Rotate `{plan.reference}` in {plan.environment}"
        + (" (dry run: nothing changed)" if dry_run else ""),
        "",
        f"* rotator: `{plan.kind}`; new value: {plan.generated}",
        f"* used at: {', '.join(plan.used_at) or '-'}",
        f"* approval: {plan.approval_reason}",
        "",
        "| step | what it does |",
        "|---|---|",
    ]
    lines += [f"| {step.value} | {text} |" for step, text in plan.steps]
    return "\n".join(lines) + "\n"


def approval_description(plan: RotationPlan, state: ApprovalState, requester: str, reason: str) -> str:
    """What the Resume form shows the approvers."""
    approvers = ", ".join(plan.approval.approvers) if plan.approval else "-"
    parts = [
        f"Rotate the secret `{plan.reference}` in **{plan.environment}** (requested by {requester}).",
        f"Why: {reason or 'it is due for rotation'}.",
        "",
        plan_markdown(plan, dry_run=False),
        f"Approvals: {len(state.approved_by)} of {state.needed}"
        + (f" ({', '.join(state.approved_by)})" if state.approved_by else "")
        + f"; approvers: {approvers}. The requester cannot approve.",
    ]
    return "\n".join(parts)
