"""The drift-scan flow under Prefect against OpenBao, moto and files: de-duplicated alerts (Slack, email,
PagerDuty), artifacts, an unreachable source, the approval path resumed through the Prefect API with a
subset, and no seeded secret in any log line, artifact, result, notification or audit record."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.errors import ConfigurationError
from envsteward.services import set_services
from envsteward.settings import AWSSettings, VaultSettings
from tests.fixtures.standins import (
    PAGERDUTY_ROUTING_KEY,
    SLACK_TOKEN,
    PagerDutyStandin,
    SlackStandin,
    SMTPStandin,
)
from tests.integration.test_scan_platform import (
    PD_KEY_ENV,
    SECRETS,
    SLACK_TOKEN_ENV,
    ScanPlatform,
    all_seeded_secrets,
    build_platform,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def make_platform(  # noqa: PLR0917 - pytest fixtures arrive as parameters
    tmp_path: Path,
    vault_kv_path: str,
    aws_name_prefix: str,
    vault_settings: VaultSettings,
    aws_settings: AWSSettings,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    pagerduty_standin: PagerDutyStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PD_KEY_ENV, PAGERDUTY_ROUTING_KEY)

    def make(**options: Any) -> ScanPlatform:
        platform = build_platform(
            tmp_path,
            vault_kv_path,
            aws_name_prefix,
            vault_settings,
            aws_settings,
            slack_url=slack_standin.url,
            smtp_port=smtp_server.port,
            pagerduty_url=pagerduty_standin.url,
            **options,
        )
        set_services(platform.services)
        return platform

    yield make
    set_services(None)


def run_flow(**parameters: Any) -> tuple[UUID, Any]:
    from envsteward.flows.drift_scan import drift_scan

    state = drift_scan(return_state=True, **parameters)
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
    return artifacts[0].data


def prefect_text(run_ids: list[UUID]) -> str:
    """Every log line, artifact and task run the Prefect API stored for these flow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)), limit=200)
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)), limit=200
        )
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)), limit=200
        )
        flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
    assert logs, "no Prefect logs were captured"
    assert any(a.key == "drift-summary" for a in artifacts)
    parts = [log.message for log in logs]
    parts += [json.dumps(a.data, default=str) + (a.description or "") for a in artifacts]
    parts += [run.model_dump_json() for run in task_runs]
    parts += [run.model_dump_json() for run in flow_runs]
    return "\n".join(parts)


def assert_clean(text: str) -> None:
    for value in all_seeded_secrets():
        assert value not in text
    assert "SEEDED" not in text


def slack_titles(slack: SlackStandin) -> list[str]:
    return [m["blocks"][0]["text"]["text"] if "blocks" in m else m["text"] for m in _slack(slack)]


def _slack(slack: SlackStandin) -> list[dict[str, Any]]:
    messages = slack.messages()
    for message in messages:
        if isinstance(message.get("blocks"), str):
            message["blocks"] = json.loads(message["blocks"])
    return messages


def test_alerts_are_sent_once_per_change_and_nothing_secret_leaks(  # noqa: PLR0915, PLR0917 - one story
    make_platform: Any,
    aws_clients: AWSClients,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    pagerduty_standin: PagerDutyStandin,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform: ScanPlatform = make_platform()
    # the same database password in staging and production: a critical parity finding
    platform.seed({**SECRETS, "production": {**SECRETS["production"], "db": SECRETS["staging"]["db"]}})
    ssm = aws_clients.ssm()
    concurrency = platform.ssm_name("staging", "worker", "concurrency")
    ssm.put_parameter(Name=concurrency, Value="16", Overwrite=True)  # low
    platform.source("staging", "vault-app").write(("database", "pool_size"), "10")  # high, a type trap
    run_ids = []
    results = []
    for _ in range(3):
        run_id, result = run_flow(heal=False)
        run_ids.append(run_id)
        results.append(result)
    first = results[0]
    assert first["status"] == "drift"
    assert first["summary"]["staging"] == {"status": "drift", "critical": 0, "high": 1, "medium": 0, "low": 1}
    assert first["summary"]["production"]["status"] == "ok"
    assert first["summary"]["staging<->production"]["critical"] == 1
    titles = slack_titles(slack_standin)
    assert len(titles) == 2, titles  # one per scope with drift (staging, the parity pair), not per run
    assert any("Drift appeared in staging" in t for t in titles)
    assert any("Drift appeared in staging<->production" in t for t in titles)
    assert len(smtp_server.messages) == 2  # staging (high) and the pair (critical)
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty_standin.events] == [
        ("trigger", "envsteward/drift/staging<->production")
    ]

    # the drift clears: one more message per scope, the incident is resolved
    ssm.put_parameter(Name=concurrency, Value="8", Overwrite=True)
    platform.source("staging", "vault-app").write(("database", "pool_size"), 10)
    new_secret = "prd-Db-P4ss-rotated-SEEDED"
    platform.services.vault_client().kv_write(
        platform.vault_base.split("/", 1)[0],
        platform.vault_secret("canonical/production", "db"),
        {"password": new_secret},
    )
    platform.source("production", "vault-app").write(("database", "password"), new_secret)
    for _ in range(2):
        run_id, result = run_flow(heal=False)
        run_ids.append(run_id)
        results.append(result)
    titles = slack_titles(slack_standin)
    assert len(titles) == 4, titles
    assert "Drift cleared in staging" in titles[2] + titles[3]
    assert any("Drift changed in staging<->production" in t for t in titles[2:])  # tracing stays (medium)
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "resolve"]
    assert len(smtp_server.messages) == 4
    assert results[-1]["summary"]["staging"]["status"] == "ok"

    # artifacts: the fixed-key summary with parity, one report per environment, the items table
    summary = latest_artifact("drift-summary")
    assert "| staging | 🟢 ok |" in summary
    assert "staging ↔ production (parity)" in summary
    assert "# Drift: staging" in latest_artifact("drift-staging")
    assert isinstance(latest_artifact("drift-items"), (str, list))

    # fail_on: the open medium parity finding fails a medium threshold, not a high one
    _, passed = run_flow(heal=False, fail_on="high")
    assert isinstance(passed, dict)
    _, failed = run_flow(heal=False, fail_on="medium")
    assert "open drift at or above medium" in str(failed)
    with pytest.raises(ConfigurationError, match="fail_on 'hgih' is not a severity"):
        run_flow_raising(fail_on="hgih")

    # nothing secret anywhere: results, Prefect logs/artifacts/task runs, Slack, email, PagerDuty, audit
    everything = json.dumps(results, default=str) + prefect_text(run_ids)
    everything += b"".join(c.raw_body for c in slack_standin.calls).decode("utf-8", "replace")
    everything += b"".join(m.content for m in smtp_server.messages).decode("utf-8", "replace")
    everything += b"".join(pagerduty_standin.received).decode("utf-8", "replace")
    audit = platform.services.settings.home / "audit" / "audit.jsonl"
    everything += audit.read_text(encoding="utf-8") if audit.exists() else ""
    everything += caplog.text + "".join(capsys.readouterr())
    assert_clean(everything.replace(new_secret, ""))
    assert new_secret not in everything


def run_flow_raising(**parameters: Any) -> Any:
    from envsteward.flows.drift_scan import drift_scan

    return drift_scan(**parameters)


def test_an_unreachable_source_makes_that_environment_unknown_and_says_so_once(
    make_platform: Any, slack_standin: SlackStandin
) -> None:
    platform: ScanPlatform = make_platform(unreachable=True)
    platform.seed()
    _, result = run_flow(heal=False)
    assert result["environments"]["staging"]["status"] == "ok"
    production = result["environments"]["production"]
    assert production["status"] == "unknown"
    assert "status-api" in production["reason"]
    _, again = run_flow(heal=False, environments=["production"])
    assert again["environments"]["production"]["status"] == "unknown"
    titles = slack_titles(slack_standin)
    assert [t for t in titles if "production" in t and "<->" not in t] == [
        "❔ Drift scan cannot see production"
    ]
    assert not any("staging:" in t or "in staging:" in t for t in titles), titles
    assert "❔ unknown" in latest_artifact("drift-summary")


def resume_when_paused(answer: dict[str, Any], seen: dict[str, Any], deadline: float = 90.0) -> None:
    """Wait for the drift-scan run to pause on its approval form, then resume it through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.flow_runs import resume_flow_run

    end = time.monotonic() + deadline
    with get_client(sync_client=True) as client:
        while time.monotonic() < end:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["drift-scan"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
            if runs:
                seen["run_id"] = runs[0].id
                # the form the reviewer sees lists the candidates
                from prefect.input.run_input import keyset_from_paused_state

                keyset = keyset_from_paused_state(runs[0].state)
                try:
                    seen["schema"] = client.read_flow_run_input(runs[0].id, keyset["schema"])
                    seen["description"] = client.read_flow_run_input(runs[0].id, keyset["description"])
                except PrefectHTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
                    # Prefect sets the Paused state before it stores the form's inputs: look again
                    time.sleep(0.3)
                    continue
                for attempt in range(5):  # the harness's SQLite is sometimes briefly locked
                    try:
                        resume_flow_run(runs[0].id, run_input=answer)
                        return
                    except Exception as exc:
                        if "isn't paused" in str(exc):
                            return  # an earlier attempt went through
                        seen["resume_errors"] = [*seen.get("resume_errors", []), repr(exc)]
                        time.sleep(0.5 * (attempt + 1))
                seen["error"] = "could not resume"
                return
            time.sleep(0.3)
    seen["error"] = "the flow never paused"


def test_heals_above_the_threshold_wait_for_approval_and_only_the_approved_subset_is_written(
    make_platform: Any, aws_clients: AWSClients, monkeypatch: pytest.MonkeyPatch, slack_standin: SlackStandin
) -> None:
    from envsteward.flows import drift_scan as flow_module

    monkeypatch.setattr(flow_module, "APPROVAL_POLL_SECONDS", 1)
    monkeypatch.setattr(flow_module, "APPROVAL_TIMEOUT_SECONDS", 60)
    platform: ScanPlatform = make_platform()
    platform.seed()
    ssm = aws_clients.ssm()
    concurrency = platform.ssm_name("staging", "worker", "concurrency")
    image = platform.ssm_name("staging", "api", "image")
    ssm.put_parameter(Name=concurrency, Value="16", Overwrite=True)  # low: healed without approval
    ssm.put_parameter(Name=image, Value="ghcr.io/acme/api:9.9.9", Overwrite=True)  # high
    platform.source("staging", "vault-app").write(("database", "pool_size"), 12)  # high
    platform.source("production", "vault-app").write(("database", "pool_size"), 13)  # high

    answer = {
        "approve_all": False,
        "approve": ["staging:app.database.pool_size", "production:app.database.pool_size"],
        "reviewer": "alice",
        "comment": "restore pool sizes (INC-42)",
    }
    seen: dict[str, Any] = {}
    helper = threading.Thread(target=resume_when_paused, args=(answer, seen), daemon=True)
    helper.start()
    _, result = run_flow(heal=True)
    helper.join(timeout=5)
    assert "error" not in seen, seen
    assert isinstance(result, dict), result
    outcomes = {o["action_id"]: (o["result"], o["approved_by"]) for o in result["heal"]["outcomes"]}
    assert outcomes == {
        "staging:services.worker.concurrency": ("healed", None),
        "staging:app.database.pool_size": ("healed", "alice"),
        "production:app.database.pool_size": ("healed", "alice"),
        "staging:services.api.image": ("not_approved", None),
    }
    schema = json.dumps(seen["schema"])
    assert "staging:services.api.image" in schema
    assert "reviewer" in schema
    assert "comment" in schema
    assert "staging:app.database.pool_size" in str(seen["description"])

    def read(name: str) -> str:
        return str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])

    assert read(concurrency) == "8"
    assert read(image) == "ghcr.io/acme/api:9.9.9"  # declined: untouched
    for env in ("staging", "production"):
        assert platform.source(env, "vault-app").read()["database"]["pool_size"] == 10

    audit = platform.services.audit_log()
    (approval,) = list(audit.records(action="drift.heal_approval"))
    assert approval.actor == "alice"
    assert approval.details["comment"] == "restore pool sizes (INC-42)"
    assert sorted(approval.details["approved"]) == sorted(answer["approve"])
    assert "staging:services.api.image" in approval.details["declined"]
    healed = {r.target: r.details.get("approved_by") for r in audit.records(action="drift.healed")}
    assert healed == {
        "staging/ssm-services:services.worker.concurrency": None,
        "staging/vault-app:app.database.pool_size": "alice",
        "production/vault-app:app.database.pool_size": "alice",
    }
    # the item healed without approval is not announced; the ones waiting for approval are
    announced = json.dumps(slack_standin.messages())
    assert "services.worker.concurrency" not in announced
    assert "services.api.image" in announced

    # a declined item is not asked about again while its drift stays the same
    _, second = run_flow(heal=True)
    (declined,) = second["heal"]["outcomes"]
    assert declined["action_id"] == "staging:services.api.image"
    assert "declined by a reviewer before" in declined["reason"]


def test_a_scan_while_another_run_heals_detects_and_alerts_but_heals_nothing(
    make_platform: Any, aws_clients: AWSClients, slack_standin: SlackStandin
) -> None:
    """The drift-scan deployment has no concurrency limit (a paused run would lose its slot and be
    killed); healing is serialised by the heal lease instead. A live run holding it (here: a run of this
    API that is still Running) makes this scan detect and alert only."""
    from datetime import UTC, datetime, timedelta

    from prefect import flow

    from envsteward.scan import heal_lease

    @flow(name="a-healing-scan")
    def healer() -> str:
        from prefect.runtime import flow_run

        now = datetime.now(UTC)
        taken = heal_lease.acquire(
            platform.services.state_store(),
            str(flow_run.id),
            now=now,
            expires_at=now + timedelta(minutes=10),
            is_active=lambda _run: True,
        )
        assert taken is None
        return str(flow_run.id)

    platform: ScanPlatform = make_platform()
    platform.seed()
    # the holder's run finished, so it would count as dead: keep it "active" by holding a Running run's id
    holder_state = healer(return_state=True)
    holder = holder_state.result()
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(holder), Running(), force=True)
    concurrency = platform.ssm_name("staging", "worker", "concurrency")
    aws_clients.ssm().put_parameter(Name=concurrency, Value="16", Overwrite=True)  # healable without approval

    run_id, result = run_flow(heal=True)

    assert isinstance(result, dict), result
    assert result["heal"]["outcomes"] == []
    assert (
        aws_clients.ssm().get_parameter(Name=concurrency, WithDecryption=True)["Parameter"]["Value"] == "16"
    )  # not healed
    assert "services.worker.concurrency" in json.dumps(slack_standin.messages())  # but detected and alerted
    assert f"flow run {holder} is healing" in prefect_text([run_id])
    assert platform.services.state_store().get(heal_lease.LEASE_KEY)["run_id"] == holder  # not released by us
