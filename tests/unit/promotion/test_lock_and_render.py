"""The per-target lease and the plan's rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envsteward.adapters.state_fs import FileStateStore
from envsteward.catalog import load_catalog
from envsteward.promotion import plan_promotion, render_plan_markdown, render_plan_text
from envsteward.promotion.lock import PromotionLockedError, acquire, holder, release
from tests.unit.promotion._catalog import live_tree, write_catalog

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def lease(store: FileStateStore, run_id: str, *, now: datetime = NOW, active: bool = True) -> object:
    return acquire(
        store,
        target="staging",
        source="development",
        run_id=run_id,
        requested_by="dave",
        now=now,
        expires_at=now + timedelta(hours=2),
        is_active=lambda _: active,
    )


def test_one_promotion_per_target(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    lease(store, "run-1")
    lease(store, "run-1")  # re-entrant: a resumed run re-acquires
    with pytest.raises(
        PromotionLockedError, match=r"already in progress: flow run run-1 .*requested by dave"
    ):
        lease(store, "run-2")
    assert not release(store, "staging", "run-2")
    assert release(store, "staging", "run-1")
    lease(store, "run-2")
    assert holder(store, "staging")["run_id"] == "run-2"  # type: ignore[index]


def test_a_stale_lease_is_taken_over(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    lease(store, "run-1")
    taken = lease(store, "run-2", active=False)
    assert taken.replaced["run_id"] == "run-1"  # type: ignore[attr-defined]
    later = lease(store, "run-3", now=NOW + timedelta(hours=3))
    assert later.replaced["run_id"] == "run-2"  # type: ignore[attr-defined]


def test_the_markdown_shows_a_diff_and_no_secret(tmp_path: Path) -> None:
    catalog = load_catalog(write_catalog(tmp_path / "catalog"))
    secret = "pa55-never-in-markdown"
    source = live_tree({"database": {"password": secret, "pool_size": 20}}, {"api": {"image": "a:2"}}, {})
    target = live_tree({"database": {"password": "other", "pool_size": 10}}, {"api": {"image": "a:1"}}, {})
    result = plan_promotion(
        catalog, "development", "staging", source, target, secret_exists=lambda ref: False
    )
    markdown = render_plan_markdown(result)
    assert '- "a:1"\n+ "a:2"' in markdown
    assert "**Blocked:**" in markdown
    assert "does not exist in staging's secret store" in markdown
    assert "| `app.database.password` | environment-specific" in markdown
    text = render_plan_text(result)
    assert 'services.api.image: "a:1" → "a:2"' in text
    assert secret not in markdown + text + result.model_dump_json()


def _store_lease(store: FileStateStore, **fields: object) -> None:
    from envsteward.promotion.lock import lock_key

    record = {"target": "staging", "source": "development", "run_id": "run-1", "requested_by": "dave"}
    record |= {"acquired_at": NOW.isoformat(), **fields}
    store.update(lock_key("staging"), lambda _: record)


def test_lease_expiry_compares_times_not_text(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    # 11:00 at UTC-3 is 14:00 UTC: live at 12:00 UTC, though its text sorts before NOW's
    _store_lease(store, expires_at="2026-05-01T11:00:00-03:00")
    with pytest.raises(PromotionLockedError):
        lease(store, "run-2")
    # 13:00 at UTC+2 is 11:00 UTC: expired, though its text sorts after NOW's
    _store_lease(store, expires_at="2026-05-01T13:00:00+02:00")
    assert lease(store, "run-2").replaced["run_id"] == "run-1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("expires_at", [None, "", "tomorrow"])
def test_a_lease_without_a_readable_expiry_is_held_while_its_run_may_be_active(
    tmp_path: Path, expires_at: str | None
) -> None:
    from envsteward.promotion.lock import lease_expired

    store = FileStateStore(tmp_path)
    fields = {} if expires_at is None else {"expires_at": expires_at}
    _store_lease(store, **fields)
    assert not lease_expired({**fields}, NOW)
    with pytest.raises(PromotionLockedError):
        lease(store, "run-2")
    assert lease(store, "run-2", active=False).run_id == "run-2"  # type: ignore[attr-defined]


def test_a_naive_expiry_is_taken_as_utc() -> None:
    from envsteward.promotion.lock import lease_expired

    assert lease_expired({"expires_at": "2026-05-01T11:59:00"}, NOW)
    assert not lease_expired({"expires_at": "2026-05-01T12:01:00"}, NOW)
