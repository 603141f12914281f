"""The backup and prune flows under Prefect: each target a task, one failing target does not stop the
others but fails the run and alerts Slack, the progress artifacts, the result, and no secret anywhere."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
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
