"""The rotate-secret flow against real stores: OpenBao (Vault KV v2), moto (Secrets Manager, SSM) and the
machine's PostgreSQL, under Prefect's test harness. Approvals are given through the Prefect API
(``resume_flow_run`` with ``run_input``), as the Resume form does.

The machine's PostgreSQL trusts loopback connections (any password connects), so "the old password no
longer works" is proven on the server's own SCRAM verifier in ``pg_authid`` (what password authentication
checks): it matches the new password and not the old one.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.postgres import PostgresClient
from envsteward.adapters.rotators_postgres import PostgresRoleConsumer
from envsteward.adapters.vault import VaultClient
from envsteward.catalog.refs import SecretRef
from envsteward.rotation.model import RotationFailedError, Step
from envsteward.services import Services, set_services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.flows._paused_runs import PausedFlowRun, answer

pytestmark = pytest.mark.usefixtures("prefect_harness")

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@dataclass
class World:
    folder: Path
    services: Services
    vault: VaultClient
    aws: AWSClients
    base: str
    sm_name: str
    ssm_name: str
    roles: list[str]
    seeded: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def kv(self, env: str, name: str) -> tuple[int, dict[str, Any]]:
        mount, path = self.base.split("/", 1)
        secret = self.vault.kv_read(mount, f"{path}/{env}/{name}")
        return secret.version, dict(secret.data)

    def role(self, index: int, database: str = "postgres") -> PostgresRoleConsumer:
        return PostgresRoleConsumer(PostgresClient(ADMIN_DSN), self.roles[index], database, ADMIN_DSN)


def _catalog(folder: Path, base: str, sm_name: str, ssm_name: str, roles: list[str]) -> None:
    (folder / "config").mkdir(parents=True)
    (folder / "catalog.yaml").write_text("platform: shop\nbase: [config/base.yaml]\n")
    (folder / "config" / "base.yaml").write_text("app:\n  name: shop\n")
    for env in ("development", "staging", "production"):
        (folder / "config" / f"{env}.yaml").write_text(
            "app:\n"
            f"  db_password: secret+vault://{base}/{env}/db#password\n"
            f"  broken_db_password: secret+vault://{base}/{env}/db2#password\n"
            f"  token: secret+vault://{base}/{env}/app#token\n"
            f"  api_key: secret+aws-sm://{sm_name}-{env}#key\n"
            f"  signing: secret+ssm://{ssm_name}-{env}\n"
        )
    (folder / "environments.yaml").write_text(
        f"""environments:
  - name: development
    tier: development
    promotes_to: staging
    overlays: [config/development.yaml]
    secrets:
      generate: {{length: 40, alphabet: hex}}
      overrides:
        - {{reference: "secret+vault://{base}/development/app#token", max_age_days: 1}}
        - {{reference: "secret+vault://{base}/development/db2#password", max_age_days: 1}}
      rotation:
        - reference: secret+vault://{base}/development/db#password
          generate: {{length: 24, alphabet: alphanumeric}}
          postgres: {{role: {roles[0]}, admin_dsn: "{ADMIN_DSN}"}}
        - reference: secret+vault://{base}/development/db2#password
          postgres: {{role: {roles[1]}, admin_dsn: "{ADMIN_DSN}", database: no_such_database_{roles[1]}}}
  - name: staging
    tier: staging
    promotes_to: production
    overlays: [config/staging.yaml]
    approval: {{approvers: [alice], approvals_needed: 1}}
  - name: production
    tier: production
    overlays: [config/production.yaml]
    approval: {{approvers: [alice, bob, carol], approvals_needed: 2, timeout_hours: 1}}
    secrets:
      overrides:
        - {{reference: "secret+vault://{base}/production/app#token", max_age_days: 1}}
"""
    )


@pytest.fixture
def world(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    postgres_dsn_base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    import envsteward.flows.rotate_secret as module

    monkeypatch.setattr(module, "POLL_INTERVAL_SECONDS", 1)
    roles = [f"rot_{secrets.token_hex(4)}", f"rot_{secrets.token_hex(4)}"]
    sm_name, ssm_name = f"{aws_name_prefix}/api", f"/{aws_name_prefix}/signing"
    folder = tmp_path / "catalog"
    _catalog(folder, vault_kv_path, sm_name, ssm_name, roles)
    vault = VaultClient.from_settings(vault_settings)
    aws = AWSClients(aws_settings)
    seeded: dict[str, str] = {}
    mount, path = vault_kv_path.split("/", 1)
    admin = PostgresClient(ADMIN_DSN)
    for role in roles:
        seeded[role] = "Old-" + secrets.token_hex(10)
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{seeded[role]}'")
    for env in ("development", "staging", "production"):
        seeded[f"{env}/token"] = "tok-" + secrets.token_hex(12)
        seeded[f"{env}/other"] = "keep-" + secrets.token_hex(8)
        seeded[f"{env}/sm"] = "sm-" + secrets.token_hex(12)
        seeded[f"{env}/ssm"] = "ssm-" + secrets.token_hex(12)
        vault.kv_write(
            mount, f"{path}/{env}/app", {"token": seeded[f"{env}/token"], "other": seeded[f"{env}/other"]}
        )
        vault.kv_write(mount, f"{path}/{env}/db", {"password": seeded[roles[0]], "user": roles[0]})
        vault.kv_write(mount, f"{path}/{env}/db2", {"password": seeded[roles[1]]})
        aws.secretsmanager().create_secret(
            Name=f"{sm_name}-{env}", SecretString=f'{{"key": "{seeded[f"{env}/sm"]}", "user": "svc"}}'
        )
        aws.ssm().put_parameter(Name=f"{ssm_name}-{env}", Value=seeded[f"{env}/ssm"], Type="SecureString")
    settings = Settings(
        catalog=folder, home=tmp_path / "home", actor="tester", vault=vault_settings, aws=aws_settings
    )
    services = Services(settings)
    set_services(services)
    built = World(folder, services, vault, aws, vault_kv_path, sm_name, ssm_name, roles, seeded)
    yield built
    for run in built.runs:
        if run.thread.is_alive():
            with contextlib.suppress(Exception):
                answer(run.wait_paused(1, timeout=1), "reject", "alice")
            run.thread.join(timeout=30)
    set_services(None)
    for role in roles:
        admin.execute(f"DROP ROLE IF EXISTS {role}")


class Run(PausedFlowRun):
    """A rotate-secret run in a background thread (it pauses in place while it waits for approval)."""

    def __init__(self, world: World, **parameters: Any) -> None:
        from envsteward.flows.rotate_secret import rotate_secret

        super().__init__(rotate_secret, "rotate-test", world.runs, **parameters)


def _outputs(world: World) -> str:
    """Everything envsteward wrote or sent that a value must never be in: the audit log, the state store,
    every artifact and every flow/task run's parameters and state messages in the Prefect API."""
    from prefect.client.orchestration import get_client

    parts = [p.read_text(errors="replace") for p in (world.services.settings.home).rglob("*") if p.is_file()]
    with get_client(sync_client=True) as client:
        parts += [str(a.data) for a in client.read_artifacts()]
        for run in client.read_flow_runs():
            parts += [str(run.parameters), str(run.state.message if run.state else "")]
        for task_run in client.read_task_runs():
            parts += [str(task_run.task_inputs), str(task_run.state.message if task_run.state else "")]
        parts += [log.message for log in client.read_logs()]
    return "\n".join(parts)


def _assert_no_value(world: World, *extra: str, text: str | None = None) -> None:
    haystack = text if text is not None else _outputs(world)
    for value in [*world.seeded.values(), *extra]:
        assert value not in haystack, "a secret value leaked into an output"


# ---------------------------------------------------------------------------------------------------------


def test_postgres_role_rotated_new_password_works_old_does_not_vault_holds_it(world: World) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    ref = f"vault://{world.base}/development/db#password"
    version_before, _ = world.kv("development", "db")
    result = rotate_secret("development", ref)
    assert result["outcome"] == "rotated", result
    assert result["steps"] == ["create", "set", "test", "finish"]

    version, data = world.kv("development", "db")
    new = SecretStr(data["password"])
    assert version == version_before + 1
    assert data["user"] == world.roles[0]  # the secret's other keys are kept
    assert len(new.get_secret_value()) == 24  # the reference's policy
    assert new.get_secret_value().isalnum()
    role = world.role(0)
    assert role.holds(new) is True
    assert role.holds(SecretStr(world.seeded[world.roles[0]])) is False  # the old password no longer works
    role.check(new)  # connects as the role with it
    mount, path = world.base.split("/", 1)
    assert (
        world.vault.kv_read(mount, f"{path}/development/db", version=version_before).data["password"]
        == (world.seeded[world.roles[0]])
    )
    actions = [r.action for r in world.services.audit_log().records()]
    assert actions.count("rotation.step") == 4
    assert "rotation.completed" in actions
    _assert_no_value(world, new.get_secret_value())


def test_a_failing_test_step_leaves_the_old_password_current_and_working(world: World) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    ref = f"vault://{world.base}/development/db2#password"
    version_before, data_before = world.kv("development", "db2")
    with pytest.raises(RotationFailedError) as caught:
        rotate_secret("development", ref)
    assert caught.value.step is Step.TEST
    assert caught.value.restored
    assert "failed at step test" in str(caught.value)
    assert "previous value is current and working" in str(caught.value)
    old = SecretStr(world.seeded[world.roles[1]])
    assert world.role(1).holds(old) is True
    assert world.kv("development", "db2") == (version_before, data_before)
    records = list(world.services.audit_log().records())
    failed = [r for r in records if r.action == "rotation.step" and r.details.get("outcome") == "failed"]
    assert [r.details["step"] for r in failed] == ["test"]
    assert any(r.action == "rotation.restored" for r in records)
    _assert_no_value(world)


def test_vault_generated_value_new_version_with_cas_previous_kept(world: World) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    ref = f"vault://{world.base}/development/app#token"
    version_before, _ = world.kv("development", "app")
    assert rotate_secret("development", ref)["outcome"] == "rotated"
    version, data = world.kv("development", "app")
    assert version == version_before + 1
    token = data["token"]
    assert len(token) == 40  # the environment's policy
    assert set(token) <= set("0123456789abcdef")
    assert data["other"] == world.seeded["development/other"]
    mount, path = world.base.split("/", 1)
    old = world.vault.kv_read(mount, f"{path}/development/app", version=version_before).data
    assert old["token"] == world.seeded["development/token"]
    meta = world.vault.kv_metadata(mount, f"{path}/development/app")
    assert meta.current_version == version
    _assert_no_value(world, token)


def test_secrets_manager_awspending_to_awscurrent(world: World) -> None:
    import json

    from envsteward.flows.rotate_secret import rotate_secret

    name = f"{world.sm_name}-staging"
    sm = world.aws.secretsmanager()
    before = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    old_id = next(v for v, labels in before.items() if "AWSCURRENT" in labels)
    assert rotate_secret("staging", f"aws-sm://{name}#key")["outcome"] == "rotated"
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    new_id = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
    assert new_id != old_id
    assert "AWSPREVIOUS" in stages[old_id]
    assert not any("AWSPENDING" in labels for labels in stages.values())
    # moto's GetSecretValue without a stage does not follow a moved AWSCURRENT; AWS's does
    current = json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])
    assert (
        world.services.resolve_secret(SecretRef.parse(f"aws-sm://{name}#key")).get_secret_value()
        == current["key"]
    )
    assert current["user"] == "svc"
    assert current["key"] != world.seeded["staging/sm"]
    _assert_no_value(world, current["key"])


def test_ssm_securestring_rotated(world: World) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    name = f"{world.ssm_name}-staging"
    ssm = world.aws.ssm()
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert rotate_secret("staging", f"ssm://{name}")["outcome"] == "rotated"
    after = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert after["Type"] == "SecureString"
    assert after["Version"] == before["Version"] + 1
    assert after["Value"] != world.seeded["staging/ssm"]
    history = ssm.get_parameter_history(Name=name, WithDecryption=True)["Parameters"]
    assert world.seeded["staging/ssm"] in [h["Value"] for h in history]
    _assert_no_value(world, after["Value"])


def test_production_waits_for_two_distinct_approvers_self_approval_refused(world: World) -> None:
    ref = f"vault://{world.base}/production/app#token"
    version_before, _ = world.kv("production", "app")
    run = Run(world, environment="production", reference=ref, requested_by="alice", reason="quarterly")
    answer(run.wait_paused(1), "approve", "alice")  # the requester: refused
    time.sleep(0.5)
    assert world.kv("production", "app")[0] == version_before
    answer(run.wait_paused(2), "approve", "bob")
    answer(run.wait_paused(3), "approve", "bob")  # the same approver twice: refused
    assert world.kv("production", "app")[0] == version_before
    answer(run.wait_paused(4), "approve", "carol")
    result = run.finish()
    assert result["outcome"] == "rotated"
    assert result["approved_by"] == ["bob", "carol"]
    assert world.kv("production", "app")[0] == version_before + 1
    refused = [r for r in world.services.audit_log().records() if r.action == "rotation.answer_refused"]
    assert [r.details["reviewer"] for r in refused] == ["alice", "bob"]
    _assert_no_value(world, world.kv("production", "app")[1]["token"])


def test_envsteward_approve_answers_a_production_rotation_two_distinct_approvers(world: World) -> None:
    """`envsteward approve`/`reject` take a rotate-secret run: the pre-check reads the rotation's requester
    (its parameters and ``rotation.requested``) and its approvals (``rotation.approved``) and refuses what
    the flow would refuse, without sending it; two distinct approvers rotate the secret."""
    from typer.testing import CliRunner

    from envsteward.cli.main import app

    cli = CliRunner()

    def approve(run_id: uuid.UUID, reviewer: str, *extra: str) -> Any:
        return cli.invoke(app, ["approve", str(run_id), "--reviewer", reviewer, *extra])

    ref = f"vault://{world.base}/production/app#token"
    version_before, _ = world.kv("production", "app")
    run = Run(world, environment="production", reference=ref, requested_by="alice", reason="quarterly")
    first = run.wait_paused(1)
    own = approve(first, "alice")
    assert own.exit_code == 1
    assert "not sent: alice requested" in own.output
    stranger = approve(first, "mallory")
    assert stranger.exit_code == 1
    assert "mallory is not an approver" in stranger.output

    taken = approve(first, "bob", "--comment", "ok", "--wait", "--timeout", "60")
    assert taken.exit_code == 0, taken.output
    assert "waits for approval again (approval-2" in taken.output
    twice = approve(run.wait_paused(2), "bob")
    assert twice.exit_code == 1
    assert "bob has approved already" in twice.output
    assert world.kv("production", "app")[0] == version_before

    done = approve(run.wait_paused(2), "carol", "--wait", "--timeout", "120")
    assert done.exit_code == 0, done.output
    assert f"flow run {first} ended Rotated" in done.output
    result = run.finish()
    assert result["outcome"] == "rotated"
    assert result["approved_by"] == ["bob", "carol"]
    assert world.kv("production", "app")[0] == version_before + 1
    actions = [r.action for r in world.services.audit_log().records(action="rotation.*")]
    assert "rotation.answer_refused" not in actions, "the refused answers were never sent"
    _assert_no_value(world, world.kv("production", "app")[1]["token"], text=own.output + done.output)


def test_envsteward_reject_ends_a_production_rotation(world: World) -> None:
    from typer.testing import CliRunner

    from envsteward.cli.main import app

    ref = f"vault://{world.base}/production/app#token"
    before = world.kv("production", "app")
    run = Run(world, environment="production", reference=ref, requested_by="dave")
    rejected = CliRunner().invoke(
        app, ["reject", str(run.wait_paused(1)), "--reviewer", "bob", "--comment", "not now"]
    )
    assert rejected.exit_code == 0, rejected.output
    assert "the secret rotation records it" in rejected.output
    assert run.finish()["outcome"] == "rejected"
    assert world.kv("production", "app") == before


def test_production_rejection_changes_nothing(world: World) -> None:
    ref = f"vault://{world.base}/production/app#token"
    before = world.kv("production", "app")
    run = Run(world, environment="production", reference=ref, requested_by="dave")
    answer(run.wait_paused(1), "reject", "bob", "not now")
    assert run.finish()["outcome"] == "rejected"
    assert world.kv("production", "app") == before


def test_cli_dry_run_changes_nothing_and_prints_no_value(world: World) -> None:
    from typer.testing import CliRunner

    from envsteward.cli.main import app

    before = {name: world.kv("development", name) for name in ("app", "db")}
    sm_before = world.aws.secretsmanager().describe_secret(SecretId=f"{world.sm_name}-development")
    ref = f"vault://{world.base}/development/db#password"
    result = CliRunner().invoke(app, ["secrets", "rotate", "development", ref, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert "ALTER ROLE" in result.output
    assert {name: world.kv("development", name) for name in ("app", "db")} == before
    sm_after = world.aws.secretsmanager().describe_secret(SecretId=f"{world.sm_name}-development")
    assert sm_after["VersionIdsToStages"] == sm_before["VersionIdsToStages"]
    assert world.role(0).holds(SecretStr(world.seeded[world.roles[0]])) is True
    assert not list(world.services.audit_log().records())
    _assert_no_value(world, text=result.output)


def test_cli_rotates_and_prints_no_value(world: World) -> None:
    from typer.testing import CliRunner

    from envsteward.cli.main import app

    ref = f"ssm://{world.ssm_name}-development"
    result = CliRunner().invoke(app, ["secrets", "rotate", "development", ref])
    assert result.exit_code == 0, result.output
    new = world.aws.ssm().get_parameter(Name=f"{world.ssm_name}-development", WithDecryption=True)[
        "Parameter"
    ]
    assert new["Value"] != world.seeded["development/ssm"]
    _assert_no_value(world, new["Value"], text=result.output)
    _assert_no_value(world, new["Value"])


def test_rotate_due_secrets_one_run_each_failures_isolated_production_waits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:

    from envsteward.flows.rotate_due_secrets import DueRotationsFailedError, rotate_due_secrets
    from envsteward.flows.rotate_secret import rotate_secret
    from prefect.client.orchestration import get_client

    import envsteward.inventory.runner as inventory_runner

    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(inventory_runner, "utcnow", lambda: later)
    deployment_id = rotate_secret.to_deployment(name=f"rotate-secret-{uuid.uuid4().hex[:6]}").apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
    token_before = world.kv("development", "app")[0]
    db2_before = world.kv("development", "db2")
    prod_before = world.kv("production", "app")

    with pytest.raises(DueRotationsFailedError) as caught:
        rotate_due_secrets(deployment=f"rotate-secret/{deployment.name}")
    message = str(caught.value)
    assert "1 of 3" in message
    assert "db2#password" in message
    assert world.kv("development", "app")[0] == token_before + 1  # rotated despite the other failure
    assert world.kv("development", "db2") == db2_before
    assert world.role(1).holds(SecretStr(world.seeded[world.roles[1]])) is True
    assert world.kv("production", "app") == prod_before  # waits for approval in its own run
    with get_client(sync_client=True) as client:
        started = client.read_flow_runs()
    waiting = [r for r in started if r.deployment_id == deployment_id]
    assert len(waiting) == 1
    assert waiting[0].parameters["environment"] == "production"
    assert waiting[0].parameters["reference"].endswith("/production/app#token")
    _assert_no_value(world, world.kv("development", "app")[1]["token"])


# ---------------------------------------------------------------------------------------------------------
# A process killed mid-rotation (SIGKILL between "set" and "finish"): the role has a password only the
# dead process knew, the store still the old one. The journal lets the sweep and the next run repair it.


def _rotate_until_the_test_step(
    settings: Settings, reference: str, longest_seconds: float, ready: Any
) -> None:
    """Child process: run the real rotate-secret flow; at the test step (the role already has the new
    password, Vault still the previous one) tell the parent and wait to be killed."""
    import envsteward.tasks.secret_rotation as rotation_tasks
    from envsteward.flows.rotate_secret import rotate_secret

    from envsteward.rotation.engine import Rotation

    rotation_tasks.LONGEST_ROTATION = timedelta(seconds=longest_seconds)

    def hang(self: Rotation) -> str:
        ready.set()
        time.sleep(600)
        return ""

    Rotation._test = hang  # type: ignore[method-assign]
    set_services(Services(settings))
    rotate_secret("development", reference)


@contextlib.contextmanager
def _killed_mid_rotation(
    world: World, reference: str, monkeypatch: pytest.MonkeyPatch, longest_seconds: float
) -> Iterator[None]:
    """Run the rotation in a spawned process that reaches the test step; SIGKILL it on leaving."""
    import multiprocessing
    import os
    import signal

    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # the child talks to this API
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(
        target=_rotate_until_the_test_step,
        args=(world.services.settings, reference, longest_seconds, ready),
        daemon=True,
    )
    child.start()
    try:
        assert ready.wait(180), "the child never reached the test step"
        yield
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL


def _wait_past_every_deadline(world: World) -> None:
    from envsteward.rotation.journal import open_journals

    journals = open_journals(world.services.state_store())
    assert journals, "the killed run left no journal"
    while datetime.now(UTC) <= max(j.deadline for j in journals):
        time.sleep(0.5)


def test_a_rotation_killed_after_set_is_repaired_by_the_sweep(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.flows.repair_rollbacks import repair_rollbacks

    from envsteward.rotation.journal import open_journals

    ref = f"vault://{world.base}/development/db#password"
    old = SecretStr(world.seeded[world.roles[0]])
    vault_before = world.kv("development", "db")
    with _killed_mid_rotation(world, ref, monkeypatch, longest_seconds=5):
        pass
    assert world.role(0).holds(old) is False, "the killed run had set a new password"
    (stale,) = open_journals(world.services.state_store())
    assert stale.needs_resync
    # the killed run is still "Running" in the API (no worker reported the crash): only the journal's
    # deadline lets the sweep touch it
    _wait_past_every_deadline(world)

    result = repair_rollbacks()

    assert [r["outcome"] for r in result["rotations"]] == ["repaired"]
    assert world.role(0).holds(old) is True, "the role holds what Vault holds as current again"
    assert world.kv("development", "db") == vault_before
    assert open_journals(world.services.state_store()) == []
    repaired = [r for r in world.services.audit_log().records() if r.action == "rotation.repaired"]
    assert len(repaired) == 1
    assert repaired[0].details["run_id"] == stale.run_id
    assert repair_rollbacks()["rotations"] == []  # nothing left for the next sweep
    _assert_no_value(world)


def test_the_next_rotation_repairs_a_killed_one_first_then_rotates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    from envsteward.rotation.journal import open_journals

    ref = f"vault://{world.base}/development/db#password"
    version_before, _ = world.kv("development", "db")
    with _killed_mid_rotation(world, ref, monkeypatch, longest_seconds=5):
        pass
    _wait_past_every_deadline(world)

    result = rotate_secret("development", ref)

    assert result["outcome"] == "rotated", result
    version, data = world.kv("development", "db")
    assert version == version_before + 1
    assert world.role(0).holds(SecretStr(data["password"])) is True
    actions = [r.action for r in world.services.audit_log().records()]
    # the killed run audited create and set; this run repairs before its own first step
    assert actions[:3] == ["rotation.requested", "rotation.step", "rotation.step"]
    assert actions[3:9] == ["rotation.requested", "rotation.repaired", *["rotation.step"] * 4]
    assert open_journals(world.services.state_store()) == []
    _assert_no_value(world, data["password"])


def test_a_second_rotation_of_the_same_secret_ends_locked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envsteward.flows.rotate_secret import rotate_secret

    ref = f"vault://{world.base}/development/db#password"
    with _killed_mid_rotation(world, ref, monkeypatch, longest_seconds=600):
        before = world.kv("development", "db")
        state = rotate_secret("development", ref, return_state=True)
        assert state.is_failed()
        assert state.name == "Locked"
        assert "is being rotated by flow run" in (state.message or "")
        assert world.kv("development", "db") == before
