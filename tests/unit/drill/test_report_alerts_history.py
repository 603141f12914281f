"""Drill records: JSON round trip, history in a real state store, the markdown report, the SVG chart,
verification rows, and who is alerted."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.state_fs import FileStateStore
from envsteward.drill import (
    DrillRecord,
    DrillStatus,
    PhaseName,
    PhaseTiming,
    TargetCheck,
    Verification,
    drill_alerts,
    history_rows,
    load_history,
    render_markdown,
    render_svg,
    save_drill,
    table_rows,
)
from envsteward.drill.model import StepResult
from envsteward.errors import IntegrityError
from envsteward.ports import AlertEvent, Severity

T0 = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
KINDS = {"ops-slack": "slack", "ops-email": "email", "oncall": "pagerduty"}
CHANNELS = ["ops-slack", "ops-email", "oncall"]


def record(
    status: DrillStatus = DrillStatus.PASSED,
    *,
    day: int = 0,
    rto: float | None = 400.0,
    rpo: float | None = 120.0,
    drill_id: str | None = None,
) -> DrillRecord:
    start = T0 + timedelta(days=day)
    phases = tuple(
        PhaseTiming(
            name, start + timedelta(seconds=10 * i), start + timedelta(seconds=10 * i + 10), StepResult.OK
        )
        for i, name in enumerate(PhaseName)
    )
    failed = status is DrillStatus.FAILED
    return DrillRecord(
        drill_id=drill_id or f"drill-{day:02d}",
        environment="prod",
        target="orders-db",
        kind="postgres",
        region="dr",
        store="s3://dr-bucket/",
        requested="latest",
        started_at=start,
        finished_at=start + timedelta(minutes=8),
        status=status,
        backup_id="prod/orders-db/20240601T010000Z-aaaa",
        choice_reason="newest backup in the dr store",
        backup_consistent_at=start - timedelta(minutes=2),
        scratch="envsteward_drill_prod_0a1b2c3d",
        scratch_removed=True,
        ready_at=None if rto is None else start + timedelta(seconds=rto),
        rto=TargetCheck("RTO", None if failed else rto, 900.0),
        rpo=TargetCheck("RPO", rpo, 300.0),
        restore_point_age_seconds=rpo,
        phases=phases,
        verifications=(
            Verification("table", "public.customers", "2 rows, abc", "2 rows, abc", ok=True),
            Verification("smoke", "count", ">= 1 row(s)", "0 row(s)", ok=not failed),
        ),
        failed_phase=PhaseName.HEALTH if failed else None,
        error="1 health check(s) / smoke query(ies) failed on the restored target: smoke count"
        if failed
        else None,
    )


def test_records_round_trip_through_json() -> None:
    original = record(DrillStatus.FAILED)
    assert DrillRecord.from_json(original.as_json()) == original
    missed = record(DrillStatus.TARGET_MISSED, rpo=900.0)
    assert DrillRecord.from_json(missed.as_json()).missed_targets == ("RPO",)


def test_history_keeps_records_in_order_idempotently_and_bounded(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    for day in (2, 0, 1):
        save_drill(store, record(day=day))
    save_drill(store, record(day=1))  # a retried save replaces, does not duplicate
    history = load_history(store, "prod")
    assert [item.drill_id for item in history] == ["drill-00", "drill-01", "drill-02"]
    assert history[0].verifications == (), "history keeps summaries; the table artifact holds the rows"
    assert [item.drill_id for item in load_history(store, "prod", limit=2)] == ["drill-01", "drill-02"]
    for day in range(3, 8):
        save_drill(store, record(day=day), keep=4)
    assert [item.drill_id for item in load_history(store, "prod")] == [f"drill-0{d}" for d in range(4, 8)]
    assert load_history(store, "staging") == []
    rows = history_rows(load_history(store, "prod"))
    assert rows[0]["drill_id"] == "drill-07", "newest first"
    assert rows[0]["rto_minutes"] == pytest.approx(6.67, abs=0.01)


def test_a_damaged_history_record_is_reported(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    store.put("drill-history/prod", [{"drill_id": "x"}])
    with pytest.raises(IntegrityError, match="drill-history/prod: record 0"):
        load_history(store, "prod")


def test_markdown_report_has_phases_targets_verdict_and_chart() -> None:
    history = [record(day=d) for d in range(3)] + [record(DrillStatus.FAILED, day=3, rto=None)]
    missed = record(DrillStatus.TARGET_MISSED, day=4, rpo=600.0)
    text = render_markdown(missed, history)
    assert text.startswith("# DR drill prod/orders-db: TARGET MISSED")
    assert "| RPO | 10.00 min | 5.00 min | **MISSED** |" in text
    assert "| RTO | 6.67 min | 15.00 min | met |" in text
    for name in PhaseName:
        assert f"| {name.value} | 10.000 | ok |" in text
    assert "2 of 2 check(s) passed" in text
    match = re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", text)
    assert match is not None
    svg = base64.b64decode(match.group(1)).decode()
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    circles = root.findall(".//{http://www.w3.org/2000/svg}circle")
    # 4 measured drills + the missed one, in two panels; the failed drill has no RTO point
    assert len(circles) == 4 + 5
    assert svg.count("#c62828") >= 3  # two dashed target lines + the missed RPO point


def test_failed_report_names_the_phase_and_lists_failed_checks() -> None:
    failed = record(DrillStatus.FAILED, rto=None)
    text = render_markdown(failed)
    assert "FAILED" in text.splitlines()[0]
    assert "- failed in **health**:" in text
    assert "| smoke count | >= 1 row(s) | 0 row(s) |" in text
    assert "| RTO | - | 15.00 min | not measured |" in text


def test_svg_of_no_drills_and_one_drill_is_valid() -> None:
    ET.fromstring(render_svg([]))  # noqa: S314 - our own output
    one = render_svg([record()])
    ET.fromstring(one)  # noqa: S314 - our own output
    assert "RPO (minutes)" in one


def test_table_rows_show_every_verification() -> None:
    rows = table_rows(record(DrillStatus.FAILED))
    assert rows == [
        {
            "kind": "table",
            "name": "public.customers",
            "expected": "2 rows, abc",
            "found": "2 rows, abc",
            "result": "pass",
        },
        {"kind": "smoke", "name": "count", "expected": ">= 1 row(s)", "found": "0 row(s)", "result": "FAIL"},
    ]


def test_a_failed_drill_alerts_every_channel_including_pagerduty() -> None:
    pairs = drill_alerts(record(DrillStatus.FAILED, rto=None), CHANNELS, KINDS)
    assert [channel for channel, _ in pairs] == CHANNELS
    notification = pairs[0][1]
    assert notification.severity is Severity.CRITICAL
    assert notification.event is AlertEvent.TRIGGER
    assert notification.dedup_key == "envsteward-drill-prod-orders-db"
    assert notification.fields["failed phase"] == "health"


def test_a_missed_target_alerts_chat_and_mail_but_does_not_page() -> None:
    pairs = drill_alerts(record(DrillStatus.TARGET_MISSED, rpo=600.0), CHANNELS, KINDS)
    assert [channel for channel, _ in pairs] == ["ops-slack", "ops-email"]
    assert "missed RPO" in pairs[0][1].text
    assert pairs[0][1].severity is Severity.HIGH


def test_a_pass_is_quiet_unless_it_follows_a_failure() -> None:
    assert drill_alerts(record(), CHANNELS, KINDS) == []
    assert drill_alerts(record(), CHANNELS, KINDS, previous=record(DrillStatus.TARGET_MISSED)) == []
    pairs = drill_alerts(record(), CHANNELS, KINDS, previous=record(DrillStatus.FAILED))
    assert [channel for channel, _ in pairs] == CHANNELS
    assert all(n.event is AlertEvent.RESOLVE for _, n in pairs)
    assert pairs[0][1].dedup_key == "envsteward-drill-prod-orders-db"
