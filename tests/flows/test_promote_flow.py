"""The promote flow under Prefect, against OpenBao and moto, answered through the Prefect API
(``resume_flow_run`` with ``run_input``), the way the UI's Resume form and ``envsteward approve`` do.

Runs locally (no deployment), so the flow *pauses* in place; the suspend path is covered end to end in
``tests/e2e/test_promotion_e2e.py``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.vault import VaultClient
from envsteward.errors import PermissionDeniedError
from envsteward.ports import ConfigSource, JSONValue
from envsteward.services import Services, set_services
from envsteward.settings import AWSSettings, Settings, SlackSettings, SMTPSettings, VaultSettings
from tests.fixtures.standins import SLACK_TOKEN, SlackStandin, SMTPStandin
from tests.flows._events import wait_for_events
from tests.flows._paused_runs import PausedFlowRun, answer
from tests.unit.promotion._catalog import (
    ALL_SEEDED,
    DEV_TO_STAGING,
    read_everything,
    seed_environments,
    write_catalog,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

SLACK_TOKEN_ENV = "ENVSTEWARD_TEST_PROMOTE_SLACK_TOKEN"
CHANNEL = "#envsteward-alerts"


# ---------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def health_server() -> Iterator[str]:
    """A service that answers 200 on /ok and 503 on /down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path == "/ok" else 503
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@dataclass
class World:
    folder: Path
    services: Services
    vault_base: str
    ssm_base: str
    slack: SlackStandin
    runs: list[Run] = field(default_factory=list)

    def audit(self, action: str | None = None) -> list[Any]:
        return list(self.services.audit_log().records(action=action))

    def audit_text(self) -> str:
        path = self.services.settings.home / "audit" / "audit.jsonl"
        return path.read_text() if path.exists() else ""


def _build_world(  # noqa: PLR0917 - the fixtures it combines
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    slack: SlackStandin,
    health_url: str,
    monkeypatch: pytest.MonkeyPatch,
    **catalog_options: Any,
) -> World:
    folder = write_catalog(
        tmp_path / "catalog",
        vault_base=vault_kv_path,
        ssm_base=f"/{aws_name_prefix}",
        health_url=health_url,
        slack_channel=CHANNEL,
        **catalog_options,
    )
    monkeypatch.setenv(SLACK_TOKEN_ENV, SLACK_TOKEN)
    settings = Settings(
        catalog=folder,
        home=tmp_path / "home",
        actor="tester",
        vault=vault_settings,
        aws=aws_settings,
        slack=SlackSettings(token_env=SLACK_TOKEN_ENV, base_url=slack.url),
    )
    services = Services(settings)
    seed_environments(
        folder,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        f"/{aws_name_prefix}",
    )
    return World(folder, services, vault_kv_path, f"/{aws_name_prefix}", slack)


@pytest.fixture
def world(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    slack_standin: SlackStandin,
    health_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    import envsteward.flows.promote as promote_module

    monkeypatch.setattr(promote_module, "POLL_INTERVAL_SECONDS", 1)
    built = _build_world(
        tmp_path,
        vault_settings,
        vault_kv_path,
        aws_settings,
        aws_name_prefix,
        slack_standin,
        f"{health_server}/ok",
        monkeypatch,
    )
    set_services(built.services)
    yield built
    for run in built.runs:  # never leave a paused flow thread behind
        if run.thread.is_alive():
            with contextlib.suppress(Exception):
                answer(run.wait_paused(1, timeout=1), "reject", "alice", "test teardown")
            run.thread.join(timeout=30)
    set_services(None)


# ---------------------------------------------------------------------------------------------------------
# Running and answering
# ---------------------------------------------------------------------------------------------------------


class Run(PausedFlowRun):
    """A promote flow run in a background thread (it pauses in place while it waits for approval)."""

    def __init__(self, world: World, **parameters: Any) -> None:
        from envsteward.flows.promote import promote

        super().__init__(promote, "promote-test", world.runs, **parameters)


def read_artifacts(flow_run_id: uuid.UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [str(artifact.data) for artifact in artifacts]


def promotion_events(
    target: str, run_id: uuid.UUID, expect: dict[str, int], timeout: float = 30
) -> list[Any]:
    """The ``envsteward.promotion.*`` events of one run, read back from the test server's events API
    (``/events/filter``), oldest first; asserts they are exactly ``expect`` (name -> count, in that order)
    and each has the target as its related environment and no secret value."""
    events = wait_for_events(
        "envsteward.promotion.", f"envsteward.promotion.{target}.{run_id}", expect, timeout
    )
    assert [e.event for e in events] == [name for name, n in expect.items() for _ in range(n)], [
        e.event for e in events
    ]
    for event in events:
        assert_event_shape(event, target)
    return events


def assert_event_shape(event: Any, target: str) -> None:
    """The environment is the related resource (role ``environment``); the payload names and counts only."""
    environments = [(r.id, r.role) for r in event.related if r.role == "environment"]
    assert environments == [(f"envsteward.environment.{target}", "environment")], event.related
    assert event.resource["envsteward.environment"] == target
    assert event.payload["target"] == target
    assert_no_secret(json.dumps(event.payload), event.model_dump_json())


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in ALL_SEEDED:
            assert secret not in text, f"a seeded secret value leaked: {text[:200]!r}"


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------


def test_happy_path_development_to_staging_to_production(world: World) -> None:
    before_prod = read_everything(world.services, "production")

    run = Run(world, source="development", target="staging", requested_by="dave", reason="release 1.1")
    answer(run.wait_paused(1), "approve", "alice", "looks good")
    result = run.finish()
    assert result["outcome"] == "applied", result
    assert run.flow_run().state.name == "Applied"
    assert result["written"] == len(DEV_TO_STAGING)
    staging = read_everything(world.services, "staging")
    assert staging["ssm-services"]["api"]["image"] == "shop/api:1.1.0"
    assert staging["ssm-services"]["api"]["timeout_seconds"] == 45
    assert staging["ssm-services"]["worker"]["image"] == "shop/worker:2.0.0"
    assert staging["ssm-services"]["api"]["instances"] == 2, "environment-specific key was copied"
    assert staging["vault-app"]["database"]["pool_size"] == 20
    assert staging["vault-app"]["database"]["host"] == "db.staging.internal"
    assert staging["vault-app"]["database"]["password"] == "s33d-stg-db-pa55-4be1", "a secret was copied"
    assert staging["vault-app"]["cache"] == {"ttl": 60}
    assert staging["flags"] == {"new_checkout": True, "countries": ["DE", "FR", "NL"]}
    assert read_everything(world.services, "production") == before_prod

    run = Run(world, source="staging", target="production", requested_by="dave", reason="release 1.1")
    first = run.wait_paused(1)
    answer(first, "approve", "alice", "ok from alice")
    answer(run.wait_paused(2), "approve", "carol", "ok from carol")
    result = run.finish()
    assert result["outcome"] == "applied", result
    assert result["approved_by"] == ["alice", "carol"]
    production = read_everything(world.services, "production")
    assert production["ssm-services"]["api"]["image"] == "shop/api:1.1.0"
    assert production["ssm-services"]["api"]["instances"] == 4
    assert production["vault-app"]["database"]["password"] == "s33d-prd-db-pa55-c3a7"

    actions = [record.action for record in world.audit()]
    assert actions.count("promotion.requested") == 2
    assert actions.count("promotion.approved") == 3
    assert actions.count("promotion.applied") == 2
    assert actions.count("promotion.verified") == 2
    approved = [r for r in world.audit("promotion.approved") if r.environment == "production"]
    assert [(r.actor, r.details["comment"]) for r in approved] == [
        ("alice", "ok from alice"),
        ("carol", "ok from carol"),
    ]

    messages = world.slack.messages()
    requests = [m for m in messages if "requested by dave" in json.dumps(m)]
    assert len(requests) == 2, "one approval request per promotion"
    assert "services.api.image" in json.dumps(requests[1])
    assert "http" in json.dumps(requests[1]), "the request links to the run in the UI"

    artifacts = read_artifacts(first)
    assert any("services.api.image" in text and "```diff" in text for text in artifacts)
    assert_no_secret(json.dumps(result), world.audit_text(), json.dumps(messages), *artifacts)

    # two gates, one awaiting-approval event (per run, not per gate), then applied
    expect = {"envsteward.promotion.awaiting-approval": 1, "envsteward.promotion.applied": 1}
    waiting, applied = promotion_events("production", first, expect)
    assert (waiting.payload["source"], waiting.payload["requested_by"]) == ("staging", "dave")
    assert waiting.payload["link"] is None or waiting.payload["link"].endswith(f"/runs/flow-run/{first}")
    assert applied.payload["changes"] == result["changes"]


def test_self_approval_and_a_reviewer_not_on_the_list_are_refused_and_it_keeps_waiting(world: World) -> None:
    run = Run(world, source="development", target="staging", requested_by="alice")
    answer(run.wait_paused(1), "approve", "alice", "my own change")
    answer(run.wait_paused(2), "approve", "mallory", "let me in")
    answer(run.wait_paused(3), "approve", "bob", "reviewed")
    result = run.finish()
    assert result["outcome"] == "applied"
    assert result["approved_by"] == ["bob"]
    refused = world.audit("promotion.approval_refused")
    assert [(r.actor, r.details["accepted"]) for r in refused] == [("alice", False), ("mallory", False)]
    assert "requested this promotion" in refused[0].details["reason"]
    assert "not an approver" in refused[1].details["reason"]


def test_a_rejection_ends_it_and_nothing_is_written(world: World) -> None:
    before = read_everything(world.services, "staging")
    run = Run(world, source="development", target="staging", requested_by="dave")
    answer(run.wait_paused(1), "reject", "bob", "not this week")
    result = run.finish()
    assert result["outcome"] == "rejected"
    state = run.flow_run().state
    assert (state.name, state.type.value) == ("Rejected", "COMPLETED"), "the runs list must say Rejected"
    assert "rejected by approver bob" in state.message
    assert read_everything(world.services, "staging") == before
    (rejected,) = world.audit("promotion.rejected")
    assert (rejected.actor, rejected.details["comment"]) == ("bob", "not this week")
    assert not world.audit("promotion.applied")


def test_no_answer_before_the_deadline_rejects_it(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    slack_standin: SlackStandin,
    health_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import envsteward.flows.promote as promote_module

    monkeypatch.setattr(promote_module, "POLL_INTERVAL_SECONDS", 1)
    world = _build_world(
        tmp_path,
        vault_settings,
        vault_kv_path,
        aws_settings,
        aws_name_prefix,
        slack_standin,
        f"{health_server}/ok",
        monkeypatch,
        staging_timeout_hours=0.001,  # 3.6 s
    )
    set_services(world.services)
    try:
        before = read_everything(world.services, "staging")
        run = Run(world, source="development", target="staging", requested_by="dave")
        result = run.finish(timeout=60)
        assert result["outcome"] == "timed-out"
        assert run.flow_run().state.name == "Timed out"
        assert read_everything(world.services, "staging") == before
        (timed_out,) = world.audit("promotion.timed_out")
        assert "no decision within" in timed_out.details["reason"]
    finally:
        set_services(None)


def test_a_plan_that_changed_since_approval_is_aborted_without_writing(world: World) -> None:
    from envsteward.promotion.errors import StalePlanError

    run = Run(world, source="development", target="staging", requested_by="dave")
    run_id = run.wait_paused(1)
    AWSClients(world.services.settings.aws).ssm().put_parameter(
        Name=f"{world.ssm_base}/staging/services/api/image",
        Value="shop/api:hotfix",
        Type="SecureString",
        Overwrite=True,
    )
    before = read_everything(world.services, "staging")
    answer(run_id, "approve", "alice", "ok")
    with pytest.raises(StalePlanError, match=r"services\.api\.image: the target's current value changed"):
        run.finish()
    assert read_everything(world.services, "staging") == before
    assert world.audit("promotion.aborted")
    assert not world.audit("promotion.applied")


class _FailAfter:
    """Wraps a ConfigSource: the ``limit``-th write (counted over all wrapped sources) fails with permission
    denied; reads, other writes and everything else go to the real source."""

    def __init__(self, inner: ConfigSource, counter: list[int], limit: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.writable = inner.writable
        self.counter = counter
        self.limit = limit

    def read(self) -> Any:
        return self.inner.read()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, key_path: tuple[str, ...], value: JSONValue) -> None:
        self.counter[0] += 1
        if self.counter[0] == self.limit:
            raise PermissionDeniedError("permission denied", system="vault", operation="kv write (injected)")
        self.inner.write(key_path, value)


class _FailingServices(Services):
    def __init__(self, settings: Settings, environment: str, limit: int) -> None:
        super().__init__(settings)
        self._failing_env = environment
        self._counter = [0]
        self._limit = limit

    def config_source(self, environment: str, source_name: str) -> ConfigSource:
        source = super().config_source(environment, source_name)
        if environment != self._failing_env:
            return source
        return _FailAfter(source, self._counter, self._limit)  # type: ignore[return-value]


def test_a_failure_after_half_the_writes_rolls_the_target_back_exactly(world: World) -> None:
    from envsteward.promotion.errors import PromotionRolledBackError

    failing = _FailingServices(world.services.settings, "staging", limit=len(DEV_TO_STAGING) // 2 + 1)
    set_services(failing)
    world.services = failing
    before = read_everything(failing, "staging")
    run = Run(world, source="development", target="staging", requested_by="dave")
    answer(run.wait_paused(1), "approve", "alice", "ok")
    with pytest.raises(PromotionRolledBackError, match="rolled back") as raised:
        run.finish()
    state = run.flow_run().state
    assert (state.name, state.type.value) == ("Rolled back", "FAILED")
    assert failing._counter[0] >= len(DEV_TO_STAGING) // 2 + 1, "the failure came after half the writes"
    assert read_everything(failing, "staging") == before
    (failed,) = world.audit("promotion.failed")
    written = [o for o in failed.details["outcomes"] if o["status"] == "written"]
    assert len(written) == len(DEV_TO_STAGING) // 2
    assert world.audit("promotion.rolled_back")[0].details["verified"] is True
    alerts = [m for m in world.slack.messages() if "rolled back" in json.dumps(m)]
    assert alerts, "the rollback was not alerted"
    assert_no_secret(str(raised.value), world.audit_text(), json.dumps(world.slack.messages()))

    expect = {"envsteward.promotion.awaiting-approval": 1, "envsteward.promotion.rolled-back": 1}
    _, rolled_back = promotion_events("staging", run.flow_run().id, expect)  # and no "applied"
    assert (rolled_back.payload["keys_left"], rolled_back.payload["severity"]) == (0, "high")


def test_a_failing_health_check_rolls_back(world: World, health_server: str) -> None:
    from envsteward.promotion.errors import PromotionRolledBackError

    environments = (world.folder / "environments.yaml").read_text()
    (world.folder / "environments.yaml").write_text(
        environments.replace(f"{health_server}/ok", f"{health_server}/down")
    )
    fresh = Services(world.services.settings)
    set_services(fresh)
    world.services = fresh
    before = read_everything(fresh, "staging")
    run = Run(world, source="development", target="staging", requested_by="dave")
    answer(run.wait_paused(1), "approve", "alice", "ok")
    with pytest.raises(PromotionRolledBackError, match="health check api"):
        run.finish()
    assert read_everything(fresh, "staging") == before


def test_a_dry_run_writes_nothing_anywhere(world: World) -> None:
    before = {env: read_everything(world.services, env) for env in ("staging", "production")}
    run = Run(world, source="development", target="staging", dry_run=True)
    result = run.finish()
    assert result["outcome"] == "dry-run"
    assert run.flow_run().state.name == "Dry run"
    assert result["changes"] == len(DEV_TO_STAGING)
    assert "services.api.image" in result["plan_markdown"]
    assert {env: read_everything(world.services, env) for env in before} == before
    assert world.audit_text() == ""
    assert world.slack.messages() == []
    assert not (world.services.settings.home / "state").exists() or not any(
        (world.services.settings.home / "state").iterdir()
    )
    run_id = run.flow_run().id
    artifacts = read_artifacts(run_id)
    assert any("Dry run" in text for text in artifacts)
    assert_no_secret(json.dumps(result), *artifacts)


def test_a_policy_violation_blocks_the_promotion(world: World) -> None:
    from envsteward.promotion.errors import PromotionBlockedError

    AWSClients(world.services.settings.aws).ssm().put_parameter(
        Name=f"{world.ssm_base}/staging/services/api/log_level",
        Value="debug",
        Type="SecureString",
        Overwrite=True,
    )
    before = read_everything(world.services, "production")
    run = Run(world, source="staging", target="production", requested_by="dave")
    with pytest.raises(PromotionBlockedError) as raised:
        run.finish()
    assert run.flow_run().state.name == "Blocked"
    message = str(raised.value)
    assert "no-debug-logs" in message
    assert "services.api.log_level" in message
    assert "promoted from staging live" in message
    assert read_everything(world.services, "production") == before
    (blocked,) = world.audit("promotion.blocked")
    assert any("no-debug-logs" in text for text in blocked.details["blockers"])


def test_a_second_promotion_to_the_same_target_is_held(world: World) -> None:
    from envsteward.promotion.lock import PromotionLockedError

    first = Run(world, source="development", target="staging", requested_by="dave")
    first_id = first.wait_paused(1)
    second = Run(world, source="development", target="staging", requested_by="erin")
    with pytest.raises(PromotionLockedError, match=f"already in progress: flow run {first_id}"):
        second.finish()
    answer(first_id, "reject", "bob", "done testing")
    assert first.finish()["outcome"] == "rejected"
    third = Run(world, source="development", target="staging", dry_run=False, requested_by="erin")
    answer(third.wait_paused(1), "approve", "bob", "now")
    assert third.finish()["outcome"] == "applied"


def test_promoting_anywhere_but_the_next_environment_is_refused(world: World) -> None:
    from envsteward.promotion.plan import PromotionRefusedError

    run = Run(world, source="development", target="production")
    with pytest.raises(PromotionRefusedError, match="development -> staging -> production"):
        run.finish()


def test_envsteward_approve_refuses_what_the_flow_would_refuse_and_waits_for_the_outcome(
    world: World,
) -> None:
    """`envsteward approve` checks requester, approver list and earlier approvals before sending (exit 1,
    nothing sent), and with --wait prints what the run did with the answer."""
    import typer
    from typer.testing import CliRunner

    from envsteward.cli import promote as promote_cli

    app = typer.Typer()
    promote_cli.register(app)
    cli = CliRunner()

    def approve(run_id: uuid.UUID, reviewer: str, *extra: str) -> Any:
        return cli.invoke(app, ["approve", str(run_id), "--reviewer", reviewer, *extra])

    AWSClients(world.services.settings.aws).ssm().put_parameter(
        Name=f"{world.ssm_base}/staging/services/api/image",
        Value="shop/api:1.2.0",
        Type="SecureString",
        Overwrite=True,
    )
    run = Run(world, source="staging", target="production", requested_by="dave", reason="release")
    first = run.wait_paused(1)
    refused = approve(first, "dave")
    assert refused.exit_code == 1
    assert "not sent: dave requested this promotion and cannot approve it" in refused.output
    stranger = approve(first, "mallory")
    assert stranger.exit_code == 1
    assert "mallory is not an approver of the target (approvers: alice, bob, carol)" in stranger.output
    assert run.wait_paused(1, timeout=5) == first, "a refused answer must not be sent"

    taken = approve(first, "alice", "--wait", "--timeout", "60")
    assert taken.exit_code == 0, taken.output
    assert "waits for approval again (approval-2" in taken.output
    again = approve(run.wait_paused(2), "alice")
    assert again.exit_code == 1
    assert "alice has approved already: 2 distinct approvers are needed" in again.output

    done = approve(run.wait_paused(2), "carol", "--comment", "ok", "--wait", "--timeout", "120")
    assert done.exit_code == 0, done.output
    assert f"flow run {first} ended Applied" in done.output
    assert run.finish()["approved_by"] == ["alice", "carol"]
    assert not world.audit("promotion.approval_refused"), "the refused answers were never sent"


def test_a_failing_second_channel_never_resends_to_the_first(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    health_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 9: one notify task per channel. Email (the second channel) fails the approval request
    transiently then permanently, and the outcome transiently on every attempt (it retries until it gives
    up); Slack (the first) gets each notification exactly once and the promotion still applies."""
    import envsteward.flows.promote as promote_module
    from envsteward.tasks.common import TRANSIENT_RETRIES

    monkeypatch.setattr(promote_module, "POLL_INTERVAL_SECONDS", 1)
    world = _build_world(
        tmp_path,
        vault_settings,
        vault_kv_path,
        aws_settings,
        aws_name_prefix,
        slack_standin,
        f"{health_server}/ok",
        monkeypatch,
    )
    catalog = world.folder / "catalog.yaml"
    catalog.write_text(catalog.read_text() + "  - {name: ops-email, kind: email, to: [ops@shop.example]}\n")
    environments = world.folder / "environments.yaml"
    environments.write_text(
        environments.read_text().replace("notify: [ops-slack]", "notify: [ops-slack, ops-email]")
    )
    smtp = SMTPSettings(host="127.0.0.1", port=smtp_server.port, timeout_seconds=5)
    world.services = Services(world.services.settings.model_copy(update={"smtp": smtp}))
    set_services(world.services)
    smtp_server.fail_next("MAIL", "451 4.3.0 Try again later")  # the request: transient...
    smtp_server.fail_next("MAIL", "550 5.7.1 Relaying denied")  # ...then permanent
    for _ in range(TRANSIENT_RETRIES + 1):  # the outcome: transient on every attempt
        smtp_server.fail_next("MAIL", "421 4.4.5 Try again later")
    try:
        run = Run(world, source="development", target="staging", requested_by="dave")
        answer(run.wait_paused(1), "approve", "alice", "ok")
        assert run.finish()["outcome"] == "applied"
        sent = [json.dumps(m) for m in world.slack.messages() if m.get("channel") == CHANNEL]
        assert len(sent) == 2, sent
        assert "requested by dave" in sent[0]
        assert "requested by dave" not in sent[1]
        assert smtp_server.messages == [], "every email attempt was refused"
        attempts = _task_run_attempts(run.flow_run().id, "notify-ops-email")
        assert attempts == [2, TRANSIENT_RETRIES + 1], "the email task retried on its own"
        assert _task_run_attempts(run.flow_run().id, "notify-ops-slack") == [1, 1]
    finally:
        set_services(None)


def _task_run_attempts(flow_run_id: uuid.UUID, name: str) -> list[int]:
    """Attempts (``run_count``) of each task run called ``name`` in the flow run, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    return [run.run_count for run in runs]
