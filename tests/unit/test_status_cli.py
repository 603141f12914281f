"""``envsteward status``: read-only (no home, no state key created), exit codes, JSON, 80 columns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsteward.adapters.state_fs import FileStateStore
from envsteward.cli import _common
from envsteward.cli.main import app
from envsteward.status.records import record_drift, record_secrets
from tests.unit.test_status import write_catalog


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVSTEWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVSTEWARD_CATALOG", str(write_catalog(tmp_path / "catalog", "dev-environment")))
    monkeypatch.setenv("COLUMNS", "80")
    _common.console.cache_clear()  # the console (and its width) is made once per process
    _common.err_console.cache_clear()
    yield tmp_path
    _common.console.cache_clear()
    _common.err_console.cache_clear()


def test_status_creates_nothing(env: Path) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output  # unknown is amber: a warning, not red
    assert not (env / "home").exists()


def test_status_exit_codes_and_json_leave_the_state_store_unchanged(env: Path) -> None:
    store = FileStateStore(env / "home" / "state")
    now = datetime.now(UTC)
    store.put(
        "health/dev-environment/api",
        {
            "confirmed": "up",
            "confirmed_since": (now - timedelta(hours=1)).isoformat(),
            "candidate": "up",
            "count": 1,
            "last_checked_at": now.isoformat(),
        },
    )
    record_drift(store, "dev-environment", now, [], None)
    record_secrets(store, "dev-environment", now, [], None)
    before = snapshot(env / "home")
    green = CliRunner().invoke(app, ["status", "--json"])
    assert green.exit_code == 0, green.output
    assert json.loads(green.stdout)["all_green"] is True

    record_drift(store, "dev-environment", now, [("fp", "critical")], None)
    before = snapshot(env / "home")
    red = CliRunner().invoke(app, ["status"])
    assert red.exit_code == 1
    assert "dev-environment" in red.stdout
    assert all(len(line) <= 80 for line in red.stdout.splitlines())
    assert snapshot(env / "home") == before


def test_unknown_environment_is_one_line(env: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--env", "nope"])
    assert result.exit_code == 1
    assert "nope" in result.output
    assert "Traceback" not in result.output
