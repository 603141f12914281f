"""The README's Automation, created through the Prefect API of a real ``prefect server start``: a critical
``envsteward.drift.detected`` event makes the server run the drift-scan deployment with healing for the
environment the event names (the environment templated into the deployment's parameters), and a worker
started from the repository root runs that flow run to completion. A high-severity event does not fire it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import venv_executable

pytestmark = pytest.mark.e2e

EMIT = """
import sys
from envsteward.status.events import DRIFT_DETECTED, StatusEvent
from envsteward.tasks.events import emit
from prefect.events.worker import EventsWorker

environment, severity = sys.argv[1], sys.argv[2]
sent = emit(StatusEvent(name=DRIFT_DETECTED, environment=environment, severity=severity,
                        payload={"new": 1, "open": 1, "counts": {severity: 1}}))
EventsWorker.drain_all()
print(sent)
"""


def _write_catalog(folder: Path) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "catalog.yaml").write_text("platform: e2e\nbase: [config/base.yaml]\n")
    (folder / "config" / "base.yaml").write_text("service:\n  port: 8080\n")
    (folder / "environments.yaml").write_text(
        "environments:\n"
        "  - name: development\n"
        "    tier: development\n"
        "    promotes_to: staging\n"
        "  - name: staging\n"
        "    tier: staging\n"
        "    approval:\n"
        "      approvers: [alice, bob]\n"
    )
    return folder


async def _call(api_url: str, call: str, *args: Any, **kwargs: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await getattr(client, call)(*args, **kwargs)


def _automation_runs(server: PrefectServer, deployment_id: Any) -> list[Any]:
    """The deployment's flow runs that an automation created (scheduled runs are left out)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs = asyncio.run(
        _call(
            server.api_url,
            "read_flow_runs",
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        )
    )
    return [run for run in runs if run.created_by is not None and run.created_by.type == "AUTOMATION"]


def _create_readme_automation(server: PrefectServer, deployment_id: Any) -> Any:
    """The README's example, verbatim but for the deployment id (``Automation.create`` calls the API)."""
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drift_scan_deployment_id = deployment_id
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        return Automation(
            name="heal critical drift",
            trigger=EventTrigger(
                expect={"envsteward.drift.detected"},
                match={"envsteward.severity": "critical"},
                for_each={"envsteward.environment"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                RunDeployment(
                    source="selected",
                    deployment_id=drift_scan_deployment_id,
                    parameters={
                        "environments": ["{{ event.resource['envsteward.environment'] }}"],
                        "heal": True,
                    },
                )
            ],
        ).create()


def test_the_server_schedules_a_deployments_runs(prefect_server: PrefectServer, tmp_path: Path) -> None:
    """The default schedules only detect anything if the server's scheduler creates their runs (it did not
    with SQLAlchemy 2.1: every loop failed with "Can't evaluate bulk DML statement")."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    env = prefect_server.env(
        ENVSTEWARD_REPO_DIR=str(REPO),
        ENVSTEWARD_CATALOG=str(_write_catalog(tmp_path / "catalog")),
        ENVSTEWARD_HOME=str(tmp_path / "home"),
    )
    prefect_server.cli("deploy", "--name", "health-check", env=env)
    deployment = asyncio.run(
        _call(prefect_server.api_url, "read_deployment_by_name", "health-check/health-check")
    )
    deadline = time.monotonic() + 90
    while True:
        scheduled = asyncio.run(
            _call(
                prefect_server.api_url,
                "read_flow_runs",
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
        )
        if scheduled:
            break
        if time.monotonic() > deadline:
            pytest.fail("the server created no scheduled run of health-check within 90 s")
        time.sleep(2)


def test_a_critical_drift_event_runs_the_drift_scan_with_healing_for_that_environment(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    env = prefect_server.env(
        ENVSTEWARD_REPO_DIR=str(REPO),
        ENVSTEWARD_CATALOG=str(_write_catalog(tmp_path / "catalog")),
        ENVSTEWARD_HOME=str(tmp_path / "home"),
    )
    prefect_server.cli("deploy", "--name", "drift-scan", env=env)
    deployment = asyncio.run(
        _call(prefect_server.api_url, "read_deployment_by_name", "drift-scan/drift-scan")
    )
    automation = _create_readme_automation(prefect_server, deployment.id)
    assert automation.id is not None
    time.sleep(2)  # the server's trigger service loads new automations on a short cycle

    def emit(environment: str, severity: str) -> None:
        sent = subprocess.run(
            [sys.executable, "-c", EMIT, environment, severity],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr[-2000:]
        assert sent.stdout.strip() != "None", "the event was not sent"

    emit("development", "high")  # not critical: must not fire
    emit("staging", "critical")

    deadline = time.monotonic() + 60
    while not (runs := _automation_runs(prefect_server, deployment.id)):
        if time.monotonic() > deadline:
            pytest.fail("the automation did not create a drift-scan run within 60 s of the critical event")
        time.sleep(1)
    time.sleep(3)  # a (wrong) second firing for the high-severity event would show up by now
    runs = _automation_runs(prefect_server, deployment.id)
    assert len(runs) == 1, [run.parameters for run in runs]
    (run,) = runs
    assert run.parameters == {"environments": ["staging"], "heal": True}
    assert run.created_by.id == automation.id

    worker = subprocess.Popen(
        [venv_executable("prefect"), "worker", "start", "--pool", WORK_POOL, "--limit", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            flow_run = asyncio.run(_call(prefect_server.api_url, "read_flow_run", run.id))
            if flow_run.state and flow_run.state.is_final():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not finish the triggered run (state {flow_run.state_name})")
            time.sleep(1)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert flow_run.state.is_completed(), f"run ended {flow_run.state_name}:\n{out.decode()[-4000:]}"
    result = asyncio.run(_call(prefect_server.api_url, "read_flow_run", run.id))
    assert result.parameters == {"environments": ["staging"], "heal": True}
