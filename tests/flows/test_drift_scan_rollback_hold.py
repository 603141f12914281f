"""The drift scan runs the rollback sweep before it heals, and does not heal an environment that still has
a promotion rollback journal (a half-rolled-back target is the sweep's, not the scan's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from envsteward.adapters.aws import AWSClients
from envsteward.promotion.journal import (
    JournalStatus,
    LeafEntry,
    RollbackJournal,
    journal_key,
    load_journal,
)
from tests.flows.test_drift_scan_flow import make_platform, run_flow  # noqa: F401 - a fixture
from tests.integration.test_scan_platform import ScanPlatform

pytestmark = pytest.mark.usefixtures("prefect_harness")

RUN = "33333333-2222-4333-8444-555555555555"


def _pending_journal() -> RollbackJournal:
    """A rollback_pending journal the sweep cannot finish (a secret-looking key needs a manual check)."""
    now = datetime.now(UTC)
    return RollbackJournal(
        run_id=RUN,
        source="development",
        target="staging",
        plan_hash="0" * 64,
        created_at=now,
        updated_at=now,
        apply_deadline=now + timedelta(hours=1),
        status=JournalStatus.ROLLBACK_PENDING,
        changes=("app.database.password",),
        entries=(
            LeafEntry(
                source="vault-app",
                paths=("app.database.password",),
                key_path=("database", "password"),
                state="manual",
            ),
        ),
        keys_left=("app.database.password",),
    )


def test_a_pending_rollback_holds_the_environment_out_of_healing(
    make_platform: Any,  # noqa: F811 - the fixture imported above
    aws_clients: AWSClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envsteward.flows import drift_scan as flow_module

    monkeypatch.setattr(flow_module, "APPROVAL_TIMEOUT_SECONDS", 3)
    monkeypatch.setattr(flow_module, "APPROVAL_POLL_SECONDS", 1)
    platform: ScanPlatform = make_platform()
    platform.seed()
    ssm = aws_clients.ssm()
    concurrency = platform.ssm_name("staging", "worker", "concurrency")
    ssm.put_parameter(Name=concurrency, Value="16", Overwrite=True)  # low: healed without approval
    store = platform.services.state_store()
    record = _pending_journal().model_dump(mode="json")
    store.update(journal_key("staging"), lambda _old: record)

    _, result = run_flow(heal=True)
    assert isinstance(result, dict), result
    outcomes = {o["action_id"]: o for o in result["heal"]["outcomes"]}
    held = outcomes["staging:services.worker.concurrency"]
    assert held["result"] == "skipped"
    assert "rollback journal is pending" in held["reason"]
    assert ssm.get_parameter(Name=concurrency, WithDecryption=True)["Parameter"]["Value"] == "16", (
        "not healed"
    )
    journal = load_journal(store, "staging")
    assert journal is not None
    assert journal.attempts == 1, "the scan ran the sweep first"

    store.update(journal_key("staging"), lambda _old: None)
    _, result = run_flow(heal=True)
    outcomes = {o["action_id"]: o for o in result["heal"]["outcomes"]}
    assert outcomes["staging:services.worker.concurrency"]["result"] == "healed"
    assert ssm.get_parameter(Name=concurrency, WithDecryption=True)["Parameter"]["Value"] == "8"
