"""DR drills of a PostgreSQL backup, end to end against real services: the machine's PostgreSQL (source and
drill server), moto S3 in two regions (primary + DR replica), OpenBao transit wrapping the data keys.

Covered (issue 6, "Done when"): a passing drill with exact RTO and RPO from an injected clock; a corrupted
replica; a missing replica; a backup whose restored data does not match its manifest; a missed RPO target
reported as a missed target; a failing smoke query; and after EVERY one of them the scratch database is
gone. Also: the verified-by-drill mark, the audit records, random choice among kept backups, and that a
seeded secret value appears nowhere in the record, the report or the audit log.

The helpers at the top are shared with ``test_drill_vault.py``.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envsteward.backup import data_object_key, read_manifest, write_backup
from envsteward.backup.drill_marks import read_drill_mark
from envsteward.backup.manifest import TableChecksum
from envsteward.backup.pipeline import new_backup_id
from envsteward.backup.replica import replicate_backup
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.sources.postgres import PostgresBackupSource
from envsteward.backup.stores import backup_stores
from envsteward.drill import (
    DrillRecord,
    DrillStatus,
    PhaseName,
    load_history,
    render_markdown,
    run_drill,
    save_drill,
    table_rows,
)
from envsteward.services import Services
from tests.fixtures.aws import DR_REGION
from tests.integration.test_backup_runner import Setup, audit_text, dbname_of, pg_url, write_catalog

SEEDED_SECRET = "drill-seeded-row-value-9c1e77ab"


# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------


class FakeClock:
    """A clock that moves ``step`` forward on every call (the drill reads it at each step's start/end)."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        value = self.now
        self.now += self.step
        return value


def drill_env(
    name: str,
    backups: list[dict[str, Any]],
    drill: dict[str, Any] | None = None,
    *,
    health_checks: list[dict[str, Any]] | None = None,
    notify: list[str] | None = None,
) -> dict[str, Any]:
    env: dict[str, Any] = {"name": name, "tier": "development", "backups": backups, "notify": notify or []}
    if drill is not None:
        env["drill"] = drill
    if health_checks is not None:
        env["health_checks"] = health_checks
    return env


def scratch_databases(postgres_dsn_base: str, token: str) -> list[str]:
    """Every database whose name ends with the drill's token (what the drill created, or left behind)."""
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'envsteward_drill_%%' AND datname LIKE %s",
            (f"%\\_{token}",),
        ).fetchall()
    return [str(row[0]) for row in rows]


def flip_byte(store: Any, key: str, offset: int = -40) -> None:
    data = bytearray(store.get_bytes(key))
    data[offset] ^= 0x01
    store.put_bytes(key, bytes(data))


@dataclass
class PgDrill:
    """A catalog with one postgres target (replicated to DR) and a drill spec; services over S3 + OpenBao."""

    services: Services
    source_dsn: str
    postgres_dsn_base: str

    def backup(self) -> str:
        result = run_backup_target(self.services, plan_backups(self.services.catalog())[0])
        assert result.status == "ok", result.error
        assert result.backup is not None
        return result.backup.backup_id

    def consistent_at(self, backup_id: str) -> datetime:
        return read_manifest(backup_stores(self.services).primary, backup_id).consistent_at

    def drill(self, clock: FakeClock, **options: Any) -> tuple[DrillRecord, str]:
        token = secrets.token_hex(4)
        record = run_drill(self.services, "prod", clock=clock, token=token, **options)
        return record, token

    def assert_scratch_gone(self, record: DrillRecord, token: str) -> None:
        assert scratch_databases(self.postgres_dsn_base, token) == [], (
            f"scratch left behind: {record.scratch}"
        )


@pytest.fixture
def pg_drill(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_db: str, postgres_dsn_base: str
) -> Callable[..., PgDrill]:
    """``(store="s3", drill=..., key_provider="vault_transit") -> PgDrill``."""

    def make(
        *,
        store: str = "s3",
        key_provider: str = "vault_transit",
        drill: dict[str, Any] | None = None,
        replica: bool = True,
        health_checks: list[dict[str, Any]] | None = None,
    ) -> PgDrill:
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, note text)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, customer int, total numeric)"
            )
            conn.execute(
                "INSERT INTO customers VALUES (1, %s), (2, 'plain') ON CONFLICT DO NOTHING", (SEEDED_SECRET,)
            )
            conn.execute("INSERT INTO orders VALUES (10, 1, 9.99), (11, 2, 1.5) ON CONFLICT DO NOTHING")
        setup = Setup(tmp_path=tmp_path, store=store, aws=request.getfixturevalue("aws_settings"))
        if store == "s3":
            setup.buckets = request.getfixturevalue("s3_buckets")
        target: dict[str, Any] = {
            "name": "orders-db",
            "kind": "postgres",
            "dsn": pg_url(dbname_of(postgres_db)),
        }
        if key_provider == "vault_transit":
            setup.vault = request.getfixturevalue("vault_settings")
            target |= {
                "key_provider": "vault_transit",
                "key_id": request.getfixturevalue("vault_server").transit_key,
            }
        if replica:
            target["replica_region"] = DR_REGION
        spec = {
            "server_dsn": "postgresql://postgres@127.0.0.1:5432/postgres",
            "smoke_queries": [
                {"name": "customers-present", "sql": "SELECT id FROM customers", "min_rows": 2},
                {"name": "order-total", "sql": "SELECT sum(total)::text FROM orders", "expect": "11.49"},
            ],
        } | (drill or {})
        catalog = write_catalog(
            tmp_path / "catalog", [drill_env("prod", [target], spec, health_checks=health_checks)]
        )
        return PgDrill(setup.services(catalog), postgres_db, postgres_dsn_base)

    return make


START_OFFSET = timedelta(minutes=2)
STEP = timedelta(seconds=30)


# ---------------------------------------------------------------------------------------------------------
# a passing drill
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("store", "keys"), [("s3", "vault_transit"), ("filesystem", "local")])
def test_a_passing_drill_measures_rto_and_rpo_and_marks_the_backup(
    pg_drill: Callable[..., PgDrill], store: str, keys: str
) -> None:
    drill = pg_drill(
        store=store,
        key_provider=keys,
        health_checks=[
            {"name": "db", "kind": "postgres", "dsn": "postgresql://postgres@127.0.0.1:5432/postgres"},
            {"name": "api", "kind": "http", "url": "http://127.0.0.1:9/healthz"},
        ],
    )
    backup_id = drill.backup()
    consistent_at = drill.consistent_at(backup_id)
    clock = FakeClock(consistent_at + START_OFFSET, STEP)

    record, token = drill.drill(clock)

    assert record.status is DrillStatus.PASSED, (record.failed_phase, record.error)
    assert record.backup_id == backup_id
    assert record.region == "dr"
    assert record.store.endswith("objects-dr") or (store == "s3" and "-dr" in record.store)
    # RPO: drill start minus the backup's consistent point, exactly (the injected clock)
    assert record.started_at == consistent_at + START_OFFSET
    assert record.rpo is not None
    assert record.rpo.measured_seconds == START_OFFSET.total_seconds()
    assert record.restore_point_age_seconds == START_OFFSET.total_seconds()
    assert record.rpo.target_seconds == 5 * 60
    assert record.rpo.met is True
    # RTO: drill start to verified ready (the clock tick after the health step ended)
    health = record.phase(PhaseName.HEALTH)
    assert health is not None
    assert record.ready_at == health.finished_at + STEP
    assert record.rto_seconds == (record.ready_at - record.started_at).total_seconds()
    assert record.rto_seconds is not None
    assert record.rto_seconds > 0
    assert record.rto is not None
    assert record.rto.target_seconds == 15 * 60
    assert record.rto.met is True
    assert record.missed_targets == ()
    # every phase ran, in order, each timed by the clock; teardown after ready (not part of RTO)
    assert [phase.name for phase in record.phases] == list(PhaseName)
    assert all(phase.seconds == STEP.total_seconds() for phase in record.phases)
    teardown = record.phase(PhaseName.TEARDOWN)
    assert teardown is not None
    assert teardown.started_at >= record.ready_at
    # verification: both tables, the retargeted postgres check, both smoke queries; http check not run
    names = {(row.kind, row.name): row for row in record.verifications}
    assert names[("table", "public.customers")].ok
    assert names[("table", "public.customers")].expected.startswith("2 rows")
    assert names[("table", "public.orders")].ok
    assert names[("health", "db")].ok
    assert ("health", "api") not in names
    assert names[("smoke", "customers-present")].ok
    assert names[("smoke", "order-total")].ok
    # the scratch database existed under the documented name and is gone
    assert record.scratch == f"envsteward_drill_prod_{token}"
    assert record.scratch_removed is True
    drill.assert_scratch_gone(record, token)
    check_side_effects(drill, record, backup_id)


def check_side_effects(drill: PgDrill, record: DrillRecord, backup_id: str) -> None:
    """After a passing drill: the mark, the audit records, no seeded data anywhere, the history."""
    stores = backup_stores(drill.services)
    # verified-by-drill mark in the store it was restored from
    assert record.marked_verified
    assert stores.dr is not None
    mark = read_drill_mark(stores.dr, backup_id)
    assert mark is not None
    assert mark.drill_id == record.drill_id
    # audit: started, then passed
    actions = [r.action for r in drill.services.audit_log().records() if r.action.startswith("drill.")]
    assert actions == ["drill.started", "drill.passed"]
    passed = next(r for r in drill.services.audit_log().records() if r.action == "drill.passed")
    assert passed.details["rto"]["measured_seconds"] == record.rto_seconds
    assert passed.details["backup_id"] == backup_id
    # no seeded data anywhere in what the drill produced
    text = json.dumps(record.as_json()) + render_markdown(record) + json.dumps(table_rows(record))
    assert SEEDED_SECRET not in text
    assert SEEDED_SECRET not in audit_text(drill.services)
    # history round trip
    save_drill(drill.services.state_store(), record)
    [stored] = load_history(drill.services.state_store(), "prod")
    assert stored.drill_id == record.drill_id
    assert stored.rto_seconds == record.rto_seconds
    assert stored.status is DrillStatus.PASSED


def test_a_slow_drill_misses_its_rto_target(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill(drill={"rto_target_minutes": 2})
    backup_id = drill.backup()
    clock = FakeClock(drill.consistent_at(backup_id) + START_OFFSET, timedelta(minutes=1))
    record, token = drill.drill(clock)
    assert record.status is DrillStatus.TARGET_MISSED
    assert record.missed_targets == ("RTO",)
    assert record.rto_seconds is not None
    assert record.rto_seconds > 120
    drill.assert_scratch_gone(record, token)


# ---------------------------------------------------------------------------------------------------------
# failures: nothing restored from a bad backup; the scratch target is always gone
# ---------------------------------------------------------------------------------------------------------


def test_a_missed_rpo_target_is_reported_not_raised(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill()
    backup_id = drill.backup()
    clock = FakeClock(drill.consistent_at(backup_id) + timedelta(minutes=10), STEP)

    record, token = drill.drill(clock)

    assert record.status is DrillStatus.TARGET_MISSED
    assert record.failed_phase is None
    assert record.error is None
    assert record.missed_targets == ("RPO",)
    assert record.rpo is not None
    assert record.rpo.measured_seconds == 600
    assert record.rpo.met is False
    assert record.rto is not None
    assert record.rto.met is True
    assert record.scratch_removed is True
    drill.assert_scratch_gone(record, token)
    # the data did restore and verify: the backup is proven restorable
    assert record.marked_verified
    actions = [r.action for r in drill.services.audit_log().records() if r.action.startswith("drill.")]
    assert actions == ["drill.started", "drill.target_missed"]


def test_a_corrupted_replica_fails_the_drill_and_restores_nothing(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill()
    backup_id = drill.backup()
    stores = backup_stores(drill.services)
    assert stores.dr is not None
    flip_byte(stores.dr, data_object_key(backup_id))

    record, token = drill.drill(FakeClock(drill.consistent_at(backup_id) + START_OFFSET, STEP))

    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.FETCH_VERIFY
    assert record.error is not None
    assert backup_id in record.error
    assert [phase.name for phase in record.phases] == [
        PhaseName.PREPARE,
        PhaseName.CHOOSE,
        PhaseName.FETCH_VERIFY,
    ]
    assert record.scratch_removed is None, "an integrity failure must not create the scratch target"
    assert record.rto is not None
    assert record.rto.measured_seconds is None
    assert not record.marked_verified
    assert read_drill_mark(stores.dr, backup_id) is None
    drill.assert_scratch_gone(record, token)
    actions = [r.action for r in drill.services.audit_log().records() if r.action.startswith("drill.")]
    assert actions == ["drill.started", "drill.failed"]


def test_a_missing_replica_fails_the_drill(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill(replica=False)
    backup_id = drill.backup()
    clock = FakeClock(drill.consistent_at(backup_id) + START_OFFSET, STEP)

    by_id, token = drill.drill(clock, backup=backup_id)
    assert by_id.status is DrillStatus.FAILED
    assert by_id.failed_phase is PhaseName.CHOOSE
    assert by_id.error is not None
    assert f"backup {backup_id} has no complete copy in the dr store" in by_id.error
    assert by_id.scratch_removed is None
    drill.assert_scratch_gone(by_id, token)

    latest, token = drill.drill(clock)
    assert latest.status is DrillStatus.FAILED
    assert latest.error is not None
    assert "no complete backup of this target in the dr store" in latest.error
    assert latest.rpo is not None
    assert latest.rpo.measured_seconds is None
    drill.assert_scratch_gone(latest, token)

    # the same backup restores from the primary region
    clock = FakeClock(drill.consistent_at(backup_id) + START_OFFSET, STEP)
    primary, token = drill.drill(clock, backup=backup_id, region="primary")
    assert primary.status is DrillStatus.PASSED, primary.error
    drill.assert_scratch_gone(primary, token)


def test_restored_data_that_differs_from_the_manifest_fails_the_drill(
    pg_drill: Callable[..., PgDrill],
) -> None:
    drill = pg_drill()
    stores = backup_stores(drill.services)
    assert stores.dr is not None
    # a backup whose dump is sound but whose recorded checksums are not (a buggy or lying dump)
    source = PostgresBackupSource("orders-db", pg_url(dbname_of(drill.source_dsn)))
    keys = drill.services.key_provider(
        "vault_transit", drill.services.catalog().environment("prod").backups[0].key_id
    )
    backup_id = new_backup_id("prod", "orders-db")
    with source.dump() as stream:

        def wrong_tables() -> tuple[TableChecksum, ...]:
            tables = list(stream.tables or ())
            tables[0] = tables[0].model_copy(update={"rows": tables[0].rows + 1})
            return tuple(tables)

        manifest = write_backup(
            stores.primary,
            keys,
            backup_id,
            stream,
            environment="prod",
            source=stream.source_info(),
            started_at=stream.started_at,
            consistent_at=stream.consistent_at,
            tables=wrong_tables,
            extra={"key_provider": "vault_transit"},
        )
    replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)

    record, token = drill.drill(FakeClock(manifest.consistent_at + START_OFFSET, STEP))

    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.VERIFY_DATA
    assert record.error is not None
    assert "does not match the backup's manifest" in record.error
    bad = [row for row in record.verifications if not row.ok]
    assert [row.name for row in bad] == ["public.customers"]
    assert bad[0].expected.startswith("3 rows")
    assert bad[0].actual.startswith("2 rows")
    assert record.scratch_removed is True
    assert record.phase(PhaseName.HEALTH) is None
    drill.assert_scratch_gone(record, token)
    assert not record.marked_verified


def _backup_with_tables(
    drill: PgDrill, *, compress_level: int = 0, tables_after: str | None = None
) -> tuple[str, Any]:
    """Back the source up outside the runner; with ``tables_after``, the manifest records the checksums of
    the source AFTER that SQL ran (the dump has the data from before): the restored copy then differs from
    the manifest by exactly that change."""
    from envsteward.adapters.postgres import PostgresClient
    from envsteward.backup.sources.postgres import database_table_summaries

    stores = backup_stores(drill.services)
    assert stores.dr is not None
    source = PostgresBackupSource(
        "orders-db", pg_url(dbname_of(drill.source_dsn)), compress_level=compress_level
    )
    keys = drill.services.key_provider(
        "vault_transit", drill.services.catalog().environment("prod").backups[0].key_id
    )
    backup_id = new_backup_id("prod", "orders-db")
    with source.dump() as stream:

        def tables() -> tuple[TableChecksum, ...]:
            if tables_after is None:
                return stream.tables or ()
            with psycopg.connect(drill.source_dsn, autocommit=True) as conn:
                conn.execute(tables_after)
            return database_table_summaries(PostgresClient(drill.source_dsn), stream.tables)

        manifest = write_backup(
            stores.primary,
            keys,
            backup_id,
            stream,
            environment="prod",
            source=stream.source_info(),
            started_at=stream.started_at,
            consistent_at=stream.consistent_at,
            tables=tables,
            extra={"key_provider": "vault_transit"},
        )
    replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)
    return backup_id, manifest


@pytest.mark.parametrize(
    ("compress_level", "algorithm"),
    [
        (0, "pg-copy-xxh3-framed128/v5"),
        (0, "pg-copy-xxh3-stream128/v4"),
        (0, "pg-copy-xxh3-sum128/v3"),
        (1, "pg-md5-sum128/v2"),
    ],
)
def test_a_drill_verifies_backups_of_either_checksum_algorithm(
    pg_drill: Callable[..., PgDrill], compress_level: int, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backups made before v5 (v4 ``pg-copy-xxh3-stream128`` and v3 ``pg-copy-xxh3-sum128``, made here by
    switching the dump's family back; server-side ``pg-md5-sum128/v2``: pg_dump's own compression on, which
    falls back to it) still verify, and v5 (the default) does: the drill summarises the restored copy with
    the manifest's algorithm."""
    from envsteward.backup.sources import postgres as pg_source

    if compress_level == 0:
        monkeypatch.setattr(pg_source, "DUMP_CHECKSUM_FAMILY", algorithm)
    drill = pg_drill()
    _backup_id, manifest = _backup_with_tables(drill, compress_level=compress_level)
    assert manifest.tables
    assert all(str(table.algorithm).startswith(algorithm) for table in manifest.tables)
    record, token = drill.drill(FakeClock(manifest.consistent_at + START_OFFSET, STEP))
    assert record.status is DrillStatus.PASSED, record.error
    tables = [row for row in record.verifications if row.kind == "table"]
    assert [row.name for row in tables] == ["public.customers", "public.orders"]
    assert all(row.ok for row in tables)
    drill.assert_scratch_gone(record, token)


@pytest.mark.parametrize(
    ("change", "table", "expected", "actual"),
    [
        # one byte of one value: 'plain' -> 'plaim' (same row count, different checksum)
        ("UPDATE customers SET note = 'plaim' WHERE id = 2", "public.customers", "2 rows", "2 rows"),
        # one row: the manifest says 1 row, the restored copy has 2
        ("DELETE FROM orders WHERE id = 11", "public.orders", "1 rows", "2 rows"),
        # one row replaced by another (same count)
        ("UPDATE orders SET id = 12 WHERE id = 11", "public.orders", "2 rows", "2 rows"),
    ],
)
def test_a_restored_table_differing_by_one_byte_or_one_row_fails_the_drill(
    pg_drill: Callable[..., PgDrill], change: str, table: str, expected: str, actual: str
) -> None:
    drill = pg_drill()
    _backup_id, manifest = _backup_with_tables(drill, tables_after=change)
    assert manifest.tables
    # the default table checksums (v5) are what must catch it
    assert all(str(table.algorithm).startswith("pg-copy-xxh3-framed128/v5;") for table in manifest.tables)
    record, token = drill.drill(FakeClock(manifest.consistent_at + START_OFFSET, STEP))
    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.VERIFY_DATA
    bad = [row for row in record.verifications if not row.ok]
    assert [row.name for row in bad] == [table]
    assert bad[0].expected.startswith(expected)
    assert bad[0].actual.startswith(actual)
    assert bad[0].expected != bad[0].actual
    drill.assert_scratch_gone(record, token)


def test_a_backup_without_table_checksums_fails_the_drill_clearly(pg_drill: Callable[..., PgDrill]) -> None:
    """``table_checksums: false`` makes a backup the drill cannot verify: FAILED, never a silent pass."""
    drill = pg_drill()
    stores = backup_stores(drill.services)
    assert stores.dr is not None
    source = PostgresBackupSource("orders-db", pg_url(dbname_of(drill.source_dsn)), summarize=False)
    keys = drill.services.key_provider(
        "vault_transit", drill.services.catalog().environment("prod").backups[0].key_id
    )
    backup_id = new_backup_id("prod", "orders-db")
    with source.dump() as stream:
        manifest = write_backup(
            stores.primary,
            keys,
            backup_id,
            stream,
            environment="prod",
            source=stream.source_info(),
            started_at=stream.started_at,
            consistent_at=stream.consistent_at,
            tables=lambda: stream.tables,
            extra={"key_provider": "vault_transit"},
        )
    assert manifest.tables is None
    replicate_backup(stores.primary, stores.dr, backup_id, dr_region=DR_REGION)

    record, token = drill.drill(FakeClock(manifest.consistent_at + START_OFFSET, STEP))

    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.VERIFY_DATA
    assert record.error is not None
    assert "the backup has no table checksums to verify against" in record.error
    assert record.scratch_removed is True
    drill.assert_scratch_gone(record, token)
    assert not record.marked_verified


def test_a_failing_smoke_query_fails_the_drill_and_still_tears_down(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill(
        drill={
            "smoke_queries": [
                {
                    "name": "expects-a-value",
                    "sql": "SELECT note FROM customers WHERE id = 1",
                    "expect": "nope",
                },
                {"name": "bad-sql", "sql": "SELECT * FROM no_such_table"},
            ]
        }
    )
    backup_id = drill.backup()
    record, token = drill.drill(FakeClock(drill.consistent_at(backup_id) + START_OFFSET, STEP))
    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.HEALTH
    rows = {row.name: row for row in record.verifications if row.kind == "smoke"}
    assert rows["expects-a-value"].actual == "1+ row(s), first value differs"
    assert not rows["bad-sql"].ok
    assert record.scratch_removed is True
    drill.assert_scratch_gone(record, token)
    # the smoke query's result (the seeded value) is never echoed
    assert SEEDED_SECRET not in json.dumps(record.as_json())


def test_a_postgres_drill_without_a_drill_server_fails_clearly(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill(drill={"server_dsn": None})
    drill.backup()
    record, token = drill.drill(FakeClock(datetime.now(UTC), STEP))
    assert record.status is DrillStatus.FAILED
    assert record.failed_phase is PhaseName.PREPARE
    assert record.error is not None
    assert "drill.server_dsn" in record.error
    assert record.target == "orders-db"
    drill.assert_scratch_gone(record, token)


def test_random_picks_among_the_backups_retention_keeps(pg_drill: Callable[..., PgDrill]) -> None:
    drill = pg_drill(store="filesystem", key_provider="local")
    ids = [drill.backup() for _ in range(3)]
    newest = max(drill.consistent_at(backup_id) for backup_id in ids)
    picks = set()
    for seed in range(6):
        record, token = drill.drill(
            FakeClock(newest + START_OFFSET, STEP), backup="random", rng=random.Random(seed)
        )
        assert record.status is DrillStatus.PASSED, record.error
        assert record.backup_id in ids
        assert "retention keeps" in record.choice_reason
        # RPO is the newest backup's age, whichever one was restored
        assert record.rpo_seconds == START_OFFSET.total_seconds()
        assert record.restore_point_age_seconds is not None
        assert record.restore_point_age_seconds >= START_OFFSET.total_seconds()
        drill.assert_scratch_gone(record, token)
        picks.add(record.backup_id)
    assert len(picks) > 1, "six seeded draws over three kept backups all picked the same one"
