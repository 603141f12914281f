"""The backup and prune flows under Prefect: each target a task, one failing target does not stop the
others but fails the run and alerts Slack, the progress artifacts, the result, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.services import Services, set_services
from envsteward.settings import Settings, SlackSettings
from tests.fixtures.backups import seed_config_backups
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin

pytestmark = pytest.mark.usefixtures("prefect_harness")

SEEDED_SECRET = "s3ed3d-backup-flow-row-value-51ac"
SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_BACKUP_SLACK_TOKEN"
CHANNEL = "#envsteward-backups"


def write_catalog(folder: Path, backups: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = {
        "platform": "backupflow",
        "channels": [{"name": "ops-slack", "kind": "slack", "channel": CHANNEL}],
    }
    (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
    envs = [{"name": "dev", "tier": "development", "notify": ["ops-slack"], "backups": backups}]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return folder


@pytest.fixture
def use_catalog(
    tmp_path: Path, slack_standin: SlackStandin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[list[dict[str, Any]]], Services]]:
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)

    def use(backups: list[dict[str, Any]]) -> Services:
        settings = Settings(
            catalog=write_catalog(tmp_path / "catalog", backups),
            home=tmp_path / "home",
            actor="backup-flow-test",
            slack=SlackSettings(base_url=slack_standin.url, token_env=SLACK_TOKEN_ENV),
        )
        services = Services(settings)
        set_services(services)
        return services

    yield use
    set_services(None)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, ?)", (SEEDED_SECRET,))
    conn.close()
    return path


def latest_artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifacts, f"no artifact with key {key}"
    return artifacts[0]


def test_backup_flow_backs_up_replicates_and_reports(
    use_catalog: Callable[..., Services], sqlite_db: Path, slack_standin: SlackStandin
) -> None:
    from envsteward.flows.backup_environment import backup_environment

    services = use_catalog(
        [
            {"name": "app-db", "kind": "sqlite", "path": str(sqlite_db), "replica_region": "eu-central-1"},
            {"name": "cfg", "kind": "config"},
        ]
    )
    state = backup_environment(environment="dev", return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["ok"] is True
    assert summary["targets"] == 2
    entries = {entry["target"]: entry for entry in summary["results"]}
    assert entries["app-db"]["status"] == "ok"
    assert entries["app-db"]["backup_id"].startswith("dev/app-db/")
    assert entries["app-db"]["sizes"]["stored"] > 0
    assert entries["app-db"]["duration_seconds"] >= 0
    assert entries["app-db"]["replica_status"] == "ok"
    assert entries["app-db"]["replication_lag_seconds"] >= 0
    assert entries["cfg"]["replica_status"] == "not-requested"
    assert slack_standin.messages() == []

    overall = latest_artifact("backup-environment-progress")
    assert overall.type == "progress"
    assert float(overall.data) == 100.0
    per_target = latest_artifact("backup-progress-dev-app-db")
    assert float(per_target.data) == 100.0
    table = latest_artifact("backup-run")
    assert entries["app-db"]["backup_id"] in str(table.data)

    home = services.settings.home
    assert (home / "objects-dr" / entries["app-db"]["backup_id"] / "manifest.json").exists()
    actions = [record.action for record in services.audit_log().records()]
    assert actions.count("backup.completed") == 2
    assert actions.count("backup.replicated") == 1
    blob = json.dumps(summary) + str(table.data) + (home / "audit" / "audit.jsonl").read_text("utf-8")
    assert SEEDED_SECRET not in blob
    assert (
        SEEDED_SECRET.encode()
        not in (home / "objects" / entries["app-db"]["backup_id"] / "data.bin").read_bytes()
    )


def test_a_failing_target_does_not_stop_the_others_fails_the_run_and_alerts(
    use_catalog: Callable[..., Services], sqlite_db: Path, slack_standin: SlackStandin, tmp_path: Path
) -> None:
    from envsteward.flows.backup_environment import backup_environment

    services = use_catalog(
        [
            {"name": "missing-db", "kind": "sqlite", "path": str(tmp_path / "nope.db")},
            {"name": "app-db", "kind": "sqlite", "path": str(sqlite_db), "replica_region": "eu-central-1"},
        ]
    )
    state = backup_environment(return_state=True)
    assert state.is_failed()
    assert "missing-db" in (state.message or "")
    summary = state.result(raise_on_failure=False)
    assert summary["ok"] is False
    entries = {entry["target"]: entry for entry in summary["results"]}
    assert entries["missing-db"]["status"] == "failed"
    assert entries["missing-db"]["backup_id"] is None
    assert "nope.db" in entries["missing-db"]["error"]
    assert entries["app-db"]["status"] == "ok"
    assert entries["app-db"]["replica_status"] == "ok"

    messages = slack_standin.messages()
    assert len(messages) == 1
    assert messages[0]["channel"] == CHANNEL
    assert "Backups failed in dev: 1 of 2" in json.dumps(messages[0])
    assert "missing-db" in json.dumps(messages[0])
    assert SEEDED_SECRET not in json.dumps(messages)
    actions = [record.action for record in services.audit_log().records()]
    assert "backup.failed" in actions
    assert "backup.completed" in actions


def test_unknown_environment_fails_the_flow_clearly(use_catalog: Callable[..., Services]) -> None:
    from envsteward.flows.backup_environment import backup_environment

    use_catalog([{"name": "cfg", "kind": "config"}])
    state = backup_environment(environment="prod", return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="unknown environment 'prod'"):
        state.result()


def seed(home: Path, count: int) -> list[str]:
    return seed_config_backups(home, count, minute=15)


def test_prune_flow_plans_publishes_then_removes(use_catalog: Callable[..., Services]) -> None:
    from envsteward.flows.prune_backups import prune_backups

    services = use_catalog([{"name": "cfg", "kind": "config"}])
    home = services.settings.home
    ids = seed(home, 4)  # one day: the default policy keeps the newest and the oldest

    dry = prune_backups(dry_run=True, return_state=True)
    assert dry.is_completed()
    summary = dry.result()
    assert summary["dry_run"] is True
    assert summary["plan"]["remove"] == 2
    assert all((home / "objects" / backup_id / "manifest.json").exists() for backup_id in ids)
    plan = str(latest_artifact("prune-plan").data)
    assert "dry run" in plan
    assert f"REMOVE {ids[1]}  (primary, dr)" in plan

    state = prune_backups(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()["result"]
    assert sorted(result["removed"]) == sorted(ids[1:3])
    for backup_id in ids[1:3]:
        for region in ("objects", "objects-dr"):
            assert not (home / region / backup_id).exists()
    for backup_id in (ids[0], ids[3]):
        assert (home / "objects" / backup_id / "manifest.json").exists()
    pruned = [r.target for r in services.audit_log().records() if r.action == "backup.pruned"]
    assert sorted(pruned) == sorted(ids[1:3])


def age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_prune_flow_removes_old_leftovers_of_interrupted_backups(
    use_catalog: Callable[..., Services],
) -> None:
    from envsteward.flows.prune_backups import prune_backups

    from envsteward.backup import new_backup_id

    services = use_catalog([{"name": "cfg", "kind": "config"}])
    home = services.settings.home
    (kept_id,) = seed(home, 1)
    # a killed upload (temp file) and a killed verify (data without manifest), both 8 h old
    folder = home / "objects" / kept_id
    old_temp = folder.parent / f".data.bin.{'ab' * 8}.tmp"
    old_temp.write_bytes(b"\0" * 1000)
    age(old_temp, 8)
    orphan_id = new_backup_id("dev", "cfg", now=datetime.now(UTC) - timedelta(hours=8))
    orphan = home / "objects-dr" / orphan_id / "data.bin"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes((folder / "data.bin").read_bytes())
    age(orphan, 8)
    # a write still in progress (1 h old): may belong to a running backup, so it stays
    young_temp = folder.parent / f".data.bin.{'cd' * 8}.tmp"
    young_temp.write_bytes(b"\0" * 10)
    age(young_temp, 1)

    dry = prune_backups(dry_run=True, return_state=True)
    assert dry.is_completed(), dry.message
    found = dry.result()["leftovers"]["found"]
    assert sorted((item["region"], item["kind"], item["removable"]) for item in found) == [
        ("dr", "no-manifest", True),
        ("primary", "upload", False),
        ("primary", "upload", True),
    ]
    assert dry.result()["leftovers"]["cleanup"] is None
    assert old_temp.exists()
    assert orphan.exists()

    state = prune_backups(return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["ok"] is True
    removed = summary["leftovers"]["cleanup"]["removed"]
    assert sorted(item["region"] for item in removed) == ["dr", "primary"]
    assert not old_temp.exists()
    assert not orphan.exists()
    assert young_temp.exists()
    assert (home / "objects" / kept_id / "manifest.json").exists()  # complete backups are not leftovers
    assert "2 leftover(s) removed" in (state.message or "")


def test_backup_flow_logs_a_warning_until_the_local_key_is_exported(
    use_catalog: Callable[..., Services], caplog: pytest.LogCaptureFixture
) -> None:
    from envsteward.flows.backup_environment import backup_environment

    from envsteward.adapters.local_keys import LocalKeyProvider, record_export

    services = use_catalog([{"name": "cfg", "kind": "config"}])
    key_file = services.settings.home / "keys" / "backup.key"
    with caplog.at_level(logging.WARNING):
        assert backup_environment(environment="dev", return_state=True).is_completed()
    warnings = [
        r.getMessage() for r in caplog.records if "only copy of the local backup key" in r.getMessage()
    ]
    assert len(warnings) == 1, caplog.text
    assert "backup key export" in warnings[0]
    assert key_file.read_text().strip() not in caplog.text

    record_export(key_file, LocalKeyProvider(key_file, create=False).key_id)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert backup_environment(environment="dev", return_state=True).is_completed()
    assert "only copy of the local backup key" not in caplog.text
