"""`prefect deploy --all` from the repository root registers every deployment of prefect.yaml, and a worker
started from the repository root picks up a run of one and completes it."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from envsteward.deployments.catalog import read_deployments

from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import venv_executable

pytestmark = pytest.mark.e2e


def _write_catalog(folder: Path, health_url: str) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "catalog.yaml").write_text("platform: e2e\nbase: [config/base.yaml]\n")
    (folder / "config" / "base.yaml").write_text("service:\n  port: 8080\n")
    (folder / "environments.yaml").write_text(
        "environments:\n"
        "  - name: development\n"
        "    tier: development\n"
        "    health_checks:\n"
        "      - name: prefect-api\n"
        "        kind: http\n"
        f"        url: {health_url}\n"
    )
    return folder


async def _read(api_url: str, call: str, *args: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await getattr(client, call)(*args)


def test_deploy_all_then_a_worker_runs_the_health_check(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    catalog = _write_catalog(tmp_path / "catalog", f"{prefect_server.api_url}/health")
    env = prefect_server.env(
        ENVSTEWARD_REPO_DIR=str(REPO),
        ENVSTEWARD_CATALOG=str(catalog),
        ENVSTEWARD_HOME=str(tmp_path / "home"),
    )
    prefect_server.cli("deploy", "--all", env=env)

    for definition in read_deployments():
        flow_name = definition.entrypoint.rsplit(":", 1)[1].replace("_", "-")
        deployment = asyncio.run(
            _read(prefect_server.api_url, "read_deployment_by_name", f"{flow_name}/{definition.name}")
        )
        assert deployment.work_pool_name == WORK_POOL
        assert deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"][
            "directory"
        ] == str(REPO)

    output = prefect_server.cli("deployment", "run", "health-check/health-check", env=env)
    run_id = next(line.split()[-1] for line in output.splitlines() if "UUID" in line)

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
            flow_run = asyncio.run(_read(prefect_server.api_url, "read_flow_run", run_id))
            if flow_run.state and flow_run.state.is_final():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not finish the run in time (state {flow_run.state_name})")
            time.sleep(1)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert flow_run.state.is_completed(), f"run ended {flow_run.state_name}:\n{out.decode()[-4000:]}"
