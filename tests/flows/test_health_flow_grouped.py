"""The health-check flow above ``health.per_check_tasks_up_to``: one task run per environment, the same
per-check results, alerts, audit records and events as one task run per check; a hung probe does not hold
the others; a probe that cannot run fails its environment's task and still counts as down."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from envsteward.health import checks
from envsteward.services import Services, set_services
from envsteward.settings import Settings, SlackSettings
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin
from tests.flows.test_health_flow import (
    CHANNEL,
    PASSWORD_ENV,
    SEEDED_SECRET,
    SLACK_TOKEN_ENV,
    ControlledHTTP,
    error_logs_of,
    prefect_api_text,
    task_runs_of,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

PER_CHECK = 1000  # per_check_tasks_up_to above the world's checks: one task run per check
GROUPED = 0  # always one task run per environment


@pytest.fixture
def service() -> Iterator[ControlledHTTP]:
    server = ControlledHTTP()
    yield server
    server.stop()


UseWorld = Callable[[list[dict[str, Any]], int, str], Services]


@pytest.fixture
def use_world(
    tmp_path: Path, slack_standin: SlackStandin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UseWorld]:
    """Point Services at a catalog with ``health.per_check_tasks_up_to`` set, in its own state home."""
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    monkeypatch.setenv(PASSWORD_ENV, SEEDED_SECRET)

    def use(environments: list[dict[str, Any]], up_to: int, name: str) -> Services:
        folder = tmp_path / name / "catalog"
        folder.mkdir(parents=True)
        catalog = {
            "platform": "healthtest",
            "channels": [{"name": "ops-slack", "kind": "slack", "channel": CHANNEL}],
            "health": {"per_check_tasks_up_to": up_to},
        }
        (folder / "catalog.yaml").write_text(json.dumps(catalog), encoding="utf-8")
        (folder / "environments.yaml").write_text(
            json.dumps({"environments": environments}), encoding="utf-8"
        )
        services = Services(
            Settings(
                catalog=folder,
                home=tmp_path / name / "home",
                actor="health-flow-test",
                slack=SlackSettings(base_url=slack_standin.url, token_env=SLACK_TOKEN_ENV),
            )
        )
        set_services(services)
        return services

    yield use
    set_services(None)


def world(url: str) -> list[dict[str, Any]]:
    """Two environments, every kind of outcome; consecutive 1: every finding is confirmed at once."""
    development = [
        {"kind": "http", "name": "api", "url": f"{url}/health"},
        {"kind": "http", "name": "flaky", "url": f"{url}/fail"},
        {"kind": "http", "name": "slow", "url": f"{url}/slow", "max_latency_ms": 1},
        {"kind": "redis", "name": "cache", "url": "redis://127.0.0.1:6379/0"},
    ]
    staging = [
        {
            "kind": "postgres",
            "name": "db",
            "dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
            "password": f"secret+env://{PASSWORD_ENV}",
        },
        {"kind": "http", "name": "api", "url": f"{url}/health"},
        {"kind": "http", "name": "wrong", "url": f"{url}/missing"},
    ]
    return [
        {
            "name": "development",
            "tier": "development",
            "promotes_to": "staging",
            "notify": ["ops-slack"],
            "health_checks": [{**c, "consecutive": 1} for c in development],
        },
        {
            "name": "staging",
            "tier": "staging",
            "approval": {"approvers": ["alice"]},
            "notify": ["ops-slack"],
            "health_checks": [{**c, "consecutive": 1} for c in staging],
        },
    ]


def without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(summary))
    for found in copy["environments"].values():
        for row in found.values():
            del row["latency_ms"], row["checked_at"]
    return copy


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LATENCY = re.compile(r"latency \d+ ms")


def steady(text: str) -> str:
    """``text`` without what differs between two runs of the same world: run ids and measured latencies."""
    return _LATENCY.sub("latency N ms", _UUID.sub("<id>", text))


def health_events(since: datetime, until: datetime, expect: int) -> list[tuple[str, str]]:
    """(event, resource id) of the ``envsteward.health.*`` events that occurred in [since, until), polled
    until there are ``expect`` of them or 30 s passed (the caller asserts on them)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    wanted = EventFilter(
        event=EventNameFilter(prefix=["envsteward.health."]), occurred=EventOccurredFilter(since=since)
    )
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            events = [e for e in client.read_events(wanted, limit=50).events if e.occurred < until]
        if len(events) >= expect or time.monotonic() > deadline:
            return sorted((e.event, e.resource.id) for e in events)
        time.sleep(0.5)


def run_once(services: Services, slack: SlackStandin) -> dict[str, Any]:
    """Run the flow once; what it produced, per check, without timings and run ids."""
    from envsteward.flows.health_check import health_check

    sent_before = len(slack.messages())
    started = datetime.now(UTC)
    state = health_check(return_state=True)
    assert state.is_completed()
    time.sleep(0.01)
    ended = datetime.now(UTC)
    audit = [
        (r.target, r.details["from"], r.details["to"], r.details.get("detail"))
        for r in services.audit_log().records()
        if r.action == "health.status_changed"
    ]
    return {
        "summary": json.loads(steady(json.dumps(without_timing(state.result())))),
        "slack": sorted(steady(m["text"]) for m in slack.messages()[sent_before:]),
        "audit": sorted((steady(json.dumps(record)) for record in audit), key=str),
        "state": {key: services.state_store().get(key)["confirmed"] for key in _state_keys(state.result())},
        "events": health_events(started, ended, expect=len(state.result()["changes"])),
        "task_runs": task_runs_of(state.state_details.flow_run_id),
    }


def _state_keys(summary: dict[str, Any]) -> list[str]:
    return [f"health/{env}/{check}" for env, found in summary["environments"].items() for check in found]


def test_per_check_and_grouped_report_the_same_world_the_same_way(
    service: ControlledHTTP, use_world: UseWorld, slack_standin: SlackStandin
) -> None:
    per_check = run_once(use_world(world(service.url), PER_CHECK, "per-check"), slack_standin)
    grouped = run_once(use_world(world(service.url), GROUPED, "grouped"), slack_standin)

    assert per_check["summary"]["counts"] == {"up": 4, "degraded": 1, "down": 2}
    # three findings confirmed at once (consecutive 1); a first `up` is a silent baseline
    assert len(per_check["slack"]) == len(per_check["audit"]) == len(per_check["events"]) == 3
    for what in ("summary", "slack", "audit", "state", "events"):
        assert grouped[what] == per_check[what], what

    assert sorted(n for n in per_check["task_runs"] if n.startswith("check-")) == [
        "check-development-api",
        "check-development-cache",
        "check-development-flaky",
        "check-development-slow",
        "check-staging-api",
        "check-staging-db",
        "check-staging-wrong",
    ]
    group_runs = {n: r.state for n, r in grouped["task_runs"].items() if n.startswith("check-")}
    assert sorted(group_runs) == ["check-development", "check-staging"]
    assert (group_runs["check-development"].name, steady(group_runs["check-development"].message)) == (
        "Down",
        '1 of 4 down: flaky "HTTP 503 (expected 200)"; 1 of 4 degraded: slow "latency N ms > 1 ms"',
    )
    assert group_runs["check-development"].is_completed()
    assert (group_runs["check-staging"].name, group_runs["check-staging"].message) == (
        "Down",
        '1 of 3 down: wrong "HTTP 404 (expected 200)"',
    )
    assert service.hits["/fail"] == 2, "one probe per check and run, in either mode"
    assert SEEDED_SECRET not in prefect_api_text()


def test_an_environment_with_every_check_up_completes_plainly(
    service: ControlledHTTP, use_world: UseWorld, slack_standin: SlackStandin
) -> None:
    environments = world(service.url)
    for env in environments:
        env["health_checks"] = [c for c in env["health_checks"] if c["name"] in {"api", "cache", "db"}]
    outcome = run_once(use_world(environments, GROUPED, "all-up"), slack_standin)
    states = {n: r.state for n, r in outcome["task_runs"].items() if n.startswith("check-")}
    assert {n: (s.type.value, s.name) for n, s in states.items()} == {
        "check-development": ("COMPLETED", "Completed"),
        "check-staging": ("COMPLETED", "Completed"),
    }
    assert outcome["summary"]["status"] == "up"


def test_a_hung_probe_is_down_without_holding_the_others(
    service: ControlledHTTP,
    use_world: UseWorld,
    slack_standin: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, returned = threading.Event(), threading.Event()

    def hung_probe(spec: Any, ctx: Any) -> Any:  # stuck in a call that ignores the check's timeout
        release.wait(120)
        returned.set()
        raise TimeoutError

    monkeypatch.setitem(checks._PROBES, "vault", hung_probe)
    environments = world(service.url)
    environments[0]["health_checks"].append(
        {"kind": "vault", "name": "stuck", "timeout_seconds": 0.2, "consecutive": 1}
    )
    try:
        outcome = run_once(use_world(environments, GROUPED, "hung"), slack_standin)
        assert not returned.is_set(), "the flow waited for the hung probe"
    finally:
        release.set()
    found = outcome["summary"]["environments"]["development"]
    assert (found["stuck"]["status"], found["stuck"]["detail"]) == ("down", "timed out")
    assert {name: row["status"] for name, row in found.items() if name != "stuck"} == {
        "api": "up",
        "flaky": "down",
        "slow": "degraded",
        "cache": "up",
    }
    state = outcome["task_runs"]["check-development"].state
    assert (state.type.value, state.name) == ("COMPLETED", "Down")
    assert 'stuck "timed out"' in (state.message or "")
    assert any("development/stuck is DOWN" in text for text in outcome["slack"])


def test_a_probe_that_raises_fails_its_environment_task_and_still_counts_as_down(
    service: ControlledHTTP,
    use_world: UseWorld,
    slack_standin: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def buggy_probe(spec: Any, ctx: Any) -> Any:
        raise TypeError(f"a bug, quoting {SEEDED_SECRET}")

    monkeypatch.setitem(checks._PROBES, "vault", buggy_probe)
    environments = world(service.url)
    environments[1]["health_checks"].append({"kind": "vault", "name": "broken", "consecutive": 1})
    outcome = run_once(use_world(environments, GROUPED, "raises"), slack_standin)

    staging = outcome["summary"]["environments"]["staging"]
    assert (staging["broken"]["status"], staging["broken"]["detail"]) == ("down", "check failed (TypeError)")
    assert {name: row["status"] for name, row in staging.items()} == {
        "db": "up",
        "api": "up",
        "wrong": "down",
        "broken": "down",
    }
    runs = outcome["task_runs"]
    assert runs["check-staging"].state.is_failed()
    assert 'broken "check failed (TypeError)"' in (runs["check-staging"].state.message or "")
    assert runs["check-development"].state.is_completed()
    assert error_logs_of([runs["check-staging"].id]), "a probe that crashed must be loud"
    assert error_logs_of([runs["check-development"].id]) == []
    assert any("staging/broken is DOWN" in text for text in outcome["slack"])
    assert SEEDED_SECRET not in prefect_api_text()
