"""Abandoned drills, the pure parts: the scratch marker is parsed strictly (anything else is not ours),
the ledger's lifecycle, the sweep threshold is the total of the drill tasks' timeouts, and an abandoned
drill neither raises nor resolves an alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.state_fs import FileStateStore
from envsteward.drill import DrillRecord, DrillStatus, previous_drill
from envsteward.drill.abandoned import MARKER_TAG, DrillLedger, ScratchMarker
from envsteward.drill.limits import DRILL_TIMEOUT_SECONDS, MAX_ATTEMPTS, PHASE_TIMEOUTS, UNRETRIED_TIMEOUTS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "envsteward_drill_prod_ab12cd34"


def marker() -> ScratchMarker:
    return ScratchMarker(NAME, "drill-20260101T000000Z-ab12cd34", "prod", "inst-1", T0, "flow run 7")


def test_a_marker_round_trips() -> None:
    assert ScratchMarker.parse(marker().encode(), NAME) == marker()


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "a database someone named like ours",
        f"{MARKER_TAG}",
        f"{MARKER_TAG} not json",
        f"{MARKER_TAG} []",
        f"{MARKER_TAG} " + json.dumps({"scratch": NAME}),
        "x" + marker().encode(),
        marker().encode().replace(NAME, "envsteward_drill_prod_other"),  # names another database
        marker().encode().replace("+00:00", ""),  # a time without a zone
    ],
)
def test_anything_but_a_marker_of_this_database_is_not_ours(text: str | None) -> None:
    assert ScratchMarker.parse(text, NAME) is None


def test_a_marker_needs_the_scratch_prefix() -> None:
    other = ScratchMarker("mydb", "d", "prod", "inst-1", T0)
    assert ScratchMarker.parse(other.encode(), "mydb") is None


def test_the_ledger_keeps_a_drill_until_it_ends_and_its_scratch_until_it_is_gone(tmp_path: Path) -> None:
    ledger = DrillLedger(FileStateStore(tmp_path), clock=lambda: T0)
    owner = ledger.owner()
    assert ledger.owner() == owner
    ledger.begin("d1", environment="prod")
    ledger.scratch("d1", kind="postgres", name=NAME, location="host=db", target="orders")
    assert ledger.entries()["d1"]["scratch"]["name"] == NAME
    ledger.end("d1", "failed")  # scratch still recorded: the entry stays, marked ended
    assert ledger.entries()["d1"]["ended"]["status"] == "failed"
    ledger.scratch_removed("d1")
    ledger.end("d1", "failed")
    assert ledger.entries() == {}
    ledger.begin("d2", environment="prod")
    recorded = ledger.entries()["d2"]["recorded_at"]
    assert ledger.claim("d2", "another time") is None
    assert ledger.claim("d2", recorded) is not None
    assert ledger.claim("d2", recorded) is None  # once
    assert ledger.claim_name(NAME)
    assert not ledger.claim_name(NAME)


def test_the_threshold_is_every_attempt_of_every_drill_task_timing_out() -> None:
    from envsteward.tasks import drill as tasks

    by_phase = {
        "prepare": tasks.prepare_task,
        "choose": tasks.choose_task,
        "fetch_verify": tasks.fetch_verify_task,
        "restore": tasks.restore_task,
        "verify_data": tasks.verify_data_task,
        "health": tasks.health_task,
        "teardown": tasks.teardown_task,
    }
    assert set(by_phase) == set(PHASE_TIMEOUTS)
    for name, task in by_phase.items():
        assert task.timeout_seconds == PHASE_TIMEOUTS[name], name
        assert task.retries + 1 <= MAX_ATTEMPTS, name
    for name, task in {"start": tasks.start_drill_task, "report": tasks.finish_drill_task}.items():
        assert task.timeout_seconds == UNRETRIED_TIMEOUTS[name], name
        assert task.retries == 0, name
    longest = sum(t.timeout_seconds or 0 for t in by_phase.values()) * MAX_ATTEMPTS
    assert longest < DRILL_TIMEOUT_SECONDS
    assert tasks.ABANDONED_AFTER_SECONDS == DRILL_TIMEOUT_SECONDS
    assert timedelta(seconds=DRILL_TIMEOUT_SECONDS) < timedelta(days=3)


def record(drill_id: str, status: DrillStatus, minutes: int) -> DrillRecord:
    at = T0 + timedelta(minutes=minutes)
    return DrillRecord(drill_id, "prod", "orders", "postgres", "dr", "", "latest", at, at, status)


def test_an_abandoned_drill_is_not_the_previous_drill_for_alerts() -> None:
    history = [
        record("d1", DrillStatus.FAILED, 0),
        record("d2", DrillStatus.ABANDONED, 1),
        record("d3", DrillStatus.PASSED, 2),
    ]
    previous = previous_drill(history, "d3")
    assert previous is not None
    assert previous.drill_id == "d1"
