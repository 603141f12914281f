"""Rendering scan results: markdown per environment, table rows, the environment x severity summary, and
the JSON-able result the flow returns and the CLI prints. Everything rendered here is already redacted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from envsteward.drift import DriftItem, DriftReport
from envsteward.ports import JSONValue, Severity
from envsteward.scan.model import EnvironmentScan, HealOutcome, HealResult, ParityScan, ScanStatus

SEVERITIES = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)
_ICON = {ScanStatus.OK: "🟢 ok", ScanStatus.DRIFT: "🟠 drift", ScanStatus.UNKNOWN: "❔ unknown"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: JSONValue, present: bool, limit: int = 60) -> str:
    if not present:
        return "—"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def counts(report: DriftReport) -> dict[str, int]:
    """Items per severity (critical, high, medium, low)."""
    out = {s.value: 0 for s in SEVERITIES}
    for item in report.items:
        out[item.severity.value] = out.get(item.severity.value, 0) + 1
    return out


def _items_table(items: Sequence[DriftItem], heal_notes: dict[str, str] | None = None) -> list[str]:
    lines = [
        "| severity | kind | path | desired | live | origin | heal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    ordered = sorted(items, key=lambda item: (-item.severity.rank, item.path))
    for item in ordered:
        heal = (heal_notes or {}).get(item.path) or ("yes" if item.healable else "no")
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    item.severity.value,
                    item.kind.value,
                    f"`{item.path or '(root)'}`",
                    _value(item.desired, item.desired_type is not None),
                    _value(item.live, item.live_type is not None),
                    item.origin or "",
                    heal,
                )
            )
            + " |"
        )
    return lines


def environment_markdown(scan: EnvironmentScan, outcomes: Sequence[HealOutcome] = ()) -> str:
    """The markdown report of one environment: status, sources, counts, items, ignores, heal plan."""
    report = scan.report
    lines = [f"# Drift: {scan.environment}", "", f"**Status:** {_ICON[scan.status]}"]
    if scan.reason:
        lines.append(f"**Why:** {_cell(scan.reason)}")
    lines += ["", f"Scanned at {scan.scanned_at.isoformat(timespec='seconds')}.", "", "## Sources", ""]
    lines += ["| source | kind | mount | writable | read |", "| --- | --- | --- | --- | --- |"]
    for source in scan.sources:
        read = "ok" if source.ok else f"❌ {source.error}"
        lines.append(
            f"| {source.name} | {source.kind} | `{source.mount_at or '(root)'}` | "
            f"{'yes' if source.writable else 'no'} | {_cell(read)} |"
        )
    summary = counts(report)
    lines += ["", "## Drift", ""]
    if report.items:
        lines.append(
            ", ".join(f"{n} {name}" for name, n in summary.items() if n) + f" ({len(report.items)} in total)"
        )
        lines.append("")
        notes = {
            o.path: f"{o.result.value}: {o.reason}" for o in outcomes if o.environment == scan.environment
        }
        lines += _items_table(report.items, notes)
    else:
        lines.append(
            "No drift." if scan.status is not ScanStatus.UNKNOWN else "No drift in the sources read."
        )
    if report.ignored:
        lines += ["", f"{report.ignored} item(s) hidden by ignore rules."]
    for rule in report.expired_ignores:
        lines += [
            "",
            f"⚠️ Expired ignore `{_cell(rule.path)}` (expired {rule.expires}, reason: {_cell(rule.reason)}): "
            f"no longer hides drift; {rule.matched} item(s) reported.",
        ]
    plan = scan.heal
    if plan.automatic or plan.needs_approval:
        lines += ["", "## Heal plan", "", f"Threshold: {plan.threshold.value} (at or below: automatic)."]
        for action in plan.automatic:
            lines.append(f"- automatic: `{action.path}` ({action.severity.value}) in {action.source}")
        for action in plan.needs_approval:
            lines.append(f"- needs approval: `{action.path}` ({action.severity.value}) in {action.source}")
    if scan.notes:
        lines += ["", "## Notes", ""] + [f"- {_cell(note)}" for note in scan.notes]
    return "\n".join(lines) + "\n"


def parity_markdown(scan: ParityScan) -> str:
    lines = [f"# Parity: {scan.left} ↔ {scan.right}", "", f"**Status:** {_ICON[scan.status]}"]
    if scan.reason:
        lines.append(f"**Why:** {_cell(scan.reason)}")
    lines.append("")
    if scan.report.items:
        lines += _items_table(scan.report.items)
    else:
        lines.append("No parity findings.")
    return "\n".join(lines) + "\n"


def table_rows(scans: Sequence[EnvironmentScan], parities: Sequence[ParityScan] = ()) -> list[dict[str, Any]]:
    """One row per drift item (environment or parity scope first), for a table artifact."""
    rows: list[dict[str, Any]] = []
    scoped: list[tuple[str, DriftReport]] = [(s.environment, s.report) for s in scans]
    scoped += [(p.scope, p.report) for p in parities]
    for scope, report in scoped:
        for item in sorted(report.items, key=lambda i: (-i.severity.rank, i.path)):
            rows.append(
                {
                    "scope": scope,
                    "severity": item.severity.value,
                    "kind": item.kind.value,
                    "path": item.path,
                    "desired": _value(item.desired, item.desired_type is not None, 120),
                    "live": _value(item.live, item.live_type is not None, 120),
                    "origin": item.origin or "",
                    "healable": item.healable,
                    "secret": item.secret,
                }
            )
    return rows


def summary_markdown(
    scans: Sequence[EnvironmentScan],
    parities: Sequence[ParityScan] = (),
    outcomes: Sequence[HealOutcome] = (),
) -> str:
    """Environment x severity counts, with parity pairs, as one markdown table (the summary artifact)."""
    header = "| scope | status | " + " | ".join(s.value for s in SEVERITIES) + " | total |"
    lines = [
        "# Drift summary",
        "",
        header,
        "| --- | --- | " + " | ".join("---" for _ in SEVERITIES) + " | --- |",
    ]
    rows: list[tuple[str, ScanStatus, DriftReport]] = [(s.environment, s.status, s.report) for s in scans]
    rows += [(f"{p.left} ↔ {p.right} (parity)", p.status, p.report) for p in parities]
    for name, status, report in rows:
        c = counts(report)
        lines.append(
            f"| {name} | {_ICON[status]} | "
            + " | ".join(str(c[s.value]) for s in SEVERITIES)
            + f" | {len(report.items)} |"
        )
    unknown = [(s.environment, s.reason) for s in scans if s.status is ScanStatus.UNKNOWN]
    if unknown:
        lines += ["", "Unknown:"] + [f"- {name}: {_cell(reason or '')}" for name, reason in unknown]
    if outcomes:
        by_result: dict[str, int] = {}
        for outcome in outcomes:
            by_result[outcome.result.value] = by_result.get(outcome.result.value, 0) + 1
        lines += ["", "Heal: " + ", ".join(f"{n} {name}" for name, n in sorted(by_result.items()))]
    return "\n".join(lines) + "\n"


def heal_markdown(outcomes: Sequence[HealOutcome]) -> str:
    lines = [
        "# Drift heals",
        "",
        "| environment | source | path | severity | result | reason | approved by |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for o in outcomes:
        lines.append(
            f"| {o.environment} | {o.source} | `{_cell(o.path)}` | {o.severity.value} | {o.result.value} | "
            f"{_cell(o.reason)} | {o.approved_by or ''} |"
        )
    if not outcomes:
        lines.append("| | | | | nothing healed | | |")
    return "\n".join(lines) + "\n"


def healed_fingerprints(outcomes: Sequence[HealOutcome]) -> set[str]:
    """Item fingerprints whose drift is gone after this run's heals (healed, or already desired)."""
    return {
        o.item_fingerprint for o in outcomes if o.result in (HealResult.HEALED, HealResult.ALREADY_DESIRED)
    }


def open_items(report: DriftReport, outcomes: Sequence[HealOutcome]) -> list[DriftItem]:
    """The items still open after this run's heals."""
    gone = healed_fingerprints(outcomes)
    return [item for item in report.items if item.fingerprint not in gone]


def exceeds(
    scans: Sequence[EnvironmentScan],
    parities: Sequence[ParityScan],
    outcomes: Sequence[HealOutcome],
    fail_on: Severity | str | None,
) -> list[str]:
    """Scopes with open drift at or above ``fail_on`` (None: any drift), as ``"scope (2 high, 1 critical)"``.
    An unknown severity name counts as the lowest: any drift (fail safe)."""
    threshold = (
        Severity.INFO
        if fail_on is None
        else (fail_on if isinstance(fail_on, Severity) else Severity.parse_threshold(fail_on))
    )
    found = []
    scoped = [(s.environment, open_items(s.report, outcomes)) for s in scans]
    scoped += [(p.scope, list(p.report.items)) for p in parities]
    for scope, items in scoped:
        hits = [item for item in items if item.severity.rank >= threshold.rank]
        if hits:
            per: dict[str, int] = {}
            for item in hits:
                per[item.severity.value] = per.get(item.severity.value, 0) + 1
            found.append(f"{scope} ({', '.join(f'{n} {s}' for s, n in per.items())})")
    return found


def scan_result(
    scans: Sequence[EnvironmentScan],
    parities: Sequence[ParityScan],
    outcomes: Sequence[HealOutcome] = (),
    *,
    heal_enabled: bool = False,
    fail_on: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-able result of a scan (no secret values: reports are redacted, heal actions non-secret)."""
    statuses = {s.status for s in scans} | {p.status for p in parities}
    if ScanStatus.UNKNOWN in statuses:
        overall = ScanStatus.UNKNOWN
    elif ScanStatus.DRIFT in statuses:
        overall = ScanStatus.DRIFT
    else:
        overall = ScanStatus.OK
    result: dict[str, Any] = {
        "status": overall.value,
        "environments": {s.environment: s.to_dict() for s in scans},
        "parity": {p.scope: p.to_dict() for p in parities},
        "summary": {
            **{s.environment: {"status": s.status.value, **counts(s.report)} for s in scans},
            **{p.scope: {"status": p.status.value, **counts(p.report)} for p in parities},
        },
        "heal": {
            "enabled": heal_enabled,
            "outcomes": [o.model_dump(mode="json") for o in outcomes],
        },
        "fail_on": fail_on,
        "over_threshold": exceeds(scans, parities, outcomes, fail_on),
    }
    if extra:
        result.update(extra)
    return result
