"""The inactive-slot alert's pure parts and its state: thresholds (warn by size or time, page by size or
lost WAL), the catalog's ``pitr.slot_alert`` validation with file and field, the "inactive since"
compare-and-set in a real file state store, and the notification's fix (no DSN, no password)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from envsteward.adapters.state_fs import FileStateStore
from envsteward.catalog import CatalogError, load_catalog
from envsteward.catalog.models import SlotAlertSpec
from envsteward.health.result import CheckStatus
from envsteward.health.tracker import advance
from envsteward.pitr.slot_watch import (
    MIB,
    SlotReading,
    evaluate,
    inactive_since,
    notification_for_change,
    pretty_bytes,
    slot_notification,
    slot_result,
    watch_slots,
)
from envsteward.pitr.stream import slot_name
from envsteward.ports import AlertEvent

REPO = Path(__file__).resolve().parents[3]
MINIMAL = REPO / "tests" / "data" / "catalogs" / "minimal"
SLOT = "envsteward_prod_db"
DEFAULTS = SlotAlertSpec()


def inactive(mib: float, wal_status: str = "reserved") -> SlotReading:
    return SlotReading(SLOT, exists=True, active=False, retained_bytes=int(mib * MIB), wal_status=wal_status)


@pytest.mark.parametrize(
    ("reading", "seconds", "status"),
    [
        (SlotReading(SLOT, exists=False), None, CheckStatus.UP),
        (SlotReading(SLOT, exists=True, active=True, retained_bytes=50 * 1024 * MIB), None, CheckStatus.UP),
        (inactive(100), 60, CheckStatus.UP),  # a restart in progress
        (inactive(100), 10 * 60, CheckStatus.DEGRADED),  # inactive too long
        (inactive(1024), 5, CheckStatus.DEGRADED),  # 1 GiB held
        (inactive(8 * 1024), 5, CheckStatus.DOWN),  # 8 GiB held: page
        (inactive(1, wal_status="lost"), 5, CheckStatus.DOWN),  # streaming cannot resume
    ],
)
def test_default_thresholds(reading: SlotReading, seconds: float | None, status: CheckStatus) -> None:
    found, detail = evaluate(reading, seconds, DEFAULTS)
    assert found is status, detail
    assert SLOT in detail


def test_the_detail_names_size_and_duration() -> None:
    _status, detail = evaluate(inactive(1536), 754, DEFAULTS)
    assert detail == (
        f"slot {SLOT} INACTIVE for 13m, holding 1.5 GB of WAL on the primary (warn 1.0 GB, page 8.0 GB)"
    )
    assert pretty_bytes(512) == "512 bytes"
    assert pretty_bytes(3 * 1024 * 1024 * 1024 * 1024) == "3.0 TB"


def catalog_with(tmp_path: Path, pitr_yaml: str) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(MINIMAL, root)
    path = root / "environments.yaml"
    path.write_text(path.read_text(encoding="utf-8") + pitr_yaml, encoding="utf-8")
    return root


def test_catalog_slot_alert_defaults_and_overrides(tmp_path: Path) -> None:
    plain = load_catalog(catalog_with(tmp_path / "a", "        pitr: {enabled: true}\n"))
    spec = plain.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert spec.pitr.slot_alert == SlotAlertSpec(
        warn_retained_mib=1024, warn_inactive_minutes=10, page_retained_mib=8192
    )
    tuned = load_catalog(
        catalog_with(
            tmp_path / "b",
            "        pitr:\n          enabled: true\n          slot_alert: {warn_retained_mib: 256, "
            "page_retained_mib: 2048, warn_inactive_minutes: 2.5}\n",
        )
    )
    spec = tuned.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert spec.pitr.slot_alert.page_retained_mib == 2048


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{page_retained_mib: 512}", r"page_retained_mib \(512\) must be above warn_retained_mib \(1024\)"),
        ("{warn_retained_mib: 0}", "warn_retained_mib"),
        ("{warn_inactive_minutes: -1}", "warn_inactive_minutes"),
        ("{warn_retained_mib: lots}", "warn_retained_mib"),
        ("{page_at: 1}", "unknown field 'page_at'"),
    ],
)
def test_bad_slot_alert_values_name_the_file_and_field(tmp_path: Path, settings: str, message: str) -> None:
    root = catalog_with(
        tmp_path, f"        pitr:\n          enabled: true\n          slot_alert: {settings}\n"
    )
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog(root)
    text = str(caught.value)
    assert "environments.yaml" in text
    assert "slot_alert" in text


def test_inactive_since_is_set_once_and_cleared_when_active(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    first = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    later = first + timedelta(minutes=12)
    assert inactive_since(store, "prod", "db", inactive(5), first) == first
    assert inactive_since(store, "prod", "db", inactive(9), later) == first, "the first sighting stands"
    active = SlotReading(SLOT, exists=True, active=True)
    assert inactive_since(store, "prod", "db", active, later) is None
    assert inactive_since(store, "prod", "db", inactive(1), later) == later, "a new incident starts over"
    assert inactive_since(store, "prod", "db", SlotReading(SLOT, exists=False), later) is None
    assert store.get("pitr-slot/prod/db") is None


def test_time_alone_raises_a_small_slot_to_a_warning(tmp_path: Path) -> None:
    from envsteward.catalog.models import PostgresBackup

    store = FileStateStore(tmp_path / "state")
    spec = PostgresBackup.model_validate(
        {"name": "db", "kind": "postgres", "dsn": "postgresql://app@db:5432/app", "pitr": {"enabled": True}}
    )
    start = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert slot_result(store, "prod", spec, inactive(1), start).status is CheckStatus.UP
    late = slot_result(store, "prod", spec, inactive(1), start + timedelta(minutes=10))
    assert late.status is CheckStatus.DEGRADED
    assert late.check == "pitr-slot.db"
    assert "INACTIVE for 10m" in late.detail


def test_the_notification_says_how_to_fix_and_resolves_with_the_same_key(tmp_path: Path) -> None:
    from envsteward.catalog.models import PostgresBackup

    store = FileStateStore(tmp_path / "state")
    spec = PostgresBackup.model_validate(
        {"name": "db", "kind": "postgres", "dsn": "postgresql://app@db:5432/app", "pitr": {"enabled": True}}
    )
    start = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    baseline, _ = advance(None, slot_result(store, "prod", spec, SlotReading(SLOT, True, True), start), 1)
    down = slot_result(store, "prod", spec, inactive(9000), start + timedelta(minutes=1))
    state, change = advance(baseline, down, 1)
    assert change is not None
    trigger = notification_for_change(change)
    assert trigger.event is AlertEvent.TRIGGER
    assert trigger.fields["slot"] == SLOT
    assert "envsteward wal stream --target prod/db" in trigger.fields["fix"]
    assert f"SELECT pg_drop_replication_slot('{SLOT}');" in trigger.fields["fix"]
    assert "8.8 GB" in trigger.text
    assert "app@db" not in repr(trigger), "the DSN is not part of the message"
    back = slot_result(store, "prod", spec, SlotReading(SLOT, True, True), start + timedelta(minutes=2))
    _, recovery = advance(state, back, 1)
    assert recovery is not None
    resolve = notification_for_change(recovery)
    assert resolve.event is AlertEvent.RESOLVE
    assert resolve.dedup_key == trigger.dedup_key
    assert "fix" not in resolve.fields


class CatalogOnly:
    """The two services :func:`watch_slots` uses; the secret resolver is the environment's, for real."""

    def __init__(self, root: Path) -> None:
        self._catalog = load_catalog(root)

    def catalog(self) -> Any:
        return self._catalog

    def resolve_secret(self, ref: Any) -> SecretStr:
        return SecretStr(os.environ[ref.location])


def test_an_unreachable_server_gives_no_result_and_keeps_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures._proc import free_port

    monkeypatch.setenv("SLOT_WATCH_TEST_PW", "never-shown-pw-51a7")
    root = catalog_with(
        tmp_path,
        "        pitr: {enabled: true, streaming: true}\n        password: secret+env://SLOT_WATCH_TEST_PW\n",
    )
    environments = root / "environments.yaml"
    text = environments.read_text(encoding="utf-8")
    environments.write_text(
        text.replace("127.0.0.1:5432/app", f"127.0.0.1:{free_port()}/app"), encoding="utf-8"
    )
    store = FileStateStore(tmp_path / "state")
    store.put("pitr-slot/prod/db", {"slot": SLOT, "inactive_since": "2026-01-01T03:00:00+00:00"})
    run = watch_slots(cast("Any", CatalogOnly(root)), store, ["dev", "prod"])
    assert run.results == []
    (line,) = run.unreadable
    assert line.startswith("prod/db: ")
    assert "never-shown-pw-51a7" not in line
    assert store.get("pitr-slot/prod/db") == {"slot": SLOT, "inactive_since": "2026-01-01T03:00:00+00:00"}


def test_the_platform_status_pitr_line_shows_a_confirmed_slot_finding(tmp_path: Path) -> None:
    from envsteward.adapters.objectstore_fs import FilesystemObjectStore
    from envsteward.catalog.models import PostgresBackup
    from envsteward.health.recording import record_result
    from envsteward.pitr.walnames import archive_prefix, wal_object_key
    from envsteward.status.gather import _pitr_line
    from envsteward.status.model import Level

    store = FileStateStore(tmp_path / "state")
    backups = FilesystemObjectStore(tmp_path / "objects")
    backups.put_bytes(wal_object_key(archive_prefix("prod", "db"), "000000010000000000000003"), b"x")
    spec = PostgresBackup.model_validate(
        {"name": "db", "kind": "postgres", "dsn": "postgresql://app@db:5432/app", "pitr": {"enabled": True}}
    )
    now = datetime.now(UTC)

    def line() -> tuple[Level, str]:
        return _pitr_line(store, backups, "prod", "db", rpo=timedelta(minutes=5), now=now)

    assert line()[0] is Level.GREEN
    record_result(store, slot_result(store, "prod", spec, inactive(9000), now), 1)
    level, text = line()
    assert level is Level.RED
    assert f"slot {SLOT} INACTIVE" in text
    later = now + timedelta(seconds=1)
    record_result(store, slot_result(store, "prod", spec, SlotReading(SLOT, True, True), later), 1)
    assert line()[0] is Level.GREEN


def test_catalog_slot_name_is_used_by_the_stream_and_the_watch(tmp_path: Path) -> None:
    from envsteward.pitr.stream import target_slot

    plain = load_catalog(catalog_with(tmp_path / "a", "        pitr: {enabled: true}\n"))
    spec = plain.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert target_slot("prod", spec) == slot_name("prod", spec.name)
    custom = load_catalog(
        catalog_with(tmp_path / "b", "        pitr: {enabled: true, slot_name: orders_stream_2}\n")
    )
    spec = custom.environment("prod").backups[0]
    assert spec.kind == "postgres"
    assert target_slot("prod", spec) == "orders_stream_2"


@pytest.mark.parametrize("name", ["Orders", "orders-stream", "", "x" * 64, "slot name", "'; DROP"])
def test_bad_slot_names_name_the_file_and_field(tmp_path: Path, name: str) -> None:
    root = catalog_with(tmp_path, f'        pitr: {{enabled: true, slot_name: "{name}"}}\n')
    with pytest.raises(CatalogError, match="slot_name") as caught:
        load_catalog(root)
    assert "environments.yaml" in str(caught.value)
    assert "lower-case letters" in str(caught.value)


def test_the_notification_names_the_custom_slot_from_the_result(tmp_path: Path) -> None:
    from envsteward.catalog.models import PostgresBackup

    spec = PostgresBackup.model_validate(
        {
            "name": "db",
            "kind": "postgres",
            "dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
            "pitr": {"enabled": True, "streaming": True, "slot_name": "my_slot"},
        }
    )
    store = FileStateStore(tmp_path / "state")
    now = datetime.now(UTC)
    baseline, _ = advance(None, slot_result(store, "prod", spec, SlotReading("my_slot", True, True), now), 1)
    reading = SlotReading("my_slot", exists=True, active=False, retained_bytes=9 * 1024 * MIB)
    _, change = advance(baseline, slot_result(store, "prod", spec, reading, now + timedelta(minutes=1)), 1)
    assert change is not None
    note = slot_notification(change)
    assert note.fields["slot"] == "my_slot"
    assert "pg_drop_replication_slot('my_slot')" in note.fields["fix"]
