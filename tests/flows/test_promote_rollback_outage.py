"""The promote flow's rollback journal under Prefect, with OpenBao and moto behind fault-injecting proxies.

The target's health check is what fails the promotion: the health endpoint (a loopback HTTP server) cuts
both proxies when it is asked, so the rollback starts while the stores are unreachable.

* an outage longer than the rollback budget: the run fails naming every key left changed, the journal
  stays, the lease stays held, a second promotion is refused; once the stores are back the
  ``repair-rollbacks`` flow restores the target exactly, releases the lease, audits and tells Slack;
* an outage shorter than the budget is rolled back in the run itself;
* a process SIGKILLed in the middle of an apply (spawned) is rolled back by the ``repair-rollbacks`` flow;
* the target is compared whole (every Vault version's data, every SSM value and type, every file), and no
  seeded secret appears in the journal, the errors, the results, the run logs or the notifications.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.journal import JournalStatus, PendingRollbackError, load_journal, open_journal
from envsteward.promotion.runbook import make_plan, target_sources
from envsteward.services import Services, set_services
from envsteward.settings import AWSSettings, PromotionSettings, Settings, VaultSettings
from tests.fixtures.faultproxy import FaultProxy, ProxiedAWS, ProxiedVault
from tests.fixtures.standins import SlackStandin
from tests.flows.test_promote_flow import (
    Run,
    World,
    _build_world,
    answer,
    assert_no_secret,
    promotion_events,
)
from tests.integration.test_rollback_journal import (
    Rig,
    assert_no_secrets,
    assert_restored,
    head,
    raw_journal,
    whole_state,
)
from tests.unit.promotion._catalog import DEV_TO_STAGING

pytestmark = pytest.mark.usefixtures("prefect_harness")

REMOTE_KEYS = [key for key in DEV_TO_STAGING if not key.startswith("feature_flags.")]
"""Every key the promotion changes in Vault or SSM (the flags file is local: always restored)."""


class CuttingHealth:
    """A health endpoint that answers 503 and, the first time it is asked, cuts the proxies for
    ``outage_seconds`` (in the background)."""

    def __init__(self) -> None:
        self.proxies: list[FaultProxy] = []
        self.outage_seconds = 0.0
        self.timers: list[threading.Thread] = []
        self._armed = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer._armed.is_set():
                    outer._armed.clear()
                    outer.timers = [proxy.outage(outer.outage_seconds) for proxy in outer.proxies]
                self.send_response(503)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"down")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def arm(self, proxies: list[FaultProxy], seconds: float) -> None:
        self.proxies, self.outage_seconds = proxies, seconds
        self._armed.set()

    def wait_restored(self) -> None:
        for timer in self.timers:
            timer.join()


@pytest.fixture
def health() -> Iterator[CuttingHealth]:
    endpoint = CuttingHealth()
    yield endpoint
    endpoint.server.shutdown()


class OutageWorld:
    def __init__(self, world: World, rig: Rig) -> None:
        self.world = world
        self.rig = rig

    def use_budget(self, seconds: float) -> None:
        settings = self.world.services.settings.model_copy(
            update={"promotion": PromotionSettings(rollback_budget_seconds=seconds)}
        )
        self.world.services = Services(settings)
        self.rig.proxied = self.world.services
        set_services(self.world.services)


@pytest.fixture
def outage_world(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    proxied_vault: ProxiedVault,
    proxied_aws: ProxiedAWS,
    slack_standin: SlackStandin,
    health: CuttingHealth,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[OutageWorld]:
    import envsteward.flows.promote as promote_module

    monkeypatch.setattr(promote_module, "POLL_INTERVAL_SECONDS", 1)
    world = _build_world(
        tmp_path,
        proxied_vault.settings,
        vault_kv_path,
        proxied_aws.settings,
        aws_name_prefix,
        slack_standin,
        health.url,
        monkeypatch,
    )
    direct = Services(
        world.services.settings.model_copy(update={"vault": vault_settings, "aws": aws_settings})
    )
    rig = Rig(
        folder=world.folder,
        home=world.services.settings.home,
        direct=direct,
        proxied=world.services,
        vault_proxy=proxied_vault.proxy,
        aws_proxy=proxied_aws.proxy,
        vault_location=f"{vault_kv_path}/staging",
        ssm_prefix=f"/{aws_name_prefix}/staging/",
    )
    set_services(world.services)
    yield OutageWorld(world, rig)
    for run in world.runs:
        if run.thread.is_alive():
            run.thread.join(timeout=30)
    set_services(None)


def _flow_run_logs(flow_run_id: uuid.UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    time.sleep(2.5)  # the API log handler sends in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def _repair() -> dict[str, Any]:
    from envsteward.flows.repair_rollbacks import repair_rollbacks

    result: dict[str, Any] = repair_rollbacks()
    return result


def test_an_outage_longer_than_the_budget_fails_the_run_keeps_the_lease_and_the_sweep_restores_exactly(
    outage_world: OutageWorld, health: CuttingHealth
) -> None:
    from envsteward.promotion.repair import RollbackPendingError

    world, rig = outage_world.world, outage_world.rig
    outage_world.use_budget(2.0)
    before = whole_state(rig)
    health.arm([rig.vault_proxy, rig.aws_proxy], 12.0)

    run = Run(world, source="development", target="staging", requested_by="dave")
    run_id = run.wait_paused(1)
    answer(run_id, "approve", "alice", "ok")
    started = time.monotonic()
    with pytest.raises(RollbackPendingError) as raised:
        run.finish(timeout=45)
    assert rig.vault_proxy.down, "the run gave up during the outage"
    assert time.monotonic() - started < 12
    error = raised.value
    message = str(error)
    assert list(error.keys_left) == REMOTE_KEYS, "every Vault and SSM key of the journal"
    for key in REMOTE_KEYS:
        assert key in message
    assert "health check api" in message
    assert "envsteward promote --repair staging" in message

    store = rig.direct.state_store()
    journal = load_journal(store, "staging")
    assert journal is not None
    assert journal.status is JournalStatus.ROLLBACK_PENDING
    assert journal.run_id == str(run_id)
    assert (promotion_lock.holder(store, "staging") or {}).get("run_id") == str(run_id), "the lease is held"
    (failed,) = world.audit("promotion.rollback_failed")
    assert failed.details["keys_left"] == REMOTE_KEYS
    assert not world.audit("promotion.rolled_back")

    health.wait_restored()
    second = Run(world, source="development", target="staging", requested_by="erin")
    with pytest.raises(PendingRollbackError, match=str(run_id)):
        second.finish(timeout=60)

    result = _repair()
    assert result["repaired"] == ["staging"], result
    assert_restored(before, whole_state(rig))
    assert load_journal(store, "staging") is None
    assert promotion_lock.holder(store, "staging") is None, "the sweep released the lease"
    (rolled_back,) = world.audit("promotion.rolled_back")
    assert rolled_back.details["run_id"] == str(run_id)
    assert rolled_back.details["repaired_by"] == "sweep"
    # the run announced the rollback it could not finish (critical), the sweep the finished one (high)
    expect = {"envsteward.promotion.awaiting-approval": 1, "envsteward.promotion.rolled-back": 2}
    _, from_run, from_sweep = promotion_events("staging", run_id, expect)
    assert (from_run.payload["keys_left"], from_run.payload["severity"]) == (len(REMOTE_KEYS), "critical")
    assert_sweep_event(from_sweep, str(run_id), "development")
    messages = json.dumps(world.slack.messages())
    assert "ROLLBACK FAILED" in messages, "the run's failure was alerted"
    assert "rolled back by the sweep" in messages
    assert world.services.audit_log().verify().ok

    assert_no_secrets(message, rig)
    assert_no_secret(
        message,
        json.dumps(result),
        world.audit_text(),
        messages,
        _flow_run_logs(run_id),
        *(p.read_text() for p in (rig.home / "state").glob("*.json")),
    )


def test_an_outage_shorter_than_the_budget_is_rolled_back_in_the_run(
    outage_world: OutageWorld, health: CuttingHealth
) -> None:
    from envsteward.promotion.errors import PromotionRolledBackError

    world, rig = outage_world.world, outage_world.rig
    outage_world.use_budget(20.0)
    before = whole_state(rig)
    health.arm([rig.vault_proxy, rig.aws_proxy], 2.0)

    run = Run(world, source="development", target="staging", requested_by="dave")
    run_id = run.wait_paused(1)
    answer(run_id, "approve", "alice", "ok")
    with pytest.raises(PromotionRolledBackError, match="rolled back"):
        run.finish(timeout=50)
    health.wait_restored()
    assert rig.vault_proxy.refused + rig.aws_proxy.refused > 0, "the rollback felt the outage"
    assert_restored(before, whole_state(rig))
    store = rig.direct.state_store()
    assert load_journal(store, "staging") is None
    assert promotion_lock.holder(store, "staging") is None
    (rolled_back,) = world.audit("promotion.rolled_back")
    assert rolled_back.details["run_id"] == str(run_id)
    assert rolled_back.details["verified"] is True


def _apply_then_hang(settings: Settings, plan_json: str, run_id: str, ready: Any) -> None:
    """Child process: take the lease, write the journal and five keys, tell the parent, wait to be killed."""
    from envsteward.promotion.engine import apply_plan
    from envsteward.promotion.model import PromotionPlan

    services = Services(settings)
    plan = PromotionPlan.model_validate_json(plan_json)
    now = datetime.now(UTC)
    promotion_lock.acquire(
        services.state_store(),
        target="staging",
        source="development",
        run_id=run_id,
        requested_by="dave",
        now=now,
        expires_at=now + timedelta(hours=1),
        is_active=lambda _run: True,
    )
    open_journal(services, plan, run_id=run_id, now=now, apply_deadline=now + timedelta(seconds=15))
    apply_plan(head(plan, 5), target_sources(services, plan), retries=0)
    ready.set()
    time.sleep(600)


def test_a_sigkilled_apply_is_rolled_back_by_the_repair_flow(outage_world: OutageWorld) -> None:
    rig = outage_world.rig
    plan = make_plan(rig.direct, "development", "staging")
    before = whole_state(rig)
    # a flow run this Prefect API does not know: it may be running elsewhere, so only its apply deadline
    # lets the sweep touch it
    run_id = str(uuid.uuid4())
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(
        target=_apply_then_hang,
        args=(rig.direct.settings, plan.model_dump_json(), run_id, ready),
        daemon=True,
    )
    child.start()
    try:
        assert ready.wait(60), "the child did not get to the middle of its apply"
        os.kill(child.pid or 0, signal.SIGKILL)
    finally:
        child.join(10)
    assert child.exitcode == -signal.SIGKILL
    assert whole_state(rig) != before
    store = rig.direct.state_store()
    assert (load_journal(store, "staging") or pytest.fail("no journal")).status is JournalStatus.APPLYING
    assert_no_secrets(raw_journal(rig), rig)

    early = _repair()
    assert early["skipped"] == ["staging"], early  # before the deadline: maybe a live apply elsewhere
    assert (load_journal(store, "staging") or pytest.fail("journal gone")).status is JournalStatus.APPLYING
    deadline = (load_journal(store, "staging") or pytest.fail("journal gone")).apply_deadline
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    result = _repair()
    assert result["repaired"] == ["staging"], result
    assert_restored(before, whole_state(rig))
    assert load_journal(store, "staging") is None
    assert promotion_lock.holder(store, "staging") is None
    records = list(rig.direct.audit_log().records(action="promotion.rolled_back"))
    assert [r.details["run_id"] for r in records] == [run_id]
    assert records[0].details["status_was"] == "applying"
    assert "rolled back by the sweep" in json.dumps(outage_world.world.slack.messages())

    # the sweep, not the (dead) run, announces it: one event, read back from the events API
    (event,) = promotion_events("staging", uuid.UUID(run_id), {"envsteward.promotion.rolled-back": 1})
    assert_sweep_event(event, run_id, plan.source)


def assert_sweep_event(event: Any, run_id: str, source: str) -> None:
    """The sweep's ``rolled-back`` event: finished (``keys_left`` 0, severity high), the run and the
    environments named, names and counts only: no value of the target's stores (each string in the
    payload is a name, the run id or the run's link)."""
    assert event.payload["keys_left"] == 0
    assert event.payload["severity"] == "high"
    assert event.resource["envsteward.severity"] == "high"
    assert (event.payload["run_id"], event.payload["source"]) == (run_id, source)
    for key, value in event.payload.items():
        if key == "link":
            assert value is None or value.endswith(f"/runs/flow-run/{run_id}"), value
        elif isinstance(value, str):
            assert value in {"staging", source, "high", run_id}, (key, value)
        else:
            assert isinstance(value, int), (key, value)
