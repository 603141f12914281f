"""A promotion plan as people read it: a markdown diff for the approval form, artifacts and Slack.

Plans hold no secret value, so nothing here can leak one; secrets appear as their reference and whether
the target's store holds it. Long values are shortened. Text that comes from people or the catalog (names,
reasons, paths, rule messages) is escaped, so it cannot inject markdown, HTML or links into the form.
"""

from __future__ import annotations

import json
import re
from typing import Any

from envsteward.promotion.approval import ApprovalState
from envsteward.promotion.model import ApplyReport, PromotionPlan

MAX_VALUE_CHARS = 120
MAX_ROWS = 200
MAX_LINE_CHARS = 56
"""The widest line of the diff block: the Resume form's modal shows about 60 monospace characters."""


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text.replace("|", "\\|").replace("`", "'")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md(text: str) -> str:
    """``text`` as literal markdown on one line (no emphasis, links, HTML, table breaks)."""
    html_safe = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", html_safe).replace("\r", " ").replace("\n", " ")


def code(text: str) -> str:
    """``text`` as an inline code span on one line (backticks replaced: they would end the span)."""
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _cell(text: str) -> str:
    return md(text)


def _wrapped(prefix: str, text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    """``text`` after ``prefix``, cut into lines of at most ``width`` characters (continuations indented
    under the first), so no line of the form is cut off at the modal's width."""
    room = max(8, width - len(prefix))
    chunks = [text[start : start + room] for start in range(0, len(text), room)] or [""]
    return [prefix + chunks[0]] + [" " * len(prefix) + chunk for chunk in chunks[1:]]


def render_diff(plan: PromotionPlan) -> str:
    """The changes as a diff block: each path on its own line, then where it is written, then ``-`` the
    target's value now and ``+`` what it would get, every line at most :data:`MAX_LINE_CHARS` wide."""
    lines: list[str] = []
    for change in plan.changes[:MAX_ROWS]:
        if lines:
            lines.append("")
        lines.extend(_wrapped("@@ ", change.path.replace("`", "'")))
        lines.extend(_wrapped("   ", f"{change.kind} in {change.target_source}".replace("`", "'")))
        if change.kind == "update":
            lines.extend(_wrapped("- ", _show(change.before)))
        lines.extend(_wrapped("+ ", _show(change.after)))
    if len(plan.changes) > MAX_ROWS:
        lines.append(f"... and {len(plan.changes) - MAX_ROWS} more (see the full plan)")
    return "```diff\n" + "\n".join(lines or ["(no changes)"]) + "\n```"


def plan_title(plan: PromotionPlan, *, dry_run: bool = False) -> str:
    """``Promotion a → b`` (``Dry run: promotion a → b``), plain text."""
    return f"{'Dry run: promotion' if dry_run else 'Promotion'} {plan.source} → {plan.target}"


def render_plan_markdown(plan: PromotionPlan, *, dry_run: bool = False) -> str:
    """The whole plan: route, approvals, blockers, the diff, secret checks, policy result, skipped keys."""
    parts = [f"### {md(plan_title(plan, dry_run=dry_run))}", ""]
    parts.append(
        f"**{len(plan.changes)}** change(s), **{len(plan.skipped)}** skipped, "
        f"**{len(plan.secret_checks)}** secret reference(s) checked"
        + (f"; select: {code(', '.join(plan.select))}" if plan.select else "")
    )
    if plan.approvals_needed:
        parts.append(
            f"Needs **{plan.approvals_needed}** approval(s) from distinct approvers "
            f"({md(', '.join(plan.approvers))}); the requester cannot approve. "
            f"Unanswered after {plan.timeout_hours:g} h it is rejected."
        )
    parts.append(f"Plan hash: `{plan.plan_hash[:16]}`")
    parts.append("")
    if plan.blockers:
        parts.append("**Blocked:**")
        parts.extend(f"- {_cell(text)}" for text in plan.blockers)
        parts.append("")
    parts.append("#### Changes")
    parts.append(render_diff(plan))
    if plan.secret_checks:
        parts += [
            "",
            "#### Secrets (promoted by reference, never by value)",
            "",
            "| Path | Reference | Status |",
        ]
        parts.append("| --- | --- | --- |")
        for check in plan.secret_checks:
            status = "present" if check.exists else "**missing**"
            parts.append(
                f"| {code(check.path)} | {code(check.reference or '-')} | {status}: {_cell(check.detail)} |"
            )
    parts += ["", "#### Tier rules on the configuration after the plan", ""]
    blocking = [v for v in plan.violations if v.blocking]
    elsewhere = [v for v in plan.violations if not v.blocking]
    if blocking:
        parts += ["Broken at keys this promotion writes (blocking):", ""]
        parts += ["| Rule | Path | Origin | Problem |", "| --- | --- | --- | --- |"]
        for v in blocking:
            parts.append(
                f"| {md(v.rule_id)} ({md(v.severity)}) | {code(v.path)} | {md(v.origin or '-')} "
                f"| {_cell(v.message)} |"
            )
    elif not elsewhere:
        parts.append("All rules pass.")
    else:
        parts.append("No rule is broken at a key this promotion writes.")
    if elsewhere:
        parts += ["", f"**Warnings**: broken elsewhere in {md(plan.target)} (not touched, not blocking):", ""]
        parts += ["| Rule | Path | Problem | Drift |", "| --- | --- | --- | --- |"]
        for v in elsewhere:
            parts.append(
                f"| {md(v.rule_id)} ({md(v.severity)}) | {code(v.path)} | {_cell(v.message)} "
                f"| {_cell(v.drift or '-')} |"
            )
    if plan.skipped:
        parts += ["", "#### Not promoted", "", "| Path | Why |", "| --- | --- |"]
        for skipped in plan.skipped[:MAX_ROWS]:
            parts.append(f"| {code(skipped.path)} | {_cell(skipped.reason)} |")
        if len(plan.skipped) > MAX_ROWS:
            parts.append(f"| ... | {len(plan.skipped) - MAX_ROWS} more |")
    return "\n".join(parts) + "\n"


def render_approval_description(
    plan: PromotionPlan,
    state: ApprovalState,
    requester: str,
    reason: str,
    plan_link: str | None = None,
) -> str:
    """The approval form's description: who asks and why, how many approvals are still needed, the answers
    that were refused so far (and why), a link to the full plan artifact, and the plan."""
    head = [
        f"**{md(requester)}** asks to promote **{md(plan.source)} → {md(plan.target)}**"
        + (f": {md(reason)}" if reason else "."),
        "",
        f"Approvals: {len(state.approved_by)} of {state.needed}"
        + (f" (so far: {md(', '.join(state.approved_by))})" if state.approved_by else "")
        + ". Answer with decision `approve` or `reject`, your name as reviewer, and a comment.",
        "",
    ]
    refused = [ruling for ruling in state.rulings if not ruling.accepted]
    if refused:
        head.append("**Refused answers** (they do not count):")
        for ruling in refused:
            who = ruling.answer.reviewer.strip() or "(no name)"
            what = "approval" if ruling.answer.decision == "approve" else "rejection"
            head.append(f"- {md(who)}'s {what} was refused: {md(ruling.reason)}")
        head.append("")
    if plan_link:
        head += [f"[Full plan (artifact)]({link_target(plan_link)})", ""]
    return "\n".join(head) + render_plan_markdown(plan)


def link_target(url: str) -> str:
    """A URL made safe as a markdown link target (no spaces, parentheses or angle brackets)."""
    return "".join(ch if ch.isalnum() or ch in "-._~:/?#@!$&'*+,;=%" else f"%{ord(ch):02X}" for ch in url)


def render_plan_text(plan: PromotionPlan, limit: int = 20) -> str:
    """A short plain-text list of the changes, for a notification."""
    lines = [f"{plan.source} → {plan.target}: {len(plan.changes)} change(s)"]
    for change in plan.changes[:limit]:
        before = f"{_show(change.before)} → " if change.kind == "update" else "(new) "
        lines.append(f"• {change.path}: {before}{_show(change.after)}")
    if len(plan.changes) > limit:
        lines.append(f"… and {len(plan.changes) - limit} more")
    if plan.secret_checks:
        lines.append(f"{len(plan.secret_checks)} secret reference(s) checked in {plan.target}'s store")
    return "\n".join(lines)


def applied_text(report: ApplyReport) -> str:
    """The end of a promotion that applied, verified and is healthy, in one line."""
    return f"{report.written} key(s) written, {report.no_ops} already up to date; verified and healthy."
