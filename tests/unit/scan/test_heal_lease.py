"""The drift scan's heal lease on the real file state store: one healer, a dead or expired one replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from envsteward.adapters.state_fs import FileStateStore
from envsteward.scan import heal_lease

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
LATER = NOW + timedelta(minutes=14)


def _store(tmp_path: Path) -> FileStateStore:
    return FileStateStore(tmp_path / "state")


def test_a_live_holder_keeps_the_lease(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert heal_lease.acquire(store, "a", now=NOW, expires_at=LATER, is_active=lambda _r: True) is None
    assert heal_lease.acquire(store, "b", now=NOW, expires_at=LATER, is_active=lambda _r: True) == "a"
    assert heal_lease.acquire(store, "a", now=NOW, expires_at=LATER, is_active=lambda _r: True) is None


def test_a_finished_or_expired_holder_is_replaced(tmp_path: Path) -> None:
    store = _store(tmp_path)
    heal_lease.acquire(store, "a", now=NOW, expires_at=LATER, is_active=lambda _r: True)
    assert heal_lease.acquire(store, "b", now=NOW, expires_at=LATER, is_active=lambda _r: False) is None
    assert (
        heal_lease.acquire(
            store, "c", now=LATER, expires_at=LATER + timedelta(minutes=14), is_active=lambda _r: True
        )
        is None
    )
    assert store.get(heal_lease.LEASE_KEY)["run_id"] == "c"  # type: ignore[index]


def test_an_unreadable_expiry_fails_closed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put(heal_lease.LEASE_KEY, {"run_id": "a", "expires_at": "soon"})
    assert heal_lease.acquire(store, "b", now=LATER, expires_at=LATER, is_active=lambda _r: True) == "a"


def test_only_the_holder_releases(tmp_path: Path) -> None:
    store = _store(tmp_path)
    heal_lease.acquire(store, "a", now=NOW, expires_at=LATER, is_active=lambda _r: True)
    assert heal_lease.release(store, "b") is False
    assert heal_lease.release(store, "a") is True
    assert store.get(heal_lease.LEASE_KEY) is None
