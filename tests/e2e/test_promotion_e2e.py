"""A promotion started from the ``promote`` deployment on a real Prefect server with a worker: it suspends at
the approval gate (no worker held), ``envsteward approve`` answers it, the worker runs it again from the
start (cached steps read back) and it completes, against OpenBao and moto."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import venv_executable
from tests.fixtures.vault import VAULT_TOKEN_ENV
from tests.unit.promotion._catalog import ALL_SEEDED, read_everything, seed_environments, write_catalog

pytestmark = pytest.mark.e2e


async def _read(api_url: str, call: str, *args: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await getattr(client, call)(*args)


def _flow_run(server: PrefectServer, run_id: str) -> Any:
    return asyncio.run(_read(server.api_url, "read_flow_run", run_id))


def _wait_for(
    server: PrefectServer, run_id: str, done: Any, what: str, worker: subprocess.Popen[bytes]
) -> Any:
    deadline = time.monotonic() + 180
    while True:
        run = _flow_run(server, run_id)
        if done(run):
            return run
        if time.monotonic() > deadline:
            worker.terminate()
            out, _ = worker.communicate(timeout=30)
            pytest.fail(f"the run did not become {what} (state {run.state_name}):\n{out.decode()[-4000:]}")
        time.sleep(1)


def _envsteward(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_executable("envsteward"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promotion_from_a_deployment_suspends_and_completes_after_envsteward_approve(  # noqa: PLR0917
    prefect_server: PrefectServer,
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_server: Any,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
) -> None:
    ssm_base = f"/{aws_name_prefix}"
    catalog = write_catalog(
        tmp_path / "catalog",
        vault_base=vault_kv_path,
        ssm_base=ssm_base,
        health_url=f"{prefect_server.api_url}/health",
    )
    seed_environments(
        catalog,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        ssm_base,
    )
    home = tmp_path / "home"
    env = prefect_server.env(
        ENVSTEWARD_REPO_DIR=str(REPO),
        ENVSTEWARD_CATALOG=str(catalog),
        ENVSTEWARD_HOME=str(home),
        ENVSTEWARD_ACTOR="e2e",
        ENVSTEWARD_VAULT__ADDR=vault_settings.addr,
        ENVSTEWARD_VAULT__TOKEN_ENV=VAULT_TOKEN_ENV,
        ENVSTEWARD_AWS__ENDPOINT_URL=str(aws_settings.endpoint_url),
        ENVSTEWARD_AWS__REGION=aws_settings.region,
        ENVSTEWARD_AWS__MAX_ATTEMPTS="1",
        **{VAULT_TOKEN_ENV: vault_server.root_token},
    )
    prefect_server.cli("deploy", "--all", env=env)
    params = json.dumps(
        {"source": "development", "target": "staging", "requested_by": "dave", "reason": "e2e"}
    )
    output = prefect_server.cli("deployment", "run", "promote/promote", "--params", params, env=env)
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
        suspended = _wait_for(
            prefect_server, run_id, lambda r: r.state is not None and r.state.is_paused(), "suspended", worker
        )
        assert suspended.state.name == "Suspended", "from a deployment the flow must suspend, not pause"
        assert suspended.state.state_details.pause_reschedule, "a suspended run is rescheduled on resume"

        wrong = _envsteward("approve", run_id, "--reviewer", "dave", env=env)  # the requester: refused later
        assert wrong.returncode == 0, wrong.stderr
        _wait_for(
            prefect_server,
            run_id,
            lambda r: (
                r.state is not None
                and r.state.is_paused()
                and r.state.state_details.pause_key == "approval-2"
            ),
            "suspended again at gate 2 (self-approval refused)",
            worker,
        )
        done = _envsteward("approve", run_id, "--reviewer", "alice", "--comment", "ship it", env=env)
        assert done.returncode == 0, done.stderr
        assert "approved flow run" in done.stdout
        final = _wait_for(
            prefect_server, run_id, lambda r: r.state is not None and r.state.is_final(), "finished", worker
        )
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert final.state.is_completed(), f"run ended {final.state_name}:\n{out.decode()[-4000:]}"

    services = Services(Settings(catalog=catalog, home=home, vault=vault_settings, aws=aws_settings))
    staging = read_everything(services, "staging")
    assert staging["ssm-services"]["api"]["image"] == "shop/api:1.1.0"
    assert staging["vault-app"]["database"]["pool_size"] == 20
    actions = [(r.action, r.actor) for r in services.audit_log().records()]
    assert ("promotion.requested", "dave") in actions
    assert ("promotion.approval_refused", "dave") in actions
    assert ("promotion.approved", "alice") in actions
    assert actions.count(("promotion.requested", "dave")) == 1, "the resumed run re-audited its request"
    assert any(action == "promotion.verified" for action, _ in actions)

    not_waiting = _envsteward("approve", run_id, "--reviewer", "bob", env=env)
    assert not_waiting.returncode == 1
    assert "not waiting for approval" in not_waiting.stderr
    unknown = _envsteward("approve", "00000000-0000-0000-0000-000000000000", "--reviewer", "bob", env=env)
    assert unknown.returncode == 1
    assert "no flow run" in unknown.stderr

    audit_text = (home / "audit" / "audit.jsonl").read_text()
    for secret in ALL_SEEDED:
        assert secret not in audit_text
        assert secret not in out.decode()
