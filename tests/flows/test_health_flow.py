"""The health-check flow under Prefect: concurrent checks, confirmed changes alerted exactly once, the
``health-status`` artifact, and no secret in the result, the artifact or Slack."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envsteward.catalog.refs import SecretRef
from envsteward.errors import ConfigurationError
from envsteward.services import Services, set_services
from envsteward.settings import Settings, SlackSettings
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin

pytestmark = pytest.mark.usefixtures("prefect_harness")

SEEDED_SECRET = "s3ed3d-health-flow-password-7d1e"
SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_HEALTH_SLACK_TOKEN"
PASSWORD_ENV = "ENVSTEWARD_TEST_HEALTH_PG_PASSWORD"
CHANNEL = "#envsteward-alerts"


class ControlledHTTP:
    """A loopback HTTP server that can be stopped and started again on the same port; counts hits."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] += 1
                if self.path == "/slow":
                    time.sleep(0.05)
                code = {"/fail": 503, "/missing": 404}.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def http_service() -> Iterator[ControlledHTTP]:
    """The service the test stops and brings back."""
    service = ControlledHTTP()
    yield service
    if service._server is not None:
        service.stop()


@pytest.fixture
def stable_service() -> Iterator[ControlledHTTP]:
    """A service that stays up the whole test."""
    service = ControlledHTTP()
    yield service
    service.stop()


def write_catalog(folder: Path, environments: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalog = {
        "platform": "healthtest",
        "channels": [{"name": "ops-slack", "kind": "slack", "channel": CHANNEL}],
    }
    (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")  # JSON is YAML
    (folder / "environments.yaml").write_text(json.dumps({"environments": environments}), encoding="utf-8")
    return folder


@pytest.fixture
def use_catalog(
    tmp_path: Path, slack_standin: SlackStandin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[list[dict[str, Any]]], Services]]:
    """Point the process-wide Services at a catalog in tmp_path, a fresh state home and the Slack stand-in."""
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PASSWORD_ENV, SEEDED_SECRET)

    def use(environments: list[dict[str, Any]]) -> Services:
        settings = Settings(
            catalog=write_catalog(tmp_path / "catalog", environments),
            home=tmp_path / "home",
            actor="health-flow-test",
            slack=SlackSettings(base_url=slack_standin.url, token_env=SLACK_TOKEN_ENV),
        )
        services = Services(settings)
        set_services(services)
        return services

    yield use
    set_services(None)


def environments(http: ControlledHTTP, stable: ControlledHTTP) -> list[dict[str, Any]]:
    return [
        {
            "name": "development",
            "tier": "development",
            "promotes_to": "staging",
            "notify": ["ops-slack"],
            "health_checks": [
                {"kind": "http", "name": "api", "url": f"{http.url}/health", "consecutive": 2},
                {"kind": "redis", "name": "cache", "url": "redis://127.0.0.1:6379/0"},
            ],
        },
        {
            "name": "staging",
            "tier": "staging",
            "approval": {"approvers": ["alice"]},
            "notify": ["ops-slack"],
            "health_checks": [
                {
                    "kind": "postgres",
                    "name": "db",
                    "dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
                    "password": f"secret+env://{PASSWORD_ENV}",
                },
                {"kind": "http", "name": "api", "url": f"{stable.url}/health"},
            ],
        },
    ]


def latest_artifact_markdown() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["health-status"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifacts, "no artifact with key health-status"
    return str(artifacts[0].data)


def test_alerts_once_on_a_real_status_change_and_once_on_recovery(
    http_service: ControlledHTTP,
    stable_service: ControlledHTTP,
    use_catalog: Callable[..., Services],
    slack_standin: SlackStandin,
) -> None:
    from envsteward.flows.health_check import health_check

    services = use_catalog(environments(http_service, stable_service))
    outputs: list[dict[str, Any]] = []

    def run() -> dict[str, Any]:
        outputs.append(health_check())
        return outputs[-1]

    for _ in range(3):
        summary = run()
        assert summary["status"] == "up", summary
        assert summary["counts"] == {"up": 4, "degraded": 0, "down": 0}
    assert slack_standin.messages() == []
    assert http_service.hits["/health"] == 3
    assert stable_service.hits["/health"] == 3

    http_service.stop()  # development/api now points at a closed port
    first_down = run()
    assert first_down["environments"]["development"]["api"]["status"] == "down"
    assert first_down["environments"]["development"]["api"]["detail"] == "connection refused"
    assert first_down["environments"]["staging"]["api"]["status"] == "up"
    assert first_down["changes"] == []
    assert slack_standin.messages() == [], "alerted before the change was confirmed (consecutive: 2)"

    confirmed = run()
    assert [(c["environment"], c["check"], c["from"], c["to"]) for c in confirmed["changes"]] == [
        ("development", "api", "up", "down")
    ]
    messages = slack_standin.messages()
    assert len(messages) == 1, "exactly one message for one confirmed change"
    assert messages[0]["channel"] == CHANNEL
    assert "development/api is DOWN" in messages[0]["text"]

    markdown = latest_artifact_markdown()
    assert "| development | 🔴 down | 🟢 up | · |" in markdown, markdown  # columns: api, cache, db
    assert "| staging | 🟢 up | · | 🟢 up |" in markdown
    assert "connection refused" in markdown

    run()
    run()
    assert len(slack_standin.messages()) == 1, "a second alert for the same outage"

    http_service.start()  # back, on the same port
    recovering = run()
    assert recovering["changes"] == []
    recovered = run()
    assert [(c["environment"], c["check"], c["to"]) for c in recovered["changes"]] == [
        ("development", "api", "up")
    ]
    messages = slack_standin.messages()
    assert len(messages) == 2
    assert "development/api recovered" in messages[1]["text"]
    assert "| development | 🟢 up | 🟢 up | · |" in latest_artifact_markdown()
    run()
    assert len(slack_standin.messages()) == 2

    assert_recorded_and_clean(services, outputs, slack_standin)


def assert_recorded_and_clean(services: Services, outputs: list[dict[str, Any]], slack: SlackStandin) -> None:
    """State and audit hold the confirmed changes; the seeded secret is in no output."""
    # state: one document per check, with its confirmed status
    store = services.state_store()
    assert store.get("health/development/api")["confirmed"] == "up"
    assert store.get("health/staging/db")["confirmed"] == "up"

    # audit: one health.status_changed record per confirmed change
    records = [r for r in services.audit_log().records() if r.action == "health.status_changed"]
    assert [(r.target, r.details["from"], r.details["to"]) for r in records] == [
        ("development/api", "up", "down"),
        ("development/api", "down", "up"),
    ]

    # the seeded password is real (its reference resolves) and leaked nowhere
    assert (
        services.resolve_secret(SecretRef.parse(f"env://{PASSWORD_ENV}")).get_secret_value() == SEEDED_SECRET
    )
    everything = json.dumps(outputs) + latest_artifact_markdown()
    everything += b"".join(c.raw_body for c in slack.calls).decode("utf-8", "replace")
    assert SEEDED_SECRET not in everything
    audit_text = (services.settings.home / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert SEEDED_SECRET not in audit_text
    assert SEEDED_SECRET not in prefect_api_text()


def prefect_api_text() -> str:
    """Everything the Prefect API stored for the session's runs: logs, artifacts, task run names/inputs."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        logs = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
        task_runs = client.read_task_runs(limit=200)
    parts = [log.message for log in logs]
    parts += [json.dumps(a.data, default=str) for a in artifacts]
    parts += [tr.model_dump_json() for tr in task_runs]
    assert any("health-status" in (a.key or "") for a in artifacts)
    return "\n".join(parts)


def task_runs_of(flow_run_id: Any) -> dict[str, Any]:
    """The flow run's task runs by name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs}


def error_logs_of(task_run_ids: list[Any]) -> list[str]:
    """ERROR (and worse) log lines the given task runs sent to the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterLevel, LogFilterTaskRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                task_run_id=LogFilterTaskRunId(any_=task_run_ids), level=LogFilterLevel(ge_=40)
            )
        )
    return [log.message for log in logs]


def test_a_down_service_is_a_finding_and_only_a_probe_that_cannot_run_fails(
    http_service: ControlledHTTP,
    use_catalog: Callable[..., Services],
    slack_standin: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envsteward.flows.health_check import health_check

    from envsteward.health import checks

    def buggy_probe(spec: Any, ctx: Any) -> Any:
        raise TypeError("a bug in the probe")

    monkeypatch.setitem(checks._PROBES, "vault", buggy_probe)  # a probe with a bug, not a down service
    url = http_service.url
    found_at_once = [  # consecutive 1: every finding is confirmed (and alerted) on the first run
        {"kind": "http", "name": "fine", "url": f"{url}/health"},
        {"kind": "http", "name": "flaky", "url": f"{url}/fail"},
        {"kind": "http", "name": "wrong", "url": f"{url}/missing"},
        {"kind": "http", "name": "slow", "url": f"{url}/slow", "max_latency_ms": 1},
        {"kind": "vault", "name": "broken"},
    ]
    use_catalog(
        [
            {
                "name": "development",
                "tier": "development",
                "notify": ["ops-slack"],
                "health_checks": [{**check, "consecutive": 1} for check in found_at_once],
            }
        ]
    )
    state = health_check(return_state=True)
    assert state.is_completed(), "the flow's own state does not depend on what the checks found"
    summary = state.result()
    checks_found = summary["environments"]["development"]
    assert {name: found["status"] for name, found in checks_found.items()} == {
        "fine": "up",
        "flaky": "down",
        "wrong": "down",
        "slow": "degraded",
        "broken": "down",  # a check that cannot report is not healthy
    }
    assert checks_found["flaky"]["detail"] == "HTTP 503 (expected 200)"
    assert checks_found["broken"]["detail"] == "check failed (TypeError)"

    runs = task_runs_of(state.state_details.flow_run_id)
    states = {
        name.removeprefix("check-development-"): (run.state.type.value, run.state.name, run.state.message)
        for name, run in runs.items()
        if name.startswith("check-")
    }
    assert states["fine"][:2] == ("COMPLETED", "Completed")
    assert states["flaky"] == ("COMPLETED", "Down", "HTTP 503 (expected 200)")
    assert states["wrong"] == ("COMPLETED", "Down", "HTTP 404 (expected 200)")
    assert states["slow"][:2] == ("COMPLETED", "Degraded")
    assert states["broken"][:2] == ("FAILED", "Failed")

    # a finding is one probe: confirmation is the tracker's `consecutive`, not a retry within the run
    assert http_service.hits["/fail"] == 1
    assert http_service.hits["/missing"] == 1
    findings = [runs[f"check-development-{name}"].id for name in ("flaky", "wrong", "slow")]
    assert error_logs_of(findings) == [], "a down service logged an error (a traceback) in its task run"
    assert error_logs_of([runs["check-development-broken"].id]), "a probe that crashed must be loud"

    # and the flow alerts as before: every confirmed non-up status, the crashed probe included
    texts = [message["text"] for message in slack_standin.messages()]
    for name, status in (("flaky", "DOWN"), ("wrong", "DOWN"), ("slow", "DEGRADED"), ("broken", "DOWN")):
        assert any(f"development/{name} is {status}" in text for text in texts), (name, texts)
    assert len(texts) == 4


def test_unknown_environment_is_a_clear_error(
    http_service: ControlledHTTP, use_catalog: Callable[..., Services]
) -> None:
    from envsteward.flows.health_check import health_check

    use_catalog(environments(http_service, http_service))
    with pytest.raises(ConfigurationError, match=r"unknown environment.*'prod'.*development, staging"):
        health_check(environments=["prod"])
    only_staging = health_check(environments=["staging"])
    assert list(only_staging["environments"]) == ["staging"]
