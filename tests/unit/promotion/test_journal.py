"""The rollback journal and the budgeted rollback without servers: the retry loop on a fake clock, the
sweep's decisions, a damaged journal, secret-looking leaves, and a whole journal -> rollback -> sweep cycle
over the file-only catalog (real files, a real file state store, a real audit log)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envsteward.errors import IntegrityError, PermanentError, TransientError
from envsteward.promotion import apply_plan
from envsteward.promotion import lock as promotion_lock
from envsteward.promotion.journal import (
    JournalStatus,
    LeafEntry,
    PendingRollbackError,
    RepairClaim,
    RollbackJournal,
    ensure_no_pending,
    journal_key,
    load_journal,
    open_journal,
    set_status,
)
from envsteward.promotion.repair import (
    LeafEntryRestorer,
    RetryBudget,
    RollbackPendingError,
    decide_repair,
    repair_pending,
    restore_within_budget,
    roll_back_with_budget,
    rollback_status,
)
from envsteward.promotion.runbook import make_plan, target_sources
from envsteward.services import Services
from envsteward.settings import Settings
from tests.unit.promotion._catalog import write_catalog

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Store:
    """An entry whose store is down until ``up_at`` (on the fake clock)."""

    def __init__(self, label: str, keys: tuple[str, ...], clock: FakeClock, up_at: float = 0.0) -> None:
        self.label, self.keys, self.clock, self.up_at = label, keys, clock, up_at
        self.restored = False
        self.calls = 0

    def restore(self) -> None:
        self.calls += 1
        if self.clock.now < self.up_at:
            raise TransientError("connection refused", system="vault", operation=f"kv read {self.label}")
        self.restored = True

    def verify(self) -> str | None:
        return None if self.restored else "differs"


def test_entries_whose_store_answers_are_restored_while_others_are_still_down() -> None:
    clock = FakeClock()
    up = Store("file flags", ("feature_flags.x",), clock)
    later = Store("ssm /p/a", ("services.a",), clock, up_at=7.0)
    never = Store("vault secret/p/db", ("app.db.pool", "app.db.host"), clock, up_at=1e9)
    budget = RetryBudget(seconds=10, first_delay_seconds=0.5, max_delay_seconds=2, jitter=0.5)
    result = restore_within_budget(
        [never, up, later], budget, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
    )
    assert [o.restored for o in result.outcomes] == [False, True, True]
    assert up.calls == 1
    assert later.restored
    assert result.keys_left == ("app.db.pool", "app.db.host")
    assert result.problems == (
        "vault secret/p/db: restore failed: vault: kv read vault secret/p/db: connection refused",
    )
    assert clock.now == pytest.approx(10.0), "it kept trying until the budget ended, and no longer"
    assert never.calls >= 6, "backoff capped at 2 s (times jitter) over 10 s"
    assert max(clock.sleeps) <= 2.0


def test_the_last_attempt_happens_at_the_deadline() -> None:
    clock = FakeClock()
    late = Store("ssm /p/a", ("services.a",), clock, up_at=9.99)
    budget = RetryBudget(seconds=10, first_delay_seconds=8, max_delay_seconds=8, jitter=0)
    result = restore_within_budget([late], budget, clock=clock, sleep=clock.sleep)
    assert result.verified, "a store back 0.01 s before the end is still caught"


def test_a_permanent_error_stops_that_entry_only() -> None:
    clock = FakeClock()

    class Denied(Store):
        def restore(self) -> None:
            self.calls += 1
            raise PermanentError("permission denied", system="aws", operation="ssm put_parameter /p/b")

    denied = Denied("ssm /p/b", ("services.b",), clock)
    slow = Store("file f", ("f.x",), clock, up_at=3)
    result = restore_within_budget([denied, slow], RetryBudget(seconds=30), clock=clock, sleep=clock.sleep)
    assert denied.calls == 1
    assert result.outcomes[0].gave_up
    assert result.keys_left == ("services.b",)
    assert clock.now < 30, "nothing left to wait for once the other entry is restored"


def _journal(**update: Any) -> RollbackJournal:
    base = RollbackJournal(
        run_id="run-1",
        source="development",
        target="staging",
        plan_hash="h",
        created_at=NOW,
        updated_at=NOW,
        apply_deadline=NOW + timedelta(minutes=30),
        status=JournalStatus.APPLYING,
        changes=("a.b",),
        entries=(),
    )
    return base.model_copy(update=update)


@pytest.mark.parametrize(
    ("journal", "active", "repair", "why"),
    [
        (_journal(), True, False, "still running"),
        (_journal(), None, False, "cannot tell"),
        (_journal(), False, True, "no longer running"),
        (_journal(status=JournalStatus.ROLLING_BACK), False, True, "no longer running"),
        (_journal(status=JournalStatus.ROLLBACK_PENDING), True, True, "ran out of budget"),
        (_journal(apply_deadline=NOW - timedelta(seconds=1)), True, True, "deadline"),
        (
            _journal(
                status=JournalStatus.ROLLBACK_PENDING,
                claim=RepairClaim(by="other", until=NOW + timedelta(minutes=1)),
            ),
            False,
            False,
            "another sweep",
        ),
        (
            _journal(
                status=JournalStatus.ROLLBACK_PENDING,
                claim=RepairClaim(by="other", until=NOW - timedelta(minutes=1)),
            ),
            False,
            True,
            "ran out of budget",
        ),
    ],
)
def test_the_sweep_decides_from_status_deadline_and_run_state(
    journal: RollbackJournal, active: bool | None, repair: bool, why: str
) -> None:
    decision = decide_repair(journal, NOW, active, claimant="me")
    assert decision.repair is repair
    assert why in decision.reason


def test_a_secret_looking_leaf_is_not_journaled_and_never_claimed_restored() -> None:
    entry = LeafEntry(source="x", paths=("app.db.password",), key_path=("db", "password"), state="manual")
    assert "value" not in json.dumps(entry.model_dump(mode="json")).replace('"value": null', "")

    class Source:
        name = "x"
        writable = True

        def read(self) -> dict[str, Any]:
            return {"db": {"password": "hunter2-not-journaled"}}

        def write(self, key_path: tuple[str, ...], value: Any) -> None:
            raise AssertionError("must not write")

    restorer = LeafEntryRestorer(entry, Source)
    result = restore_within_budget([restorer], RetryBudget(seconds=1))
    assert not result.verified
    assert result.keys_left == ("app.db.password",)
    assert "check it by hand" in result.problems[0]
    assert "hunter2" not in result.problems[0]


@pytest.fixture
def services(tmp_path: Path) -> Services:
    folder = write_catalog(tmp_path / "catalog")
    live = folder / "live"
    (live / "development" / "app.json").write_text(json.dumps({"database": {"pool_size": 20}}))
    (live / "development" / "flags.json").write_text(json.dumps({"new_checkout": True, "countries": ["DE"]}))
    (live / "staging" / "app.json").write_text(json.dumps({"database": {"pool_size": 10}}, indent=4))
    return Services(Settings(catalog=folder, home=tmp_path / "home"))


def _files(services: Services) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((services.catalog().root / "live" / "staging").iterdir())}


def test_file_sources_round_trip_through_journal_rollback_and_sweep(services: Services) -> None:
    plan = make_plan(services, "development", "staging")
    assert {c.target_source for c in plan.changes} == {"vault-app", "flags"}
    before = _files(services)
    store = services.state_store()
    promotion_lock.acquire(
        store,
        target="staging",
        source="development",
        run_id="run-1",
        requested_by="alice",
        now=NOW,
        expires_at=NOW + timedelta(hours=1),
        is_active=lambda _run: True,
    )
    journal = open_journal(services, plan, run_id="run-1", now=NOW)
    assert open_journal(services, plan, run_id="run-1", now=NOW) == journal, "idempotent for its run"
    with pytest.raises(PendingRollbackError, match="run-1"):
        ensure_no_pending(store, "staging", "run-2")
    ensure_no_pending(store, "staging", "run-1")

    apply_plan(plan, target_sources(services, plan))
    assert _files(services) != before
    result = roll_back_with_budget(services, journal, budget=RetryBudget(seconds=5))
    assert len(result.restored) == 2
    assert _files(services) == before, "byte for byte, indentation included"
    assert load_journal(store, "staging") is None
    assert not list((services.settings.home / "journal").rglob("*.bin")), "the file copies are removed"

    # a run killed mid-apply: the sweep rolls it back, audits with the run id and releases the lease
    journal = open_journal(services, plan, run_id="run-1", now=NOW)
    apply_plan(plan, target_sources(services, plan))
    assert rollback_status(services, "staging")[0].startswith("staging: applying")
    reports = repair_pending(services, NOW, lambda _run: False)
    assert [(r.outcome, r.run_id, r.lease_released) for r in reports] == [("repaired", "run-1", True)]
    assert _files(services) == before
    assert rollback_status(services) == []
    [record] = services.audit_log().records(action="promotion.rolled_back")
    assert record.details["run_id"] == "run-1"
    assert record.target == "promotion/development->staging"


def test_a_tampered_file_copy_is_never_restored(services: Services) -> None:
    plan = make_plan(services, "development", "staging")
    journal = open_journal(services, plan, run_id="run-1", now=NOW)
    apply_plan(plan, target_sources(services, plan))
    changed = _files(services)
    for copy in (services.settings.home / "journal").rglob("*.bin"):
        copy.write_bytes(b"{}")
    with pytest.raises(RollbackPendingError) as raised:
        roll_back_with_budget(services, journal, budget=RetryBudget(seconds=0.5, first_delay_seconds=0.1))
    assert "does not match its SHA-256" in str(raised.value)
    assert _files(services) == changed
    stored = load_journal(services.state_store(), "staging")
    assert stored is not None
    assert stored.status is JournalStatus.ROLLBACK_PENDING
    assert set(stored.keys_left) == {c.path for c in plan.changes}


def test_a_damaged_journal_is_an_integrity_error_naming_the_field(services: Services) -> None:
    store = services.state_store()
    store.put(journal_key("staging"), {"run_id": "r", "status": "sideways"})
    with pytest.raises(IntegrityError, match="promotion-journal:staging"):
        load_journal(store, "staging")


def test_status_changes_only_touch_the_same_runs_journal(services: Services) -> None:
    plan = make_plan(services, "development", "staging")
    journal = open_journal(services, plan, run_id="run-1", now=NOW)
    other = journal.model_copy(update={"run_id": "run-2"})
    store = services.state_store()
    assert set_status(store, other, JournalStatus.ROLLBACK_PENDING, now=NOW) is None
    stored = load_journal(store, "staging")
    assert stored is not None
    assert stored.status is JournalStatus.APPLYING
