"""A promotion started from the ``promote`` deployment on a real Prefect server with a worker: it suspends at
the approval gate (no worker held), ``envsteward approve`` answers it, the worker runs it again from the
start (cached steps read back) and it completes, against OpenBao and moto."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.e2e.conftest import REPO, WORK_POOL, PrefectServer
from tests.fixtures._proc import venv_executable
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin
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


def _envsteward(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_executable("envsteward"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _setup(  # noqa: PLR0917
    prefect_server: PrefectServer,
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_server: Any,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    **catalog_options: Any,
) -> tuple[Path, Path, dict[str, str]]:
    """A seeded catalog, an envsteward home and the environment of a worker/CLI using both."""
    ssm_base = f"/{aws_name_prefix}"
    catalog = write_catalog(
        tmp_path / "catalog",
        vault_base=vault_kv_path,
        ssm_base=ssm_base,
        health_url=f"{prefect_server.api_url}/health",
        **catalog_options,
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
    return catalog, home, env


def _start_worker(env: dict[str, str], limit: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [venv_executable("prefect"), "worker", "start", "--pool", WORK_POOL, "--limit", str(limit)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
    catalog, home, env = _setup(
        prefect_server, tmp_path, vault_settings, vault_server, vault_kv_path, aws_settings, aws_name_prefix
    )
    prefect_server.cli("deploy", "--all", env=env)
    params = json.dumps(
        {"source": "development", "target": "staging", "requested_by": "dave", "reason": "e2e"}
    )
    output = prefect_server.cli("deployment", "run", "promote/promote", "--params", params, env=env)
    run_id = next(line.split()[-1] for line in output.splitlines() if "UUID" in line)

    worker = _start_worker(env)
    try:
        suspended = _wait_for(
            prefect_server, run_id, lambda r: r.state is not None and r.state.is_paused(), "suspended", worker
        )
        assert suspended.state.name == "Suspended", "from a deployment the flow must suspend, not pause"
        assert suspended.state.state_details.pause_reschedule, "a suspended run is rescheduled on resume"

        wrong = _envsteward("approve", run_id, "--reviewer", "dave", env=env)  # the requester
        assert wrong.returncode == 1, wrong.stdout
        assert "not sent: dave requested this promotion and cannot approve it" in wrong.stderr
        stranger = _envsteward("approve", run_id, "--reviewer", "mallory", env=env)
        assert stranger.returncode == 1
        assert "mallory is not an approver" in stranger.stderr
        still = _flow_run(prefect_server, run_id)
        assert still.state.is_paused(), "a refused answer must not be sent"
        assert still.state.state_details.pause_key == "approval-1"
        done = _envsteward(
            *("approve", run_id, "--reviewer", "alice", "--comment", "ship it", "--wait", "--timeout", "240"),
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert f"flow run {run_id} ended Applied" in done.stdout, done.stdout
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
    assert not any(action == "promotion.approval_refused" for action, _ in actions), "refused before sending"
    assert ("promotion.approved", "alice") in actions
    assert actions.count(("promotion.requested", "dave")) == 1, "the resumed run re-audited its request"
    assert any(action == "promotion.verified" for action, _ in actions)
    check_one_awaiting_approval_event(prefect_server, run_id, suspended)

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


def check_one_awaiting_approval_event(server: PrefectServer, run_id: str, suspended: Any) -> None:
    """The resumed run ran from the top again, past its ``emit-awaiting-approval`` step: still exactly one
    ``awaiting-approval`` event (emitted before it suspended), then ``applied``, read back from the events
    API with the environment as the related resource."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.flows.test_promote_flow import promotion_events

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        expect = {"envsteward.promotion.awaiting-approval": 1, "envsteward.promotion.applied": 1}
        waiting, applied = promotion_events("staging", run_id, expect)  # type: ignore[arg-type]
    assert waiting.payload["requested_by"] == "dave"
    assert waiting.occurred < suspended.state.timestamp + timedelta(seconds=5), "emitted before suspending"
    assert applied.payload["changes"] > 0


def _expiry_runs(server: PrefectServer) -> list[Any]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async def read() -> list[Any]:
        async with PrefectClient(server.api_url) as client:
            return list(
                await client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=["expire-promotions"]))
                )
            )

    return asyncio.run(read())


def test_an_approval_nobody_answers_times_out_audited_announced_and_released(  # noqa: PLR0917
    prefect_server: PrefectServer,
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_server: Any,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    slack_standin: SlackStandin,
) -> None:
    """The run suspends, nobody answers; Prefect fails it at the deadline and no promotion code runs. The
    ``expire-promotions`` deployment (its trigger on the failed ``promote`` run, or its sweep) audits
    ``promotion.timed_out``, tells Slack, releases the lease and names the run's state ``Timed out``."""
    from envsteward.promotion import lock as promotion_lock

    catalog, home, env = _setup(
        prefect_server,
        tmp_path,
        vault_settings,
        vault_server,
        vault_kv_path,
        aws_settings,
        aws_name_prefix,
        staging_timeout_hours=0.01,  # 36 s
        slack_channel="#envsteward-alerts",
    )
    env |= {
        "ENVSTEWARD_SLACK__TOKEN_ENV": "ENVSTEWARD_E2E_SLACK_TOKEN",
        "ENVSTEWARD_SLACK__BASE_URL": slack_standin.url,
        "ENVSTEWARD_E2E_SLACK_TOKEN": SLACK_TOKEN,
    }
    prefect_server.cli("deploy", "--all", env=env)
    params = json.dumps({"source": "development", "target": "staging", "requested_by": "dave"})
    output = prefect_server.cli("deployment", "run", "promote/promote", "--params", params, env=env)
    run_id = next(line.split()[-1] for line in output.splitlines() if "UUID" in line)
    services = Services(Settings(catalog=catalog, home=home, vault=vault_settings, aws=aws_settings))
    worker = _start_worker(env, limit=2)
    try:
        _wait_for(
            prefect_server, run_id, lambda r: r.state is not None and r.state.is_paused(), "suspended", worker
        )
        lease = promotion_lock.holder(services.state_store(), "staging")
        assert lease is not None
        assert lease["run_id"] == run_id
        assert lease["approval_deadline"], "the lease must record the approval deadline"
        final = _wait_for(
            prefect_server,
            run_id,
            lambda r: r.state is not None and r.state.name == "Timed out",
            "named Timed out",
            worker,
        )
        deadline = time.monotonic() + 120
        while not any(
            (r.parameters or {}).get("run_id") == f"prefect.flow-run.{run_id}"
            for r in _expiry_runs(prefect_server)
        ):
            assert time.monotonic() < deadline, "the promote run's failure did not trigger expire-promotions"
            time.sleep(2)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert final.state.is_completed()
    assert "no decision within 0.01 h" in (final.state.message or "")
    (timed_out,) = services.audit_log().records(action="promotion.timed_out")
    assert timed_out.details["run_id"] == run_id
    assert timed_out.environment == "staging"
    assert promotion_lock.holder(services.state_store(), "staging") is None, "the lease was not released"
    messages = json.dumps(slack_standin.messages())
    assert "timed-out" in messages, messages[-2000:]
    assert run_id in messages
    assert not list(services.audit_log().records(action="promotion.applied"))
    for secret in ALL_SEEDED:
        assert secret not in out.decode()
