"""``envsteward drill run`` / ``drill history`` on the embedded default (local folders, local key, a SQLite
target): exit codes 0 / 3 / 1, the report and chart files, history, and a light import for ``--help``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envsteward.backup import data_object_key
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.stores import backup_stores
from envsteward.cli.drill import EXIT_TARGET_MISSED, app
from envsteward.services import Services
from envsteward.settings import Settings

runner = CliRunner()
MARKER = "cli-drill-row-5be1"


def write_catalog(folder: Path, db: Path, drill: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(json.dumps({"platform": "clidrill"}), encoding="utf-8")
    envs = [
        {
            "name": "dev",
            "tier": "development",
            "promotes_to": "other",
            "backups": [
                {"name": "app-db", "kind": "sqlite", "path": str(db), "replica_region": "eu-central-1"}
            ],
            "drill": drill,
        },
        {"name": "other", "tier": "development"},
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVSTEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVSTEWARD_ACTOR", "cli-drill-test")
    monkeypatch.setenv("ENVSTEWARD_CATALOG", str(tmp_path / "catalog"))
    monkeypatch.setenv("COLUMNS", "250")
    for name in list(os.environ):
        if name.startswith(("ENVSTEWARD_STORAGE", "ENVSTEWARD_AWS", "ENVSTEWARD_STATE")):
            monkeypatch.delenv(name)
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, ?)", (MARKER,))
    conn.close()
    write_catalog(tmp_path / "catalog", db, {"rpo_target_minutes": 60})
    return tmp_path


def backed_up() -> str:
    services = Services(Settings())
    result = run_backup_target(services, plan_backups(services.catalog(), "dev")[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    return result.backup.backup_id


def test_run_passes_writes_the_report_and_history_reads_it(workdir: Path) -> None:
    backup_id = backed_up()
    report = workdir / "drill.md"
    result = runner.invoke(app, ["run", "--env", "dev", "--report", str(report), "--no-notify"])
    assert result.exit_code == 0, result.output
    assert "passed" in result.output
    assert backup_id in result.output
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# DR drill dev/app-db: PASSED")
    assert MARKER not in text

    listed = runner.invoke(app, ["history", "--env", "dev", "--json", "--chart", str(workdir / "c.svg")])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["status"] == "passed"
    assert row["backup_id"] == backup_id
    ET.parse(workdir / "c.svg")  # noqa: S314 - our own output
    table = runner.invoke(app, ["history"])
    assert table.exit_code == 0
    assert "passed" in table.output


def test_without_env_every_environment_with_a_drill_section_runs(workdir: Path) -> None:
    backed_up()
    result = runner.invoke(app, ["run", "--json", "--no-notify"])
    assert result.exit_code == 0, result.output
    assert [item["environment"] for item in json.loads(result.output)] == ["dev"]


def test_a_missed_target_exits_3_and_a_failure_exits_1(workdir: Path) -> None:
    write_catalog(workdir / "catalog", workdir / "app.db", {"rpo_target_minutes": 0.0001})
    backup_id = backed_up()
    missed = runner.invoke(app, ["run", "--env", "dev", "--no-notify"])
    assert missed.exit_code == EXIT_TARGET_MISSED, missed.output
    assert "target_missed" in missed.output

    stores = backup_stores(Services(Settings()))
    assert stores.dr is not None
    data = bytearray(stores.dr.get_bytes(data_object_key(backup_id)))
    data[-10] ^= 0x01
    stores.dr.put_bytes(data_object_key(backup_id), bytes(data))
    failed = runner.invoke(app, ["run", "--env", "dev", "--backup", backup_id, "--no-notify"])
    assert failed.exit_code == 1, failed.output
    assert "failed" in failed.output
    assert not list((workdir / "home" / "drill-scratch").glob("*")), "scratch left behind"


def test_bad_input_is_one_clear_line(workdir: Path) -> None:
    result = runner.invoke(app, ["run", "--env", "dev", "--backup", "../x"])
    assert result.exit_code == 1
    assert "give a backup id" in result.output
    unknown = runner.invoke(app, ["history", "--env", "nope"])
    assert unknown.exit_code == 1
    assert "unknown environment 'nope'" in unknown.output


def test_the_cli_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, envsteward.cli.drill; "
        "names = ('envsteward.drill', 'prefect', 'boto3', 'hvac', 'psycopg'); "
        "heavy = [m for m in names if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_killed_drills_scratch_folder_is_swept_and_history_shows_it_abandoned(workdir: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from envsteward.drill.abandoned import DrillLedger

    backed_up()
    home = workdir / "home"
    leftover = home / "drill-scratch" / "envsteward_drill_dev_dead0001"
    leftover.mkdir(parents=True)
    (leftover / "restored.db").write_bytes(b"half a database")
    store = Services(Settings()).state_store()
    long_ago = datetime.now(UTC) - timedelta(days=3)  # past the drill's total timeout (about 68 h)
    ledger = DrillLedger(store, clock=lambda: long_ago)
    ledger.begin(
        "drill-20200101T000000Z-dead0001",
        environment="dev",
        target="app-db",
        run="pid 4242 on gone",
        started_at=long_ago.isoformat(),
    )
    ledger.scratch(
        "drill-20200101T000000Z-dead0001",
        kind="sqlite",
        name=leftover.name,
        location=str(leftover),
        target="app-db",
    )

    ran = runner.invoke(app, ["run", "--env", "dev", "--no-notify"])
    assert ran.exit_code == 0, ran.output
    assert "abandoned" in ran.output
    assert "dead0001" in ran.output
    assert not leftover.exists()

    before = sorted(str(path) for path in home.rglob("*"))
    listed = runner.invoke(app, ["history", "--env", "dev", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["drill_id"]: row for row in json.loads(listed.output)}
    assert rows["drill-20200101T000000Z-dead0001"]["status"] == "abandoned"
    assert "never ended" in rows["drill-20200101T000000Z-dead0001"]["error"]
    assert sorted(row["status"] for row in rows.values()) == ["abandoned", "passed"]
    table = runner.invoke(app, ["history", "--env", "dev"])
    assert table.exit_code == 0
    assert "abandoned" in table.output
    assert sorted(str(path) for path in home.rglob("*")) == before  # read-only: nothing created
    actions = [r.action for r in Services(Settings()).audit_log().records() if r.action == "drill.abandoned"]
    assert actions == ["drill.abandoned"]
