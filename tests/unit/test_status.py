"""The platform status core: records and their events, verdicts gathered read-only, escaping, charts."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.state_fs import FileStateStore
from envsteward.services import Services
from envsteward.settings import Settings
from envsteward.status import events as ev
from envsteward.status.charts import chart_markdown, drift_chart, uptime_chart, uptime_share
from envsteward.status.events import StatusEvent, UnsafePayloadError, safe_payload
from envsteward.status.gather import gather_status
from envsteward.status.model import Level
from envsteward.status.records import record_backup_run, record_drift, record_health_point, record_secrets
from envsteward.status.render import md, render_markdown, safe_link

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVIL = "prod<script>alert(1)</script>|[x](javascript:1)"


def write_catalog(folder: Path, name: str = "development") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "t", "channels": []}), encoding="utf-8")
    envs = [
        {
            "name": name,
            "tier": "development",
            "health_checks": [{"kind": "http", "name": "api", "url": "http://127.0.0.1:9/health"}],
        }
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return folder


def services(tmp_path: Path) -> Services:
    return Services(Settings(catalog=write_catalog(tmp_path / "catalog"), home=tmp_path / "home"))


def health_state(store: FileStateStore, status: str, since: datetime) -> None:
    store.put(
        "health/development/api",
        {
            "confirmed": status,
            "confirmed_since": since.isoformat(),
            "candidate": status,
            "count": 2,
            "last_checked_at": (NOW - timedelta(seconds=30)).isoformat(),
        },
    )


def test_drift_events_on_appear_and_clear_only(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    first = record_drift(
        store, "production", NOW, [("a", "critical"), ("b", "low")], "http://ui/runs/flow-run/1"
    )
    assert [(e.name, e.severity) for e in first] == [(ev.DRIFT_DETECTED, "critical")]
    assert first[0].full_payload()["counts"] == {"critical": 1, "high": 0, "medium": 0, "low": 1, "info": 0}
    assert record_drift(store, "production", NOW + timedelta(minutes=5), [("a", "critical")], None) == []
    assert record_drift(store, "production", NOW + timedelta(minutes=6), None, None) == [], (
        "unknown clears nothing"
    )
    doc = store.get("status/drift/production")
    assert isinstance(doc, dict)
    assert doc["items"]["a"]["first_seen"] == NOW.isoformat()
    cleared = record_drift(store, "production", NOW + timedelta(minutes=10), [], None)
    assert [e.name for e in cleared] == [ev.DRIFT_CLEARED]
    assert len(doc["points"]) == 2


def test_history_rings_are_bounded(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    for minute in range(12):
        record_health_point(store, "dev", NOW + timedelta(minutes=minute), {"up": 1}, None, keep=5)
        record_drift(store, "dev", NOW + timedelta(minutes=minute), [], None, keep=4)
    assert len(store.get("status/health/dev")["points"]) == 5  # type: ignore[index]
    assert len(store.get("status/drift/dev")["points"]) == 4  # type: ignore[index]


def test_backup_and_secret_events(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    failed = record_backup_run(store, "prod", "db", NOW, ok=True, replica="failed", backup_id="x", link=None)
    assert [(e.name, e.payload["phase"]) for e in failed] == [(ev.BACKUP_FAILED, "replica")]
    found = record_secrets(
        store, "prod", NOW, [("sec-1", "overdue", "high"), ("sec-2", "plaintext", "critical")], None
    )
    assert [(e.name, e.severity) for e in found] == [(ev.SECRETS_FINDING, "critical")]
    assert record_secrets(store, "prod", NOW, None, None) == []
    assert [e.name for e in record_secrets(store, "prod", NOW, [], None)] == [ev.SECRETS_CLEARED]


@pytest.mark.parametrize(
    "payload",
    [
        {"value": "x"},
        {"check": "hunter2 is the password"},
        {"kinds": ["ok", "has space"]},
        {"counts": {"a": "1"}},
        {"link": "http://x/?token=abc def"},
    ],
)
def test_event_payloads_refuse_values_and_text(payload: dict[str, Any]) -> None:
    with pytest.raises(UnsafePayloadError) as caught:
        safe_payload(payload)
    assert "hunter2" not in str(caught.value)
    assert "abc" not in str(caught.value)


def test_event_resource_names_the_environment() -> None:
    event = StatusEvent(
        name=ev.DRIFT_DETECTED, environment="production", severity="critical", payload={"new": 1}
    )
    assert event.resource()["envsteward.environment"] == "production"
    assert event.resource()["envsteward.severity"] == "critical"
    assert event.related() == [
        {
            "prefect.resource.id": "envsteward.environment.production",
            "prefect.resource.role": "environment",
            "prefect.resource.name": "production",
        }
    ]
    with pytest.raises(UnsafePayloadError):
        StatusEvent(name="envsteward.made.up", environment="production")


def test_gather_is_read_only_and_creates_nothing(tmp_path: Path) -> None:
    svc = services(tmp_path)
    status = gather_status(svc, now=NOW)
    assert not (tmp_path / "home").exists()
    (row,) = status.rows
    assert row.cells["health"].level is Level.UNKNOWN
    assert row.verdict is Level.AMBER


def test_verdicts_follow_the_recorded_state(tmp_path: Path) -> None:
    svc = services(tmp_path)
    store = svc.state_store()
    health_state(store, "up", NOW - timedelta(hours=3))  # type: ignore[arg-type]
    record_drift(store, "development", NOW - timedelta(minutes=20), [], None)
    record_secrets(store, "development", NOW, [], None)
    status = gather_status(svc, now=NOW)
    assert status.rows[0].verdict is Level.GREEN
    assert status.all_green
    assert status.rows[0].cells["health"].text == "up for 3.0h"

    health_state(store, "down", NOW - timedelta(minutes=7))  # type: ignore[arg-type]
    record_drift(store, "development", NOW - timedelta(minutes=1), [("f1", "medium")], None)
    status = gather_status(svc, now=NOW)
    cells = status.rows[0].cells
    assert cells["health"].level is Level.RED
    assert "for 7m" in cells["health"].text
    assert cells["drift"].level is Level.AMBER
    assert status.red == ("development",)

    store.put(
        "promotion-lock:development",
        {
            "run_id": "r-1",
            "source": "x",
            "requested_by": "bob",
            "acquired_at": NOW.isoformat(),
            "expires_at": (NOW + timedelta(hours=1)).isoformat(),
        },
    )
    asked: list[list[str]] = []

    def states(run_ids: Sequence[str]) -> dict[str, str]:
        asked.append(list(run_ids))
        return {"r-1": "SUSPENDED"}

    status = gather_status(svc, now=NOW, run_states=states, run_link=lambda r: f"http://ui/{r}")
    promo = status.rows[0].cells["promotions"]
    assert "awaiting approval" in promo.text
    assert promo.link == "http://ui/r-1"
    assert asked == [["r-1"]], "asked once, with the lease's run"
    unanswered = gather_status(svc, now=NOW, run_states=lambda ids: {})
    assert "requested" in unanswered.rows[0].cells["promotions"].text


def test_markdown_escapes_catalog_text() -> None:
    assert "<script>" not in md(EVIL)
    assert "](" not in md(EVIL)
    assert "|" not in md(EVIL).replace("\\|", "")
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("http://127.0.0.1:4200/runs/flow-run/abc") is not None
    from envsteward.status.model import Cell, EnvironmentStatus, PlatformStatus

    cell = Cell(Level.RED, EVIL, (EVIL,), "javascript:alert(1)")
    row = EnvironmentStatus(
        EVIL,
        "production",
        dict.fromkeys(("health", "drift", "backups", "drill", "secrets", "promotions"), cell),
    )
    text = render_markdown(PlatformStatus(NOW, (row,), (EVIL,)))
    assert "<script>" not in text
    assert "javascript:" not in text.replace("javascript:1", "")
    assert all(line.count(" | ") == 7 for line in text.splitlines() if line.startswith("| **"))


def test_charts_escape_names_and_embed() -> None:
    svg = drift_chart({EVIL: [[NOW.timestamp(), 1, 0, 2, 0, 0], [NOW.timestamp() + 300, 0, 0, 1, 0, 0]]})
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    uptime = uptime_chart({EVIL: [[1, 3, 0, 0], [2, 2, 0, 1]], "empty": []})
    assert "<script>" not in uptime
    assert "50.0%" in uptime
    assert uptime_share([[1, 3, 0, 0], [2, 2, 1, 0]]) == 0.5
    embedded = chart_markdown("t", svg)
    encoded = embedded.split("base64,")[1].rstrip(")\n")
    assert base64.b64decode(encoded).decode() == svg


def test_drift_between_environments_counts_in_both_drift_cells(tmp_path: Path) -> None:
    """A parity finding (here: a secret staging and production share) is open drift of both environments,
    labelled as drift between environments; development, staging's other neighbour, is not touched."""
    from envsteward.status.records import record_parity

    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "t", "channels": []}), encoding="utf-8")
    envs = [
        {"name": "development", "tier": "development", "promotes_to": "staging"},
        {"name": "staging", "tier": "staging", "promotes_to": "production", "approval": {"approvers": ["a"]}},
        {"name": "production", "tier": "production", "approval": {"approvers": ["a", "b"]}},
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    svc = Services(Settings(catalog=folder, home=tmp_path / "home"))
    store = svc.state_store()
    for name in ("development", "staging", "production"):
        record_drift(store, name, NOW - timedelta(minutes=1), [], None)
    record_drift(store, "staging", NOW - timedelta(minutes=1), [("own", "medium")], None)
    record_parity(store, "development", "staging", NOW - timedelta(minutes=1), [], None)
    record_parity(store, "staging", "production", NOW - timedelta(minutes=30), [("reused", "critical")], None)
    record_parity(store, "staging", "production", NOW - timedelta(minutes=1), [("reused", "critical")], None)

    rows = {row.environment: row for row in gather_status(svc, now=NOW).rows}
    development, staging, production = (rows[n].cells["drift"] for n in rows)
    assert (development.level, development.text) == (Level.GREEN, "clean")
    assert staging.level is Level.RED
    assert staging.text == "1 medium; between environments: 1 critical; oldest 30m"
    assert "parity with production: 1 critical" in staging.lines
    assert not any("development" in line for line in staging.lines)
    assert production.level is Level.RED
    assert production.text.startswith("clean; between environments: 1 critical")
    assert "parity with staging: 1 critical" in production.lines
    assert rows["production"].verdict is Level.RED

    record_parity(store, "staging", "production", NOW, None, None)  # a side could not be read
    kept = {row.environment: row for row in gather_status(svc, now=NOW).rows}["production"].cells["drift"]
    assert kept.level is Level.RED, "an unknown comparison clears nothing"
    assert "parity with staging: 1 critical (not compared last scan)" in kept.lines
    record_parity(store, "staging", "production", NOW, [], None)
    cleared = {row.environment: row for row in gather_status(svc, now=NOW).rows}["production"].cells["drift"]
    assert (cleared.level, cleared.text) == (Level.GREEN, "clean")
