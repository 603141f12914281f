"""The rotation journal: one rotation of a secret at a time, a dead run's rotation found and handed over.

Runs against the real file state store (flock) and the machine's Redis, the two stores a deployment uses.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.state_fs import FileStateStore
from envsteward.adapters.state_redis import RedisStateStore
from envsteward.errors import IntegrityError
from envsteward.ports import AlertEvent, Severity, StateStore
from envsteward.rotation import journal
from envsteward.rotation.journal import RotationInProgressError, RotationJournal

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
REF = "vault://secret/prod/db#password"


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "file":
        yield FileStateStore(tmp_path / "state")
        return
    redis_store = RedisStateStore(
        "redis://127.0.0.1:6379/0", prefix=f"envsteward-test-{secrets.token_hex(4)}:"
    )
    yield redis_store
    redis_store.delete(journal.JOURNALS_KEY)
    redis_store.close()


def _journal(run_id: str, *, consumer: bool = True, now: datetime = NOW) -> RotationJournal:
    return journal.new_journal(
        environment="production",
        reference=REF,
        kind="postgres_role" if consumer else "vault_kv",
        run_id=run_id,
        has_consumer=consumer,
        now=now,
        longest_run=timedelta(minutes=30),
    )


def _alive(_run_id: str) -> bool:
    return True


def _dead(_run_id: str) -> bool:
    return False


def test_a_second_live_rotation_of_the_same_secret_is_refused_naming_the_first(store: StateStore) -> None:
    assert journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive) is None
    with pytest.raises(RotationInProgressError) as caught:
        journal.claim(store, _journal("run-b"), now=NOW + timedelta(minutes=1), is_active=_alive)
    assert "flow run run-a" in str(caught.value)
    assert [j.run_id for j in journal.open_journals(store)] == ["run-a"]


def test_the_same_run_may_claim_again_and_other_secrets_are_independent(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    assert journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive) is None  # a task retry
    other = RotationJournal(**{**_journal("run-c").__dict__, "reference": "vault://secret/prod/api#token"})
    assert journal.claim(store, other, now=NOW, is_active=_alive) is None
    assert {j.run_id for j in journal.open_journals(store)} == {"run-a", "run-c"}


def test_a_dead_runs_touched_rotation_is_handed_over_with_its_repair(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    journal.mark_consumer_touched(store, "production", REF, "run-a")
    stale = journal.claim(store, _journal("run-b"), now=NOW + timedelta(minutes=1), is_active=_dead)
    assert stale is not None
    assert stale.run_id == "run-a"
    assert stale.needs_resync
    (held,) = journal.open_journals(store)
    assert held.run_id == "run-b"
    assert held.needs_resync, "the repair is owed until the new holder has done it"
    journal.mark_resynced(store, "production", REF, "run-b")
    assert not journal.open_journals(store)[0].needs_resync


def test_a_run_still_running_past_its_deadline_counts_as_dead(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    (held,) = journal.open_journals(store)
    assert not journal.is_abandoned(held, NOW + timedelta(minutes=29), _alive)
    assert journal.is_abandoned(held, NOW + timedelta(minutes=30), _alive)
    assert journal.is_abandoned(held, NOW + timedelta(minutes=1), _dead)
    stale = journal.claim(store, _journal("run-b"), now=NOW + timedelta(minutes=31), is_active=_alive)
    assert stale is not None
    assert stale.run_id == "run-a"
    assert not stale.needs_resync  # the consumer was never touched


def test_close_removes_only_the_callers_journal(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    assert journal.close(store, "production", REF, "run-x") is False
    assert journal.close(store, "production", REF, "run-a") is True
    assert journal.open_journals(store) == []
    assert store.get(journal.JOURNALS_KEY) is None


def test_a_run_that_lost_its_journal_cannot_mark_it(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    journal.claim(store, _journal("run-b"), now=NOW + timedelta(hours=1), is_active=_alive)
    with pytest.raises(RotationInProgressError, match="no longer held by flow run run-a"):
        journal.mark_consumer_touched(store, "production", REF, "run-a")


def test_repair_failures_are_counted_so_only_the_first_is_told(store: StateStore) -> None:
    journal.claim(store, _journal("run-a"), now=NOW, is_active=_alive)
    journal.mark_consumer_touched(store, "production", REF, "run-a")
    (held,) = journal.open_journals(store)
    assert [journal.note_repair_failure(store, held) for _ in range(3)] == [1, 2, 3]
    failed = journal.repair_notification(held, repaired=False, detail="connection refused")
    assert failed.severity is Severity.CRITICAL
    assert failed.event is AlertEvent.TRIGGER
    assert "REPAIR FAILED" in failed.title
    repaired = journal.repair_notification(held, repaired=True, detail="role set")
    assert repaired.event is AlertEvent.RESOLVE
    assert repaired.dedup_key == failed.dedup_key


def test_a_damaged_record_is_an_integrity_error_not_a_guess(store: StateStore) -> None:
    store.put(journal.JOURNALS_KEY, {f"production|{REF}": {"run_id": "run-a"}})
    with pytest.raises(IntegrityError, match="rotation journal record is damaged"):
        journal.open_journals(store)
    with pytest.raises(IntegrityError):
        journal.claim(store, _journal("run-b"), now=NOW, is_active=_dead)
