"""Drill reports: the markdown artifact, the verification table, and an SVG chart of RTO/RPO over drills.

Pure functions over :class:`~envsteward.drill.model.DrillRecord` values. The chart is hand-written SVG (no
plotting library): two panels, RTO and RPO in minutes, one point per drill (oldest left), the target as a
dashed line, points above their target in red, failed drills (nothing measured) as a grey cross. The
markdown embeds it as a ``data:image/svg+xml;base64`` image so it travels inside one artifact.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from typing import Any

from envsteward.drill.model import PHASE_ORDER, DrillRecord, DrillStatus, TargetCheck

STATUS_TEXT = {
    DrillStatus.PASSED: "PASSED",
    DrillStatus.TARGET_MISSED: "TARGET MISSED",
    DrillStatus.FAILED: "FAILED",
    DrillStatus.ABANDONED: "ABANDONED",
}
CHART_DRILLS = 12
"""How many recent drills the chart shows."""


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.2f} min"


def _target_cell(check: TargetCheck | None) -> str:
    if check is None or check.met is None:
        return "not measured"
    return "met" if check.met else "**MISSED**"


def _md(text: str) -> str:
    """Escape what would break a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(record: DrillRecord, history: Sequence[DrillRecord] = ()) -> str:
    """The drill's markdown artifact: verdict, what was restored, each phase's time, targets, verification
    summary and the RTO/RPO chart over ``history`` (which may include ``record``)."""
    lines = [
        f"# DR drill {record.environment}/{record.target or '?'}: {STATUS_TEXT[record.status]}",
        "",
        f"- drill: `{record.drill_id}`",
        f"- backup: `{record.backup_id or '-'}` ({_md(record.choice_reason) or 'none chosen'}; "
        f"requested `{record.requested}`)",
        f"- restored from: {record.region} region, `{record.store or '-'}`",
        f"- scratch target: `{record.scratch or '-'}` ({_scratch_state(record)})",
        f"- started {record.started_at.isoformat()}, finished {record.finished_at.isoformat()}",
    ]
    if record.error:
        lines.append(f"- failed in **{record.failed_phase or '?'}**: {_md(record.error)}")
    if record.marked_verified:
        lines.append("- the backup is now marked verified-by-drill (retention keeps it)")
    lines += ["", "## Targets", "", "| measure | measured | target | result |", "|---|---|---|---|"]
    for check in (record.rto, record.rpo):
        if check is not None:
            lines.append(
                f"| {check.name} | {_minutes(check.measured_seconds)} | {_minutes(check.target_seconds)} "
                f"| {_target_cell(check)} |"
            )
    if record.method == "pitr":
        replayed = record.recovered_to.isoformat() if record.recovered_to else "-"
        lines.append(
            f"\nPoint-in-time recovery: base backup `{record.backup_id or '-'}` plus every WAL file "
            f"archived in the {record.region} region, replayed into a scratch cluster. RPO is drill start "
            f"minus the last replayed commit ({replayed}): the data a loss of the primary at drill start "
            "would lose. RTO runs from drill start to the cluster answering the smoke queries."
        )
    elif record.restore_point_age_seconds is not None:
        lines.append(
            f"\nRPO is the age of the newest backup in the drilled region at drill start "
            f"(`{record.newest_backup_id or '-'}`); the restored backup was "
            f"{_minutes(record.restore_point_age_seconds)} old. RTO runs from drill start to verified ready."
        )
    lines += ["", "## Phases", "", "| phase | seconds | result | detail |", "|---|---:|---|---|"]
    timings = {phase.name: phase for phase in record.phases}
    for name in PHASE_ORDER:
        phase = timings.get(name)
        if phase is None:
            lines.append(f"| {name.value} | - | not run | |")
        else:
            lines.append(
                f"| {name.value} | {phase.seconds:.3f} | {phase.result.value} | {_md(phase.detail)} |"
            )
    if record.verifications:
        failed = [row for row in record.verifications if not row.ok]
        lines += [
            "",
            "## Verification",
            "",
            f"{len(record.verifications) - len(failed)} of {len(record.verifications)} check(s) passed "
            "(full list: the drill's table artifact).",
        ]
        if failed:
            lines += ["", "| check | expected | found |", "|---|---|---|"]
            lines += [
                f"| {row.kind} {_md(row.name)} | {_md(row.expected)} | {_md(row.actual)} |"
                for row in failed[:20]
            ]
    if record.notes:
        lines += ["", "## Notes", ""] + [f"- {_md(note)}" for note in record.notes]
    chart_records = list(history) or [record]
    if not any(item.drill_id == record.drill_id for item in chart_records):
        chart_records.append(record)
    svg = render_svg(chart_records[-CHART_DRILLS:])
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    lines += [
        "",
        "## RTO and RPO over recent drills",
        "",
        f"![RTO and RPO](data:image/svg+xml;base64,{encoded})",
    ]
    return "\n".join(lines) + "\n"


def _scratch_state(record: DrillRecord) -> str:
    if record.scratch_removed is None:
        return "never created"
    return "removed" if record.scratch_removed else "**NOT REMOVED: remove it by hand**"


def table_rows(record: DrillRecord) -> list[dict[str, Any]]:
    """One row per verification result (tables, secrets, health checks, smoke queries), for a table
    artifact. Holds names, counts and shortened checksums only."""
    return [
        {
            "kind": row.kind,
            "name": row.name,
            "expected": row.expected,
            "found": row.actual,
            "result": row.result,
        }
        for row in record.verifications
    ]


def history_rows(records: Sequence[DrillRecord]) -> list[dict[str, Any]]:
    """One row per drill, newest first (``envsteward drill history``)."""
    rows = []
    for record in reversed(records):
        rows.append(
            {
                "started": record.started_at.isoformat(timespec="seconds"),
                "drill_id": record.drill_id,
                "target": record.target or "-",
                "method": record.method,
                "region": record.region,
                "backup_id": record.backup_id or "-",
                "status": record.status.value,
                "rto_minutes": None if record.rto_seconds is None else round(record.rto_seconds / 60, 2),
                "rpo_minutes": None if record.rpo_seconds is None else round(record.rpo_seconds / 60, 2),
                "failed_phase": record.failed_phase.value if record.failed_phase else None,
                "error": record.error or "",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------
# SVG chart
# ---------------------------------------------------------------------------------------------------------

_WIDTH = 640
_PANEL_HEIGHT = 150
_MARGIN_LEFT = 56
_MARGIN_RIGHT = 16
_MARGIN_TOP = 28
_GAP = 44
_OK = "#2e7d32"
_MISS = "#c62828"
_FAILED = "#9e9e9e"
_LINE = "#1565c0"


def render_svg(records: Sequence[DrillRecord]) -> str:
    """An SVG chart of RTO and RPO (minutes) per drill, oldest left, with each drill's target."""
    height = _MARGIN_TOP + 2 * _PANEL_HEIGHT + _GAP + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{_WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{_MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">'
        f"DR drills: RTO and RPO against their targets (last {len(records)})</text>",
    ]
    for index, (name, attr) in enumerate((("RTO", "rto"), ("RPO", "rpo"))):
        top = _MARGIN_TOP + index * (_PANEL_HEIGHT + _GAP)
        checks: list[TargetCheck | None] = [getattr(record, attr) for record in records]
        parts.extend(_panel(name, top, records, checks))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(
    name: str, top: float, records: Sequence[DrillRecord], checks: Sequence[TargetCheck | None]
) -> list[str]:
    plot_width = _WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    values = [c.measured_seconds / 60 for c in checks if c is not None and c.measured_seconds is not None]
    targets = [c.target_seconds / 60 for c in checks if c is not None]
    top_value = max([*values, *targets, 1.0]) * 1.15
    bottom = top + _PANEL_HEIGHT

    def y(minutes: float) -> float:
        return bottom - (minutes / top_value) * _PANEL_HEIGHT

    def x(position: int) -> float:
        if len(records) <= 1:
            return _MARGIN_LEFT + plot_width / 2
        return _MARGIN_LEFT + 12 + position * (plot_width - 24) / (len(records) - 1)

    out = [
        f'<text x="{_MARGIN_LEFT}" y="{top - 6:.1f}" font-weight="bold">{name} (minutes)</text>',
        f'<rect x="{_MARGIN_LEFT}" y="{top:.1f}" width="{plot_width}" height="{_PANEL_HEIGHT}" '
        'fill="none" stroke="#bdbdbd"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top_value * fraction
        out.append(
            f'<text x="{_MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.1f}</text>'
        )
    # the target per drill (a step line: a target may change between drills)
    target_points = [(x(i), y(c.target_seconds / 60)) for i, c in enumerate(checks) if c is not None]
    if target_points:
        if len(target_points) == 1:
            ty = target_points[0][1]
            target_points = [(float(_MARGIN_LEFT), ty), (float(_MARGIN_LEFT + plot_width), ty)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in target_points)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{_MISS}" stroke-dasharray="5,4" '
            'stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{_MARGIN_LEFT + plot_width - 4}" y="{target_points[-1][1] - 5:.1f}" text-anchor="end" '
            f'fill="{_MISS}">target</text>'
        )
    measured = [
        (x(i), y(c.measured_seconds / 60))
        for i, c in enumerate(checks)
        if c is not None and c.measured_seconds is not None
    ]
    if len(measured) > 1:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in measured)
        out.append(f'<polyline points="{path}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>')
    for i, (record, check) in enumerate(zip(records, checks, strict=True)):
        cx = x(i)
        label = escape(f"{record.drill_id}: {record.status.value}")
        out.append(
            f'<text x="{cx:.1f}" y="{bottom + 14:.1f}" text-anchor="middle" fill="#616161">'
            f"{record.started_at:%m-%d}</text>"
        )
        if check is None or check.measured_seconds is None:
            out.append(
                f'<g stroke="{_FAILED}" stroke-width="2"><title>{label}</title>'
                f'<line x1="{cx - 4:.1f}" y1="{bottom - 8:.1f}" x2="{cx + 4:.1f}" y2="{bottom:.1f}"/>'
                f'<line x1="{cx - 4:.1f}" y1="{bottom:.1f}" x2="{cx + 4:.1f}" y2="{bottom - 8:.1f}"/></g>'
            )
            continue
        colour = _OK if check.met else _MISS
        out.append(
            f'<circle cx="{cx:.1f}" cy="{y(check.measured_seconds / 60):.1f}" r="4" fill="{colour}">'
            f"<title>{label}, {check.measured_seconds / 60:.2f} min</title></circle>"
        )
    return out
