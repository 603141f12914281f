"""Reports: the artifact markdown, the JSON summary and the CLI table."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console

from envsteward.health.report import overall_status, render_markdown, rich_table, summary, table_rows
from envsteward.health.result import CheckResult, CheckStatus
from envsteward.health.tracker import StatusChange

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def r(
    env: str, check: str, status: CheckStatus, detail: str = "", latency: float | None = 10.0
) -> CheckResult:
    return CheckResult(
        environment=env,
        check=check,
        kind="http",
        status=status,
        latency_ms=latency,
        detail=detail,
        checked_at=NOW,
    )


RESULTS = [
    r("staging", "api", CheckStatus.DOWN, "connection refused", None),
    r("production", "api", CheckStatus.UP, "HTTP 200"),
    r("production", "db", CheckStatus.DEGRADED, "latency 1520 ms > 1000 ms", 1520.4),
]


def test_markdown_matrix_has_one_row_per_environment_and_one_column_per_check() -> None:
    text = render_markdown(RESULTS, generated_at=NOW)
    lines = text.splitlines()
    assert lines[0] == "# Health: 🔴 down"
    assert "3 checks at 2025-03-04 05:06:07 UTC: 1 up, 1 degraded, 1 down" in text
    assert "| environment | api | db |" in lines
    assert "| production | 🟢 up | 🟡 degraded |" in lines
    assert "| staging | 🔴 down | · |" in lines  # staging has no db check
    assert "| staging | api | http | 🔴 down | - | connection refused |" in lines
    assert "| production | db | http | 🟡 degraded | 1520 ms | latency 1520 ms > 1000 ms |" in lines


def test_markdown_escapes_table_breaking_details() -> None:
    text = render_markdown([r("dev", "x", CheckStatus.DOWN, "a|b\nc")])
    assert "a\\|b c" in text


def test_markdown_lists_changes() -> None:
    change = StatusChange(
        environment="staging",
        check="api",
        kind="http",
        from_status=CheckStatus.UP,
        to_status=CheckStatus.DOWN,
        count=2,
        result=RESULTS[0],
    )
    text = render_markdown(RESULTS, [change])
    assert "staging/api is down (was up) after 2 consecutive result(s): connection refused" in text


def test_markdown_without_checks_says_so() -> None:
    assert "No health checks" in render_markdown([])


def test_overall_status() -> None:
    assert overall_status([]) is CheckStatus.UP
    assert overall_status(RESULTS[1:]) is CheckStatus.DEGRADED
    assert overall_status(RESULTS) is CheckStatus.DOWN


def test_summary_is_json_and_complete() -> None:
    data = json.loads(json.dumps(summary(RESULTS)))
    assert data["status"] == "down"
    assert data["counts"] == {"up": 1, "degraded": 1, "down": 1}
    assert data["environments"]["production"]["db"]["latency_ms"] == 1520.4
    assert data["environments"]["staging"]["api"]["detail"] == "connection refused"
    assert data["changes"] == []


def test_table_rows_are_sorted() -> None:
    rows = table_rows(RESULTS)
    assert [(row["environment"], row["check"]) for row in rows] == [
        ("production", "api"),
        ("production", "db"),
        ("staging", "api"),
    ]


def test_rich_table_renders_every_check() -> None:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(rich_table(RESULTS))
    text = out.getvalue()
    assert "connection refused" in text
    assert "1520 ms" in text
    assert "degraded" in text
