"""Health reports: a markdown matrix (Prefect artifact), a rich table (CLI) and a JSON summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.health.result import CheckResult, CheckStatus

if TYPE_CHECKING:
    from rich.table import Table

    from envsteward.health.tracker import StatusChange

ICONS = {CheckStatus.UP: "🟢", CheckStatus.DEGRADED: "🟡", CheckStatus.DOWN: "🔴"}
_RICH_STYLE = {CheckStatus.UP: "green", CheckStatus.DEGRADED: "yellow", CheckStatus.DOWN: "bold red"}


def overall_status(results: Iterable[CheckResult]) -> CheckStatus:
    """The worst status among ``results`` (``up`` when there are none)."""
    worst = CheckStatus.UP
    for result in results:
        if result.status is CheckStatus.DOWN:
            return CheckStatus.DOWN
        if result.status is CheckStatus.DEGRADED:
            worst = CheckStatus.DEGRADED
    return worst


def _latency(result: CheckResult) -> str:
    return f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-"


def _md(text: str) -> str:
    """Escape what would break a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _ordered(results: Iterable[CheckResult]) -> list[CheckResult]:
    return sorted(results, key=lambda r: (r.environment, r.check))


def render_markdown(
    results: Sequence[CheckResult],
    changes: Sequence[StatusChange] = (),
    generated_at: datetime | None = None,
) -> str:
    """Markdown for the ``health-status`` artifact: an environment-by-check matrix, then every check's
    latency and detail, then the confirmed changes of this run."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    ordered = _ordered(results)
    counts = {status: sum(1 for r in ordered if r.status is status) for status in CheckStatus}
    lines = [
        f"# Health: {ICONS[overall_status(ordered)]} {overall_status(ordered).value}",
        "",
        f"{len(ordered)} checks at {when}: " + ", ".join(f"{counts[s]} {s.value}" for s in CheckStatus),
        "",
    ]
    if not ordered:
        lines.append("_No health checks are defined in the catalog._")
        return "\n".join(lines) + "\n"

    environments = sorted({r.environment for r in ordered})
    checks = sorted({r.check for r in ordered})
    by_cell = {(r.environment, r.check): r for r in ordered}
    lines.append("| environment | " + " | ".join(_md(c) for c in checks) + " |")
    lines.append("|---|" + "---|" * len(checks))
    for env in environments:
        cells = []
        for check in checks:
            cell = by_cell.get((env, check))
            cells.append(f"{ICONS[cell.status]} {cell.status.value}" if cell else "·")
        lines.append(f"| {_md(env)} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "## Checks",
        "",
        "| environment | check | kind | status | latency | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in ordered:
        lines.append(
            f"| {_md(r.environment)} | {_md(r.check)} | {r.kind} | {ICONS[r.status]} {r.status.value} "
            f"| {_latency(r)} | {_md(r.detail)} |"
        )
    if changes:
        lines += ["", "## Confirmed changes in this run", ""]
        lines += [f"- {_md(change.reason)}" for change in changes]
    return "\n".join(lines) + "\n"


def table_rows(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact (and anything else that wants flat records)."""
    return [
        {
            "environment": r.environment,
            "check": r.check,
            "kind": r.kind,
            "status": r.status.value,
            "latency_ms": r.latency_ms,
            "detail": r.detail,
            "checked_at": r.checked_at.isoformat(),
        }
        for r in _ordered(results)
    ]


def rich_table(results: Sequence[CheckResult]) -> Table:
    """A rich table for ``envsteward health``."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Health", show_lines=False)
    for column in ("environment", "check", "kind", "status", "latency", "detail"):
        table.add_column(column, justify="right" if column == "latency" else "left")
    for r in _ordered(results):
        table.add_row(
            r.environment,
            r.check,
            r.kind,
            Text(r.status.value, style=_RICH_STYLE[r.status]),
            _latency(r),
            Text(r.detail),
        )
    return table


def summary(results: Sequence[CheckResult], changes: Sequence[StatusChange] = ()) -> dict[str, Any]:
    """A JSON-ready summary (the flow's return value and ``envsteward health --json``); no secrets."""
    ordered = _ordered(results)
    environments: dict[str, dict[str, Any]] = {}
    for r in ordered:
        environments.setdefault(r.environment, {})[r.check] = {
            "kind": r.kind,
            "status": r.status.value,
            "latency_ms": r.latency_ms,
            "detail": r.detail,
            "checked_at": r.checked_at.isoformat(),
        }
    return {
        "status": overall_status(ordered).value,
        "counts": {s.value: sum(1 for r in ordered if r.status is s) for s in CheckStatus},
        "environments": environments,
        "changes": [
            {
                "environment": c.environment,
                "check": c.check,
                "from": c.from_status.value if c.from_status else None,
                "to": c.to_status.value,
                "count": c.count,
                "detail": c.result.detail,
            }
            for c in changes
        ],
    }
