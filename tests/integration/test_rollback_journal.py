"""The rollback journal against OpenBao and moto behind a fault-injecting TCP proxy (and a local file).

* an outage longer than the rollback budget leaves a ``rollback_pending`` journal naming every key that may
  still be changed, and the lease held; once the stores are back the sweep restores the target exactly,
  audits ``promotion.rolled_back`` with the original run id and releases the lease;
* an outage shorter than the budget is rolled back in the call itself;
* a process SIGKILLed in the middle of an apply leaves a journal that the sweep rolls back;
* the target is compared whole (every Vault version's data, current data, every SSM value and type, every
  file's bytes), and no secret value appears in the stored journal, the errors or the reports.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.adapters.state_fs import file_name_for_key
from envsteward.adapters.vault import VaultClient
from envsteward.promotion import ApplyError, apply_plan
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.journal import (
    JournalStatus,
    PendingRollbackError,
    SecretsManagerEntry,
    SSMParameterEntry,
    journal_key,
    load_journal,
    open_journal,
)
from envsteward.promotion.model import PromotionPlan
from envsteward.promotion.repair import (
    RetryBudget,
    RollbackPendingError,
    SecretsManagerRestorer,
    SSMParameterRestorer,
    repair_pending,
    restore_within_budget,
    roll_back_with_budget,
    rollback_status,
)
from envsteward.promotion.runbook import make_plan, target_sources
from envsteward.services import Services
from envsteward.settings import AWSSettings, Settings, VaultSettings
from tests.fixtures.faultproxy import FaultProxy, ProxiedAWS, ProxiedVault
from tests.unit.promotion._catalog import ALL_SEEDED, LIVE_SERVICES, seed_environments, write_catalog

RUN = "6f1d1c0e-0000-4000-8000-00000000abcd"
FAST = RetryBudget(seconds=2.0, first_delay_seconds=0.2, max_delay_seconds=0.5)
PATIENT = RetryBudget(seconds=20.0, first_delay_seconds=0.2, max_delay_seconds=1.0)


@dataclass
class Rig:
    folder: Path
    home: Path
    direct: Services
    proxied: Services
    vault_proxy: FaultProxy
    aws_proxy: FaultProxy
    vault_location: str
    ssm_prefix: str

    def outage(self, seconds: float) -> list[Any]:
        return [self.vault_proxy.outage(seconds), self.aws_proxy.outage(seconds)]


@pytest.fixture
def rig(  # noqa: PLR0917 - pytest fixtures
    tmp_path: Path,
    vault_settings: VaultSettings,
    vault_kv_path: str,
    aws_settings: AWSSettings,
    aws_name_prefix: str,
    proxied_vault: ProxiedVault,
    proxied_aws: ProxiedAWS,
) -> Rig:
    ssm_base = f"/{aws_name_prefix}"
    folder = write_catalog(tmp_path / "catalog", vault_base=vault_kv_path, ssm_base=ssm_base)
    seed_environments(
        folder,
        VaultClient.from_settings(vault_settings),
        AWSClients(aws_settings).ssm(),
        vault_kv_path,
        ssm_base,
    )
    home = tmp_path / "home"
    direct = Services(Settings(catalog=folder, home=home, vault=vault_settings, aws=aws_settings))
    proxied = Services(
        Settings(catalog=folder, home=home, vault=proxied_vault.settings, aws=proxied_aws.settings)
    )
    return Rig(
        folder=folder,
        home=home,
        direct=direct,
        proxied=proxied,
        vault_proxy=proxied_vault.proxy,
        aws_proxy=proxied_aws.proxy,
        vault_location=f"{vault_kv_path}/staging",
        ssm_prefix=f"{ssm_base}/staging/",
    )


def whole_state(rig: Rig) -> dict[str, Any]:
    """Staging as it is: every Vault secret's every (undeleted) version and current data, every SSM
    parameter's value and type, every file's bytes. Read directly (not through the proxies)."""
    client = rig.direct.vault_client()
    mount, base = rig.vault_location.split("/", 1)
    vault: dict[str, Any] = {}
    for relative in client.kv_walk(mount, base):
        path = f"{base}/{relative}"
        meta = client.kv_metadata(mount, path)
        vault[relative] = {
            "versions": {
                number: json.dumps(dict(client.kv_read(mount, path, version=number).data), sort_keys=True)
                for number, info in meta.versions.items()
                if not info.deleted
            },
            "current": json.dumps(dict(client.kv_read(mount, path).data), sort_keys=True),
        }
    ssm: dict[str, tuple[str, str]] = {}
    pages = (
        AWSClients(rig.direct.settings.aws)
        .ssm()
        .get_paginator("get_parameters_by_path")
        .paginate(Path=rig.ssm_prefix, Recursive=True, WithDecryption=True)
    )
    for page in pages:
        for parameter in page["Parameters"]:
            ssm[parameter["Name"]] = (parameter["Value"], parameter["Type"])
    files = {path.name: path.read_bytes() for path in sorted((rig.folder / "live" / "staging").iterdir())}
    return {"vault": vault, "ssm": ssm, "files": files}


def assert_restored(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert sorted(after["vault"]) == sorted(before["vault"]), "a secret was created or lost"
    for path, old in before["vault"].items():
        new = after["vault"][path]
        assert new["current"] == old["current"], f"{path}: current data differs"
        for number, data in old["versions"].items():
            assert new["versions"].get(number) == data, f"{path}: version {number} changed"
    assert after["ssm"] == before["ssm"]
    assert after["files"] == before["files"]


def raw_journal(rig: Rig) -> str:
    return (rig.home / "state" / f"{file_name_for_key(journal_key('staging'))}.json").read_text()


def assert_no_secrets(text: str, rig: Rig) -> None:
    assert ALL_SEEDED
    for secret in ALL_SEEDED:
        assert secret not in text
    for value in (*LIVE_SERVICES["staging"].values(), *LIVE_SERVICES["development"].values()):
        if "/" in value:  # the image names: SecureString values, never journaled
            assert value not in text


def take_lease(services: Services, now: datetime) -> None:
    promotion_lock.acquire(
        services.state_store(),
        target="staging",
        source="development",
        run_id=RUN,
        requested_by="alice",
        now=now,
        expires_at=now + timedelta(hours=1),
        is_active=lambda _run: True,
    )


def head(plan: PromotionPlan, count: int) -> PromotionPlan:
    return plan.model_copy(update={"changes": plan.changes[:count]})


def test_an_outage_longer_than_the_budget_leaves_a_pending_journal_and_the_sweep_restores_exactly(  # noqa: PLR0915
    rig: Rig,
) -> None:
    now = datetime.now(UTC)
    plan = make_plan(rig.direct, "development", "staging")
    assert {c.target_source for c in plan.changes} == {"vault-app", "ssm-services", "flags"}
    before = whole_state(rig)
    take_lease(rig.proxied, now)
    journal = open_journal(rig.proxied, plan, run_id=RUN, now=now)
    assert_no_secrets(raw_journal(rig), rig)
    assert '"DE"' not in raw_journal(rig), "a file's bytes live in a 0600 copy, not in the journal"
    copies = list((rig.home / "journal").rglob("*.bin"))
    assert len(copies) == 1
    assert copies[0].stat().st_mode & 0o777 == 0o600

    sources = target_sources(rig.proxied, plan)
    apply_plan(head(plan, 5), sources, retries=0)
    assert whole_state(rig) != before
    timers = rig.outage(7.0)
    with pytest.raises(ApplyError, match=r"writing services\.api\.timeout_seconds"):
        apply_plan(plan.model_copy(update={"changes": plan.changes[5:]}), sources, retries=0)

    with pytest.raises(RollbackPendingError) as raised:
        roll_back_with_budget(rig.proxied, journal, budget=FAST)
    remote = [c.path for c in plan.changes if c.target_source != "flags"]
    assert list(raised.value.keys_left) == remote, "every Vault and SSM key of the journal, the file restored"
    message = str(raised.value)
    for key in remote:
        assert key in message
    assert "feature_flags" not in ", ".join(raised.value.keys_left)
    assert "restore failed" in message
    assert_no_secrets(message, rig)

    store = rig.direct.state_store()
    stored = load_journal(store, "staging")
    assert stored is not None
    assert stored.status is JournalStatus.ROLLBACK_PENDING
    assert list(stored.keys_left) == remote
    assert (promotion_lock.holder(store, "staging") or {}).get("run_id") == RUN, "the lease stays held"
    assert_no_secrets(raw_journal(rig), rig)
    status = "\n".join(rollback_status(rig.direct, "staging"))
    assert "rollback_pending" in status
    assert RUN in status
    with pytest.raises(PendingRollbackError, match=RUN):
        open_journal(rig.direct, plan, run_id="another-run", now=now)

    assert rig.vault_proxy.down, "the outage outlasts the budget"
    [still] = repair_pending(rig.proxied, datetime.now(UTC), lambda _run: False, budget=FAST)
    assert (still.outcome, still.keys_left) == ("pending", tuple(remote))
    assert load_journal(store, "staging") is not None

    for timer in timers:
        timer.join()
    reports = repair_pending(rig.proxied, datetime.now(UTC), lambda _run: True, budget=PATIENT)
    assert [(r.target, r.outcome, r.run_id) for r in reports] == [("staging", "repaired", RUN)]
    assert reports[0].lease_released
    assert_no_secrets(repr(reports), rig)
    assert_restored(before, whole_state(rig))
    assert load_journal(store, "staging") is None
    assert promotion_lock.holder(store, "staging") is None
    assert not (rig.home / "journal" / "staging").exists() or not any((rig.home / "journal").rglob("*.bin"))
    records = list(rig.direct.audit_log().records(action="promotion.rolled_back"))
    assert len(records) == 1
    assert records[0].details["run_id"] == RUN
    assert records[0].details["plan_hash"] == plan.plan_hash
    assert records[0].environment == "staging"
    assert rig.direct.audit_log().verify().ok


def test_an_outage_shorter_than_the_budget_is_rolled_back_in_the_call(rig: Rig) -> None:
    now = datetime.now(UTC)
    plan = make_plan(rig.direct, "development", "staging")
    before = whole_state(rig)
    journal = open_journal(rig.proxied, plan, run_id=RUN, now=now)
    sources = target_sources(rig.proxied, plan)
    report = apply_plan(plan, sources, retries=0)
    assert report.written == len(plan.changes)

    timers = rig.outage(1.5)
    started = time.monotonic()
    result = roll_back_with_budget(rig.proxied, journal, budget=PATIENT)
    assert time.monotonic() - started >= 1.0, "the rollback waited for the stores"
    assert rig.vault_proxy.refused + rig.aws_proxy.refused > 0, "the outage was felt"
    for timer in timers:
        timer.join()
    assert len(result.restored) == len(journal.entries)
    assert_restored(before, whole_state(rig))
    assert load_journal(rig.direct.state_store(), "staging") is None


def _apply_then_hang(settings: Settings, plan_json: str, run_id: str, ready: Any) -> None:
    """Child process: write the journal and five keys, tell the parent, then wait to be killed."""
    services = Services(settings)
    plan = PromotionPlan.model_validate_json(plan_json)
    open_journal(services, plan, run_id=run_id, now=datetime.now(UTC))
    apply_plan(head(plan, 5), target_sources(services, plan), retries=0)
    ready.set()
    time.sleep(600)


def test_a_sigkilled_apply_leaves_a_journal_that_the_sweep_rolls_back(rig: Rig) -> None:
    plan = make_plan(rig.direct, "development", "staging")
    before = whole_state(rig)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(
        target=_apply_then_hang, args=(rig.direct.settings, plan.model_dump_json(), RUN, ready), daemon=True
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
    stored = load_journal(store, "staging")
    assert stored is not None
    assert stored.status is JournalStatus.APPLYING

    def unknown(_run: str) -> bool:
        raise RuntimeError("the orchestrator is not answering")

    for answer in (lambda _run: True, unknown):
        reports = repair_pending(rig.direct, datetime.now(UTC), answer, budget=PATIENT)
        assert [r.outcome for r in reports] == ["skipped"], "a live (or unknown) run is left alone"
    assert load_journal(store, "staging") is not None

    reports = repair_pending(rig.direct, datetime.now(UTC), lambda _run: False, budget=PATIENT)
    assert [(r.outcome, r.run_id) for r in reports] == [("repaired", RUN)]
    assert_restored(before, whole_state(rig))
    assert load_journal(store, "staging") is None
    records = list(rig.direct.audit_log().records(action="promotion.rolled_back"))
    assert [r.details["run_id"] for r in records] == [RUN]


def test_ssm_types_and_secrets_manager_versions_come_back_by_reference(
    aws_clients: AWSClients, aws_settings: AWSSettings, aws_name_prefix: str
) -> None:
    ssm = aws_clients.ssm()
    name = f"/{aws_name_prefix}/svc/mode"
    ssm.put_parameter(Name=name, Value="strict", Type="String")
    created = f"/{aws_name_prefix}/svc/new"
    sm = aws_clients.secretsmanager()
    secret_id = f"{aws_name_prefix}/db"
    old_version = sm.create_secret(Name=secret_id, SecretString='{"password": "sm-old-9f3e"}')["VersionId"]
    entries = [
        SSMParameterEntry(source="s", paths=("svc.mode",), name=name, version=1, parameter_type="String"),
        SSMParameterEntry(source="s", paths=("svc.new",), name=created, version=None),
        SecretsManagerEntry(source="m", paths=("db.password",), secret_id=secret_id, version_id=old_version),
    ]
    ssm.put_parameter(Name=name, Value="lenient", Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name=created, Value="x", Type="String")
    sm.put_secret_value(SecretId=secret_id, SecretString='{"password": "sm-new-77aa"}')
    assert "sm-old-9f3e" not in json.dumps([e.model_dump(mode="json") for e in entries])

    def clients() -> AWSClients:
        return AWSClients(aws_settings)

    restorers = [
        SSMParameterRestorer(entries[0], clients),
        SSMParameterRestorer(entries[1], clients),
        SecretsManagerRestorer(entries[2], clients),
    ]
    result = restore_within_budget(restorers, PATIENT)
    assert result.verified, result.problems
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (parameter["Value"], parameter["Type"]) == ("strict", "String")
    assert not ssm.get_parameters(Names=[created])["Parameters"]
    # AWS reads AWSCURRENT by default; moto's default ignores UpdateSecretVersionStage, so name the stage
    current = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    assert current["VersionId"] == old_version
    assert json.loads(current["SecretString"]) == {"password": "sm-old-9f3e"}
