"""The ``dr-drill`` flow under Prefect: a passing drill completes with its report, verification table and
history artifacts; a failed drill fails the run, posts to Slack and pages PagerDuty (and a later pass
resolves the page); a missed target completes, posts to Slack and does not page. Real PostgreSQL (tiny
database), the filesystem stores (primary + DR folder), Slack and PagerDuty stand-ins."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envsteward.backup import data_object_key
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.stores import backup_stores
from envsteward.drill import DrillStatus, load_history
from envsteward.drill.abandoned import DrillLedger
from envsteward.services import Services, set_services
from envsteward.settings import PagerDutySettings, Settings, SlackSettings
from tests.fixtures.standins import PAGERDUTY_ROUTING_KEY, SLACK_TOKEN, PagerDutyStandin, SlackStandin

pytestmark = pytest.mark.usefixtures("prefect_harness")

SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_DRILL_SLACK_TOKEN"
PD_KEY_ENV = "ENVSTEWARD_TEST_DRILL_PD_KEY"
CHANNEL = "#envsteward-alerts"
SEEDED = "drill-flow-seeded-value-e41f"


def write_catalog(folder: Path, dsn_db: str, drill: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = {
        "platform": "drillflow",
        "channels": [
            {"name": "ops-slack", "kind": "slack", "channel": CHANNEL},
            {"name": "oncall", "kind": "pagerduty", "routing_key": f"secret+env://{PD_KEY_ENV}"},
        ],
    }
    (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
    target = {
        "name": "orders-db",
        "kind": "postgres",
        "dsn": f"postgresql://postgres@127.0.0.1:5432/{dsn_db}",
        "replica_region": "eu-central-1",
    }
    spec = {
        "server_dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
        "smoke_queries": [{"name": "customers", "sql": "SELECT id FROM customers", "min_rows": 1}],
    } | drill
    envs = [
        {
            "name": "prod",
            "tier": "development",
            "notify": ["ops-slack", "oncall"],
            "backups": [target],
            "drill": spec,
        }
    ]
    (folder / "environments.yaml").write_text(json.dumps({"environments": envs}), encoding="utf-8")
    return folder


@pytest.fixture
def use_catalog(
    tmp_path: Path,
    postgres_db: str,
    slack_standin: SlackStandin,
    pagerduty_standin: PagerDutyStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Services]]:
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PD_KEY_ENV, PAGERDUTY_ROUTING_KEY)
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO customers VALUES (1, %s)", (SEEDED,))
    dbname = postgres_db.split("dbname=")[1].split(maxsplit=1)[0]

    def use(**drill: Any) -> Services:
        settings = Settings(
            catalog=write_catalog(tmp_path / "catalog", dbname, drill),
            home=tmp_path / "home",
            actor="drill-flow-test",
            slack=SlackSettings(base_url=slack_standin.url, token_env=SLACK_TOKEN_ENV),
            pagerduty=PagerDutySettings(events_url=pagerduty_standin.url),
        )
        services = Services(settings)
        set_services(services)
        return services

    yield use
    set_services(None)


def backed_up(services: Services) -> str:
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    return result.backup.backup_id


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


def task_runs(state: Any) -> dict[str, str]:
    """The flow run's task runs: task name (the part before the run-name suffix) -> final state type."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state.type.value for run in runs if run.state is not None}


PHASE_TASKS = (
    "drill-prepare",
    "drill-choose",
    "drill-fetch-verify",
    "drill-restore",
    "drill-verify-data",
    "drill-health",
    "drill-teardown",
    "drill-report",
)


def scratch_left(postgres_dsn_base: str, result: dict[str, Any]) -> list[str]:
    """The scratch databases of THIS drill still on the server (other processes may be running drills
    against the same server: theirs are not this test's business). A drill's scratch database ends with
    its drill id's hex part."""
    short = str(result["drill_id"]).rsplit("-", 1)[1]
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, 17) = 'envsteward_drill_' AND "
            "right(datname, %s) = %s",
            (len(short) + 1, f"_{short}"),
        )
        return [str(row[0]) for row in rows.fetchall()]


def test_a_passing_drill_completes_with_its_report(
    use_catalog: Callable[..., Services],
    slack_standin: SlackStandin,
    pagerduty_standin: PagerDutyStandin,
    postgres_dsn_base: str,
) -> None:
    from envsteward.flows.dr_drill import dr_drill

    services = use_catalog(rpo_target_minutes=60)
    backup_id = backed_up(services)

    state = dr_drill(environment="prod", return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["status"] == "passed"
    assert result["backup_id"] == backup_id
    assert result["scratch_removed"] is True
    assert result["scratch"].endswith("_" + result["drill_id"].rsplit("-", 1)[1])
    assert result["rto"]["met"] is True
    assert result["rpo"]["met"] is True
    assert slack_standin.messages() == []
    assert pagerduty_standin.events == []
    assert scratch_left(postgres_dsn_base, result) == []
    runs = task_runs(state)
    assert {name: runs.get(name) for name in PHASE_TASKS} == dict.fromkeys(PHASE_TASKS, "COMPLETED")

    markdown = latest_artifact("dr-drill-prod").data
    assert "PASSED" in markdown
    for phase in ("prepare", "choose", "fetch_verify", "restore", "verify_data", "health", "teardown"):
        assert f"| {phase} |" in markdown
    assert "| RTO |" in markdown
    assert "| RPO |" in markdown
    encoded = re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", markdown)
    assert encoded is not None
    svg = ET.fromstring(base64.b64decode(encoded.group(1)))  # noqa: S314 - our own output
    assert svg.tag.endswith("svg")
    assert "RTO (minutes)" in base64.b64decode(encoded.group(1)).decode()
    table = latest_artifact("dr-drill-verification-prod")
    assert "public.customers" in str(table.data)
    assert "customers" in str(table.data)
    history = latest_artifact("dr-drill-history-prod")
    assert result["drill_id"] in str(history.data)
    assert [r.drill_id for r in load_history(services.state_store(), "prod")] == [result["drill_id"]]
    everything = markdown + str(table.data) + str(history.data) + json.dumps(result)
    assert SEEDED not in everything


def test_a_failed_drill_fails_the_run_alerts_and_pages_then_a_pass_resolves(
    use_catalog: Callable[..., Services],
    slack_standin: SlackStandin,
    pagerduty_standin: PagerDutyStandin,
    postgres_dsn_base: str,
) -> None:
    from envsteward.flows.dr_drill import dr_drill

    services = use_catalog(rpo_target_minutes=60)
    backup_id = backed_up(services)
    dr = backup_stores(services).dr
    assert dr is not None
    data = bytearray(dr.get_bytes(data_object_key(backup_id)))
    data[-20] ^= 0x01
    dr.put_bytes(data_object_key(backup_id), bytes(data))

    state = dr_drill(environment="prod", return_state=True)

    assert state.is_failed()
    assert "fetch_verify" in (state.message or "")
    result = state.result(raise_on_failure=False)
    assert result["status"] == "failed"
    assert result["scratch_removed"] is None
    assert scratch_left(postgres_dsn_base, result) == []
    runs = task_runs(state)
    assert runs["drill-fetch-verify"] == "FAILED"  # an integrity failure is not retried, it is the finding
    assert "drill-restore" not in runs  # the phases after the failed one do not run
    assert runs["drill-teardown"] == "COMPLETED"
    [message] = slack_standin.messages()
    assert "DR drill FAILED" in json.dumps(message)
    [event] = pagerduty_standin.events
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "envsteward-drill-prod-orders-db"
    assert "FAILED" in latest_artifact("dr-drill-prod").data

    # a new backup, drilled successfully, resolves the page
    backed_up(services)
    again = dr_drill(environment="prod", return_state=True)
    assert again.is_completed(), again.message
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "resolve"]
    assert pagerduty_standin.events[1]["dedup_key"] == "envsteward-drill-prod-orders-db"
    assert len(load_history(services.state_store(), "prod")) == 2


def test_a_missed_target_completes_posts_to_slack_and_does_not_page(
    use_catalog: Callable[..., Services],
    slack_standin: SlackStandin,
    pagerduty_standin: PagerDutyStandin,
    postgres_dsn_base: str,
) -> None:
    from envsteward.flows.dr_drill import dr_drill

    services = use_catalog(rpo_target_minutes=0.0001)  # 6 ms: the backup is older than that at drill time
    backed_up(services)

    state = dr_drill(environment="prod", backup="latest", region="dr", return_state=True)

    assert state.is_completed(), state.message
    assert "missed RPO" in (state.message or "")
    result = state.result()
    assert result["status"] == "target_missed"
    assert result["missed_targets"] == ["RPO"]
    assert result["marked_verified"] is True
    [message] = slack_standin.messages()
    assert "missed its target" in json.dumps(message)
    assert pagerduty_standin.events == []
    assert scratch_left(postgres_dsn_base, result) == []
    actions = [r.action for r in services.audit_log().records() if r.action.startswith("drill.")]
    assert actions == ["drill.started", "drill.target_missed"]


def test_the_first_task_sweeps_abandoned_drills_and_the_report_says_so(
    use_catalog: Callable[..., Services], postgres_dsn_base: str
) -> None:
    from envsteward.flows.dr_drill import dr_drill

    services = use_catalog(rpo_target_minutes=60)
    backed_up(services)
    store = services.state_store()
    long_ago = datetime.now(UTC) - timedelta(days=4)  # past every phase's timeouts (about 68 h)
    DrillLedger(store, clock=lambda: long_ago).begin(
        "drill-20200101T000000Z-dead0001", environment="prod", target="orders-db", run="flow run gone"
    )
    DrillLedger(store).begin("drill-20200101T000000Z-a11ce002", environment="prod", target="orders-db")

    state = dr_drill(environment="prod", return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["status"] == "passed"
    assert any("abandoned" in note and "dead0001" in note for note in result["notes"]), result["notes"]
    assert any("left alone" in note and "a11ce002" in note for note in result["notes"]), result["notes"]
    markdown = latest_artifact("dr-drill-prod").data
    assert "dead0001" in markdown
    abandoned = [r for r in services.audit_log().records() if r.action == "drill.abandoned"]
    assert [r.details["drill_id"] for r in abandoned] == ["drill-20200101T000000Z-dead0001"]
    assert abandoned[0].details["created_by_run"] == "flow run gone"
    statuses = {r.drill_id: r.status for r in load_history(store, "prod")}
    assert statuses == {
        "drill-20200101T000000Z-dead0001": DrillStatus.ABANDONED,
        result["drill_id"]: DrillStatus.PASSED,
    }
    assert list(DrillLedger(store).entries()) == ["drill-20200101T000000Z-a11ce002"]
    assert scratch_left(postgres_dsn_base, result) == []
