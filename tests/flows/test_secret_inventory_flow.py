"""The secret-inventory flow under Prefect against OpenBao, moto and files (the example catalog with one
seeded case of each kind): visible tasks per environment, a table artifact per environment, alerts
de-duplicated like drift (appear, change, nothing when unchanged), and no seeded value in any result,
log line, artifact, task run, notification or the state store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from envsteward.services import set_services
from envsteward.settings import AWSSettings, VaultSettings
from tests.fixtures.standins import (
    PAGERDUTY_ROUTING_KEY,
    SLACK_TOKEN,
    PagerDutyStandin,
    SlackStandin,
    SMTPStandin,
)
from tests.integration.test_secret_inventory import (
    LATER,
    PD_KEY_ENV,
    SLACK_TOKEN_ENV,
    InventoryPlatform,
    build_inventory_platform,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def platform(  # noqa: PLR0917 - pytest fixtures arrive as parameters
    tmp_path: Path,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    pagerduty_standin: PagerDutyStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[InventoryPlatform]:
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PD_KEY_ENV, PAGERDUTY_ROUTING_KEY)
    built = build_inventory_platform(
        tmp_path,
        aws_name_prefix,
        vault_settings,
        aws_settings,
        slack_url=slack_standin.url,
        smtp_port=smtp_server.port,
        pagerduty_url=pagerduty_standin.url,
    )
    built.load_example()
    built.create_backup_keys()  # the backup KEKs are inventoried too: the example's must exist
    built.seed_cases()
    set_services(built.services)
    from envsteward.flows import secret_inventory as module

    monkeypatch.setattr(module, "utcnow", lambda: datetime.now(UTC) + LATER)
    yield built
    set_services(None)


def run_flow(**parameters: Any) -> tuple[UUID, Any]:
    from envsteward.flows.secret_inventory import secret_inventory

    state = secret_inventory(return_state=True, **parameters)
    return state.state_details.flow_run_id, state.result(raise_on_failure=False)


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
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) and data.startswith("[") else data


def prefect_records(run_ids: list[UUID]) -> tuple[str, list[str]]:
    """Every log line, artifact, task run and flow run the Prefect API stored for these runs, and the
    task run names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    runs = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)), limit=200)
        artifacts = client.read_artifacts(flow_run_filter=runs, limit=200)
        task_runs = client.read_task_runs(flow_run_filter=runs, limit=200)
        flow_runs = client.read_flow_runs(flow_run_filter=runs)
    assert logs, "no Prefect logs were captured"
    parts = [log.message for log in logs]
    parts += [json.dumps(a.data, default=str) + (a.description or "") for a in artifacts]
    parts += [run.model_dump_json() for run in task_runs]
    parts += [run.model_dump_json() for run in flow_runs]
    return "\n".join(parts), [run.name for run in task_runs]


def slack_titles(slack: SlackStandin) -> list[str]:
    titles = []
    for message in slack.messages():
        blocks = message.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        titles.append(blocks[0]["text"]["text"] if blocks else message["text"])
    return titles


def test_findings_alert_once_per_change_with_artifacts_and_no_value_anywhere(  # noqa: PLR0917 - one story
    platform: InventoryPlatform,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    pagerduty_standin: PagerDutyStandin,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_ids = []
    first_id, first = run_flow()
    run_ids.append(first_id)
    assert first["status"] == "findings"
    kinds = {env: sorted(f["kind"] for f in data["findings"]) for env, data in first["environments"].items()}
    assert kinds == {
        "development": [],
        "staging": ["plaintext"],
        "production": ["certificate-expiring", "missing", "orphan", "overdue", "plaintext"],
    }
    titles = slack_titles(slack_standin)
    assert sorted(titles) == [
        "⚠️ Secret findings appeared in production: 5 item(s), worst critical",
        "⚠️ Secret findings appeared in staging: 1 item(s), worst critical",
    ]
    assert len(smtp_server.messages) == 2  # production and staging have high+ findings
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty_standin.events] == [
        ("trigger", "envsteward/secrets/production")
    ]

    # the same findings again: nothing is sent
    again_id, again = run_flow()
    run_ids.append(again_id)
    assert again["status"] == "findings"
    assert len(slack_titles(slack_standin)) == 2
    assert len(smtp_server.messages) == 2
    assert len(pagerduty_standin.events) == 1

    # the orphan is removed: one "changed" message on Slack (medium is below email's and PagerDuty's floor)
    platform.services.vault_client().kv_delete_all("secret", f"{platform.token}/production/legacy-api")
    changed_id, changed = run_flow(environments=["production"])
    run_ids.append(changed_id)
    assert "orphan" not in [f["kind"] for f in changed["environments"]["production"]["findings"]]
    titles = slack_titles(slack_standin)
    assert titles[2:] == ["⚠️ Secret findings changed in production: 0 new, 1 cleared"]
    assert len(smtp_server.messages) == 2
    assert len(pagerduty_standin.events) == 1

    # a table artifact per environment (fixed key) and the summary
    rows = latest_artifact("secret-inventory-production")
    items = {row["item"]: row["state"] for row in rows}
    assert items[f"vault://secret/{platform.token}/production/database#password"] == "overdue"
    assert items["partners.newsletter.api_key"] == "plaintext"
    assert [state for item, state in items.items() if item.startswith("backup-key://")] == ["ok", "ok"]
    assert "| production | findings |" in latest_artifact("secret-inventory-summary")
    assert latest_artifact("secret-inventory-development")

    # visible tasks per environment; nothing secret anywhere
    text, task_names = prefect_records(run_ids)
    assert "evaluate-production" in task_names
    assert "plaintext-staging-ssm-services" in task_names
    assert any(name.startswith("describe-production-vault://") for name in task_names)
    everything = json.dumps([first, again, changed], default=str) + text
    everything += b"".join(c.raw_body for c in slack_standin.calls).decode("utf-8", "replace")
    everything += b"".join(m.content for m in smtp_server.messages).decode("utf-8", "replace")
    everything += b"".join(pagerduty_standin.received).decode("utf-8", "replace")
    state = platform.services.settings.home / "state"
    everything += "".join(p.read_text(encoding="utf-8") for p in state.rglob("*") if p.is_file())
    assert "secrets/alerts" in everything or any(state.rglob("*"))
    everything += caplog.text + "".join(capsys.readouterr())
    for value in platform.seeded:
        assert value not in everything
    assert "SEEDED" not in everything
