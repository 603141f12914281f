"""Backup sources against real systems: PostgreSQL (pg_dump/pg_restore), SQLite files, config snapshots.

Every source is round-tripped: dump -> restore into a fresh target -> equal. Vault KV and SSM are in
``test_backup_source_secrets.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from envsteward.adapters.postgres import PostgresClient
from envsteward.adapters.registry import BACKUP_SOURCES, RESTORE_TARGETS, Clients
from envsteward.backup.manifest import TableChecksum
from envsteward.backup.sources import CHUNK_SIZE, BackupSource, RestoreTarget
from envsteward.backup.sources._tools import scrub, tool_environment, tool_error
from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget, ConfigSnapshotSource
from envsteward.backup.sources.postgres import (
    CHECKSUM_ALGORITHM,
    PostgresBackupSource,
    PostgresRestoreTarget,
    compare_tables,
    database_table_summaries,
    order_suspects,
    reorder_check,
)
from envsteward.backup.sources.sqlite import SqliteBackupSource, SqliteRestoreTarget, file_table_summaries
from envsteward.catalog import load_catalog
from envsteward.catalog.refs import SecretRef
from envsteward.catalog.rendered import RenderedConfig
from envsteward.errors import (
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from tests.fixtures.databases import postgres_dsn

PG_PASSWORD = "pg-backup-password-5e1d77"


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def scratch_db(postgres_dsn_base: str) -> Iterator[str]:
    """A second fresh database (the restore target of a drill); dropped afterwards."""
    name = f"envsteward_scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_dsn(name)
    finally:
        with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


SHOP_SCHEMA = """
CREATE SCHEMA billing;
CREATE TABLE customers (
    id int PRIMARY KEY, name text NOT NULL, email text, profile jsonb, avatar bytea,
    joined timestamptz, score double precision, balance numeric(12, 4)
);
CREATE TABLE billing.invoices (id bigint PRIMARY KEY, customer int REFERENCES customers (id),
    amount numeric, paid boolean, lines jsonb, due date);
CREATE TABLE empty_table (id int);
INSERT INTO customers VALUES
    (1, 'Ada', 'ada@example.test', '{"tags": ["a", "b"], "vip": true}', '\\x00ff10'::bytea,
     '2024-02-29 23:59:59.123456+05:30', 0.1, 12345678.1234),
    (2, 'Grâce ☃', NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 'Linus', 'l@x.test', '{"nested": {"k": [1, 2.5, null]}}', ''::bytea,
     '1970-01-01 00:00:00+00', -1e-300, -0.0001);
INSERT INTO billing.invoices VALUES
    (10, 1, 12.50, true, '[{"sku": "x", "qty": 2}]', '2024-01-31'),
    (11, 2, 99.999999999999999999, false, NULL, NULL),
    (12, NULL, NULL, NULL, '{}', '2999-12-31');
"""


def seed_shop(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SHOP_SCHEMA)


def seed_big_table(dsn: str, rows: int) -> None:
    """About 415 bytes per row of poorly compressible-looking text (md5s)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)")
        conn.execute(
            "INSERT INTO big SELECT g, repeat(md5(g::text), 12) FROM generate_series(1, %s) AS g", (rows,)
        )


def other_sessions(dsn: str, settle_seconds: float = 5.0) -> int:
    """Sessions on the database besides this check's own (a dump must leave none behind). A backend
    exits a moment after its client closed the connection, so a count above zero is asked again until
    ``settle_seconds`` have passed."""
    deadline = time.monotonic() + settle_seconds
    while True:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        count = int(row[0]) if row else -1
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def dump_all(source: BackupSource) -> tuple[bytes, Any]:
    with source.dump() as stream:
        data = b"".join(stream)
    assert stream.complete
    return data, stream


def pieces(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def restore_bytes(target: RestoreTarget, data: bytes) -> Any:
    return target.restore(pieces(data))


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------


def test_postgres_round_trip_restores_equal_tables(postgres_db: str, scratch_db: str) -> None:
    seed_shop(postgres_db)
    source = PostgresBackupSource("orders", postgres_db, SecretStr(PG_PASSWORD))
    assert source.describe()["database"] == postgres_db.split("dbname=")[1]
    before = datetime.now(UTC)
    with source.dump() as stream:
        assert stream.consistent_at.tzinfo is not None
        assert (
            before - timedelta(seconds=5) <= stream.consistent_at <= datetime.now(UTC) + timedelta(seconds=5)
        )
        chunks = list(stream)
    assert stream.complete
    assert chunks[0].startswith(b"PGDMP")
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
    assert stream.tools["pg_dump"].split(".")[0].isdigit()
    assert stream.facts["dump_bytes"] == sum(map(len, chunks))
    assert stream.tables is not None
    by_name = {table.name: table for table in stream.tables}
    assert set(by_name) == {"billing.invoices", "public.customers", "public.empty_table"}
    assert (by_name["public.customers"].rows, by_name["billing.invoices"].rows) == (3, 3)
    assert by_name["public.empty_table"].rows == 0
    # derived from the dump stream (v5, the default), not from a second scan of the database
    assert stream.facts["checksum_source"] == "dump stream"
    assert stream.facts["checksum_algorithm"].startswith(
        "pg-copy-xxh3-framed128/v5; client_encoding=UTF8; lc_monetary="
    )
    assert all(table.algorithm == stream.facts["checksum_algorithm"] for table in stream.tables)

    target = PostgresRestoreTarget(scratch_db, SecretStr(PG_PASSWORD))
    target.expected_tables = stream.tables
    report = target.restore(iter(chunks))
    assert report.tables == stream.tables
    assert compare_tables(stream.tables, report.tables) == []
    assert report.bytes_read == stream.facts["dump_bytes"]
    # the data itself, value by value, including NULLs and exotic types
    with psycopg.connect(scratch_db) as conn:
        row = conn.execute("SELECT profile, avatar, balance, joined FROM customers WHERE id = 1").fetchone()
        assert row == (
            {"tags": ["a", "b"], "vip": True},
            b"\x00\xff\x10",
            Decimal("12345678.1234"),
            datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=UTC),
        )
        assert conn.execute("SELECT email, profile, avatar FROM customers WHERE id = 2").fetchone() == (
            None,
            None,
            None,
        )
        amount = conn.execute("SELECT amount FROM billing.invoices WHERE id = 11").fetchone()
        assert amount == (Decimal("99.999999999999999999"),)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # one byte of one value ('t' -> 'f')
        (
            "UPDATE billing.invoices SET paid = NOT paid WHERE id = 10",
            "same row count (3) but different content",
        ),
        # one byte inside a text value, same length
        ("UPDATE customers SET name = 'Adb' WHERE id = 1", "same row count (3) but different content"),
        # one row missing / one row duplicated / one row replaced by another
        ("DELETE FROM billing.invoices WHERE id = 12", "2 rows restored, the backup had 3"),
        (
            "INSERT INTO billing.invoices SELECT 13, customer, amount, paid, lines, due FROM billing.invoices"
            " WHERE id = 12",
            "4 rows restored, the backup had 3",
        ),
        ("UPDATE billing.invoices SET id = 14 WHERE id = 12", "same row count (3) but different content"),
    ],
)
def test_postgres_checksums_detect_one_changed_byte_or_row(
    postgres_db: str, scratch_db: str, change: str, problem: str
) -> None:
    seed_shop(postgres_db)
    data, stream = dump_all(PostgresBackupSource("orders", postgres_db))
    PostgresRestoreTarget(scratch_db, summarize=False).restore(pieces(data))
    assert (
        compare_tables(stream.tables, database_table_summaries(PostgresClient(scratch_db), stream.tables))
        == []
    )
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(change)
        conn.execute("INSERT INTO empty_table VALUES (1)")
    problems = compare_tables(
        stream.tables, database_table_summaries(PostgresClient(scratch_db), stream.tables)
    )
    table = "customers" if "customers" in change else "billing.invoices"
    assert len(problems) == 2
    assert problems[0].startswith(f"table {'public.' if table == 'customers' else ''}{table}: {problem}")
    assert problems[1] == "table public.empty_table: 1 rows restored, the backup had 0"


def test_postgres_v2_checksums_still_detect_a_changed_row(postgres_db: str, scratch_db: str) -> None:
    """Backups made before v3 (server-side ``pg-md5-sum128/v2``) verify with their own algorithm."""
    seed_shop(postgres_db)
    data, stream = dump_all(PostgresBackupSource("orders", postgres_db, compress_level=1))
    assert stream.facts["checksum_algorithm"] == CHECKSUM_ALGORITHM
    assert stream.facts["checksum_source"].startswith("server scan (the archive is compressed")
    PostgresRestoreTarget(scratch_db, summarize=False).restore(pieces(data))
    assert (
        compare_tables(stream.tables, database_table_summaries(PostgresClient(scratch_db), stream.tables))
        == []
    )
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("UPDATE billing.invoices SET paid = NOT paid WHERE id = 10")
        conn.execute("INSERT INTO empty_table VALUES (1)")
    problems = compare_tables(
        stream.tables, database_table_summaries(PostgresClient(scratch_db), stream.tables)
    )
    assert problems == [
        "table billing.invoices: same row count (3) but different content checksum",
        "table public.empty_table: 1 rows restored, the backup had 0",
    ]


def test_postgres_checksum_thread_failure_makes_the_stream_raise(postgres_db: str) -> None:
    """pg_dump succeeds (it skips the table) but the concurrent checksums cannot read it: the stream
    raises, so the pipeline aborts the upload, and no session is left behind."""
    seed_shop(postgres_db)
    role = f"envsteward_limited_{uuid.uuid4().hex[:8]}"
    dbname = postgres_db.split("dbname=")[1]
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE hidden (id int)")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA billing TO {}").format(sql.Identifier(role)))
        for table in ("public.customers", "billing.invoices", "public.empty_table"):
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    sql.Identifier(*table.split(".")), sql.Identifier(role)
                )
            )
    try:
        # v3 (from the dump stream) covers exactly what pg_dump dumped: the excluded table is not read
        data, v3 = dump_all(
            PostgresBackupSource(
                "orders", postgres_dsn(dbname, user=role), extra_args=["--exclude-table=public.hidden"]
            )
        )
        assert v3.tables is not None
        assert "public.hidden" not in {table.name for table in v3.tables}
        # the server-side fallback (v2: pg_dump's own compression on) reads every table, and fails
        source = PostgresBackupSource(
            "orders",
            postgres_dsn(dbname, user=role),
            extra_args=["--exclude-table=public.hidden"],
            compress_level=1,
        )
        received: list[bytes] = []
        with pytest.raises(EnvstewardError) as caught, source.dump() as stream:
            received.extend(stream)
        assert "table checksums" in str(caught.value)
        assert "permission" in str(caught.value).lower()
        assert stream.tables is None
        assert not stream.complete
        assert other_sessions(postgres_db) == 0
        # the same role and dump without the checksums: succeeds (pg_dump alone can do it)
        quiet = PostgresBackupSource(
            "orders",
            postgres_dsn(dbname, user=role),
            extra_args=["--exclude-table=public.hidden"],
            summarize=False,
        )
        data, ok = dump_all(quiet)
        assert data.startswith(b"PGDMP")
        assert ok.tables is None
        assert "tables" not in ok.facts
    finally:
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_postgres_v2_fallback_checksums_match_the_adapter(postgres_db: str) -> None:
    seed_shop(postgres_db)
    _data, stream = dump_all(PostgresBackupSource("orders", postgres_db, compress_level=1))
    assert stream.tables is not None
    assert stream.facts["checksum_algorithm"] == CHECKSUM_ALGORITHM
    assert CHECKSUM_ALGORITHM.startswith("pg-md5-sum128/v2")
    # ONE implementation: the adapter's checksums are the source's
    adapter = PostgresClient(postgres_db).table_checksums()
    assert adapter == {table.name: table.checksum for table in stream.tables}
    assert all(len(table.checksum) == 32 for table in stream.tables)


def test_postgres_checksums_are_order_independent(postgres_db: str, scratch_db: str) -> None:
    """v4 hashes the stream in order; the same rows in the opposite order are settled by the order-
    independent re-check (v3 sums of the re-read dump and of the restored tables)."""
    seed_shop(postgres_db)
    data, stream = dump_all(PostgresBackupSource("orders", postgres_db))
    assert stream.tables is not None
    assert all(len(table.checksum) == 32 for table in stream.tables)
    # same rows inserted in the opposite order, in a different session time zone: same summaries
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'America/Los_Angeles'")
        conn.execute(SHOP_SCHEMA.split("INSERT INTO customers", maxsplit=1)[0])
        with psycopg.connect(postgres_db) as source_conn:
            for schema, table in (("public", "customers"), ("billing", "invoices")):
                name = sql.Identifier(schema, table)
                out = sql.SQL("COPY (SELECT * FROM {} ORDER BY id DESC) TO STDOUT").format(name)
                with source_conn.cursor().copy(out) as reader:
                    text = b"".join(bytes(block) for block in reader)
                with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(name)) as writer:
                    writer.write(text)
    summaries = database_table_summaries(PostgresClient(scratch_db), stream.tables)
    suspects = order_suspects(stream.tables, summaries)
    assert suspects == ["billing.invoices", "public.customers"]
    assert len(compare_tables(stream.tables, summaries)) == 2
    verdict = reorder_check(PostgresClient(scratch_db), stream.tables, suspects, lambda sink: sink(data))
    assert verdict == {"billing.invoices": None, "public.customers": None}


def test_compare_tables_refuses_summaries_of_different_algorithms() -> None:
    old = TableChecksum(
        name="public.t", rows=3, checksum="ab" * 16, algorithm="postgres: md5 string_agg (v1)"
    )
    new = old.model_copy(update={"algorithm": CHECKSUM_ALGORITHM})
    problems = compare_tables([old], [new])
    assert len(problems) == 1
    assert "different algorithms and cannot be compared" in problems[0]
    assert "string_agg" in problems[0]
    assert "pg-md5-sum128/v2" in problems[0]
    assert compare_tables([new], [new]) == []


def test_postgres_dump_is_one_snapshot_even_when_data_changes_during_the_dump(
    postgres_db: str, scratch_db: str
) -> None:
    seed_shop(postgres_db)
    source = PostgresBackupSource("orders", postgres_db)
    with source.dump() as stream:
        # committed AFTER the snapshot was taken, BEFORE pg_dump's output is read
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute("INSERT INTO customers (id, name) VALUES (4, 'Late')")
            conn.execute("DELETE FROM billing.invoices WHERE id = 12")
        data = b"".join(stream)
    assert stream.tables is not None
    counts = {table.name: table.rows for table in stream.tables}
    assert counts["public.customers"] == 3
    assert counts["billing.invoices"] == 3
    target = PostgresRestoreTarget(scratch_db)
    target.expected_tables = stream.tables
    report = target.restore(pieces(data))
    assert compare_tables(stream.tables, report.tables or ()) == []
    live = {table.name: table.rows for table in database_table_summaries(PostgresClient(postgres_db))}
    assert live["public.customers"] == 4  # the source did change; the dump did not


def test_postgres_missing_database_raises_before_any_byte(postgres_dsn_base: str) -> None:
    source = PostgresBackupSource("ghost", postgres_dsn("envsteward_no_such_db"), SecretStr(PG_PASSWORD))
    received: list[bytes] = []
    with pytest.raises(NotFoundError) as caught, source.dump() as stream:
        received.extend(stream)
    assert received == []
    assert "envsteward_no_such_db" in str(caught.value)
    assert PG_PASSWORD not in str(caught.value)


def test_pg_dump_failure_raises_from_the_stream(postgres_db: str) -> None:
    seed_shop(postgres_db)
    source = PostgresBackupSource(
        "orders", postgres_db, SecretStr(PG_PASSWORD), extra_args=["--table=no_such_table", "--strict-names"]
    )
    with pytest.raises(PermanentError) as caught, source.dump() as stream:
        for _ in stream:
            pass
    assert not stream.complete
    message = str(caught.value)
    assert "pg_dump failed (exit code 1)" in message
    assert "no matching tables were found" in message
    assert PG_PASSWORD not in message


def test_pg_dump_killed_mid_stream_makes_the_stream_raise(postgres_db: str) -> None:
    seed_big_table(postgres_db, 50_000)  # ~20 MB: pg_dump is still writing after our first chunk
    source = PostgresBackupSource("big", postgres_db)
    received: list[int] = []

    def read_and_kill_pg_dump(stream: Any) -> None:
        for chunk in stream:
            if not received:
                with psycopg.connect(postgres_db, autocommit=True) as conn:
                    killed = conn.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'envsteward-pg_dump-%' AND datname = current_database()"
                    ).fetchone()
                assert killed == (1,)
            received.append(len(chunk))

    with pytest.raises(EnvstewardError) as caught, source.dump() as stream:
        read_and_kill_pg_dump(stream)
    received_bytes = sum(received)
    assert 0 < received_bytes < 20_000_000
    assert not stream.complete
    assert "pg_dump failed" in str(caught.value)
    assert isinstance(caught.value, TransientError)


def test_postgres_dump_streams_in_bounded_memory(postgres_db: str) -> None:
    seed_big_table(postgres_db, 130_000)  # ~54 MB of table data
    source = PostgresBackupSource("big", postgres_db, summarize=False)
    total = largest = 0
    tracemalloc.start()
    try:
        with source.dump() as stream:
            for chunk in stream:
                total += len(chunk)
                largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.complete
    assert total > 50_000_000
    assert largest <= CHUNK_SIZE
    assert peak < 6 * CHUNK_SIZE, f"peak Python memory {peak} bytes while streaming {total} bytes"


def test_pg_restore_into_a_conflicting_database_raises(postgres_db: str, scratch_db: str) -> None:
    seed_shop(postgres_db)
    data, _ = dump_all(PostgresBackupSource("orders", postgres_db))
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    with pytest.raises(ConflictError) as caught:
        PostgresRestoreTarget(scratch_db, SecretStr(PG_PASSWORD)).restore(pieces(data))
    assert "pg_restore failed" in str(caught.value)
    assert "already exists" in str(caught.value)
    assert PG_PASSWORD not in str(caught.value)


def test_pg_restore_of_garbage_raises_and_an_upstream_error_aborts(scratch_db: str) -> None:
    with pytest.raises(PermanentError, match="pg_restore failed"):
        PostgresRestoreTarget(scratch_db).restore([b"this is not a custom-format archive\n" * 100])

    def failing() -> Iterator[bytes]:
        yield b"PGDMP"
        raise IntegrityError("chunk 3 failed authentication")

    with pytest.raises(IntegrityError, match="chunk 3"):
        PostgresRestoreTarget(scratch_db).restore(failing())


def test_pg_restore_push_style_plugs_into_a_sink(postgres_db: str, scratch_db: str) -> None:
    seed_shop(postgres_db)
    data, stream = dump_all(PostgresBackupSource("orders", postgres_db))
    target = PostgresRestoreTarget(scratch_db)
    target.expected_tables = stream.tables  # summarise with the backup's algorithm (v3)
    with target.begin() as writer:
        for piece in pieces(data, 4096):
            writer.write(piece)  # what restore_backup(..., sink=writer.write) does
    assert writer.report is not None
    assert writer.report.tables == stream.tables


def test_password_goes_to_the_environment_never_argv_or_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    source = PostgresBackupSource(
        "orders", "postgresql://backup@127.0.0.1:5432/orders", SecretStr(PG_PASSWORD)
    )
    assert all(PG_PASSWORD not in arg for arg in source.command("00000003-0000001B-1"))
    assert PG_PASSWORD not in repr(source)
    assert PG_PASSWORD not in json.dumps(source.describe())
    assert tool_environment(SecretStr(PG_PASSWORD))["PGPASSWORD"] == PG_PASSWORD
    assert "PGPASSWORD" not in tool_environment(None)
    with pytest.raises(ConfigurationError, match="contains a password"):
        PostgresBackupSource("x", f"postgresql://backup:{PG_PASSWORD}@db/orders")


def test_tool_errors_are_classified_and_scrubbed() -> None:
    refused = (
        'pg_dump: error: connection to server at "10.0.0.9", port 5432 failed: Connection refused\n'
        f"\tIs the server running? password={PG_PASSWORD}\n"
    )
    error = tool_error("pg_dump", 1, refused, operation="pg_dump db", password=SecretStr(PG_PASSWORD))
    assert isinstance(error, TransientError)
    assert PG_PASSWORD not in str(error)
    assert "Connection refused" in str(error)
    data_leak = (
        'pg_restore: error: COPY failed for table "t": ERROR:  invalid input\n'
        'CONTEXT:  COPY t, line 1, column v: "card-4111111111111111"\n'
        "DETAIL:  Key (v)=(card-4111111111111111) already exists.\n"
    )
    error = tool_error("pg_restore", 1, data_leak, operation="pg_restore db", password=None)
    assert isinstance(error, ConflictError)
    assert "4111111111111111" not in str(error)
    assert "postgresql://u:<redacted>@h" in scrub("postgresql://u:hunter2@h/db", None)
    not_found = tool_error(
        "pg_dump", 1, 'FATAL:  database "x" does not exist', operation="pg_dump", password=None
    )
    assert isinstance(not_found, NotFoundError)


def test_missing_pg_dump_is_a_configuration_error(postgres_db: str) -> None:
    source = PostgresBackupSource("orders", postgres_db, pg_dump="/nonexistent/pg_dump")
    with pytest.raises(ConfigurationError, match="not installed"), source.dump():
        pass
    # the snapshot connection was released: the database can be dropped without FORCE
    assert other_sessions(postgres_db) == 0


def test_leaving_the_context_early_stops_pg_dump(postgres_db: str) -> None:
    seed_big_table(postgres_db, 30_000)
    with PostgresBackupSource("big", postgres_db).dump() as stream:
        next(iter(stream))
    assert not stream.complete
    assert other_sessions(postgres_db) == 0


# ---------------------------------------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------------------------------------


def make_sqlite(path: Path, wal: bool = True) -> None:
    conn = sqlite3.connect(path)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, blob BLOB, note TEXT);"
            'CREATE TABLE "odd ""name""" (k TEXT);'
            "CREATE INDEX items_name ON items (name);"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [(i, f"item-{i}", i / 3, bytes([i % 256]) * 10, None if i % 2 else "n") for i in range(1, 2001)],
        )
        conn.execute('INSERT INTO "odd ""name""" VALUES (\'☃\')')
        conn.commit()
    finally:
        conn.close()


def test_sqlite_round_trip_and_private_temp_copy(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    make_sqlite(db)
    work = tmp_path / "work"
    work.mkdir()
    source = SqliteBackupSource("app", db, work_dir=work)
    with source.dump() as stream:
        assert list(work.iterdir()) == []  # the copy is already unlinked: only our descriptor reaches it
        data = b"".join(stream)
    assert stream.complete
    assert data.startswith(b"SQLite format 3\x00")
    assert stream.tools == {"sqlite": sqlite3.sqlite_version}
    assert stream.tables == file_table_summaries(db)
    assert {table.name: table.rows for table in stream.tables or ()} == {
        "main.items": 2000,
        'main.odd "name"': 1,
    }

    restored = tmp_path / "restored" / "app.sqlite3"
    restored.parent.mkdir()
    report = SqliteRestoreTarget(restored).restore(pieces(data))
    assert report.tables == stream.tables
    assert sorted(os.listdir(restored.parent)) == ["app.sqlite3"]
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("SELECT name, price, blob, note FROM items WHERE id = 7").fetchone() == (
            "item-7",
            7 / 3,
            b"\x07" * 10,
            None,
        )
    finally:
        conn.close()


def test_sqlite_dump_made_in_a_private_directory(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    make_sqlite(db, wal=False)
    seen: list[tuple[int, list[int]]] = []
    original = shutil.rmtree

    def spy(path: Any, *args: Any, **kwargs: Any) -> None:
        if "envsteward-sqlite-" in str(path):
            files = [os.stat(entry).st_mode & 0o777 for entry in Path(path).iterdir()]
            seen.append((os.stat(path).st_mode & 0o777, files))
        original(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shutil, "rmtree", spy)
        data, _ = dump_all(SqliteBackupSource("app", db, work_dir=tmp_path))
    assert data.startswith(b"SQLite format 3")
    assert seen == [(0o700, [0o600])]  # private directory, private copy; removed before streaming
    assert [p.name for p in tmp_path.iterdir()] == ["app.sqlite3"]


def test_sqlite_missing_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(NotFoundError), SqliteBackupSource("app", missing).dump():
        pass
    assert not missing.exists()


def test_sqlite_restore_refuses_existing_and_garbage_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    make_sqlite(db)
    data, _ = dump_all(SqliteBackupSource("app", db))
    with pytest.raises(ConflictError, match="overwrite"):
        SqliteRestoreTarget(db).restore(pieces(data))
    target = tmp_path / "new.sqlite3"
    with pytest.raises(IntegrityError):
        SqliteRestoreTarget(target).restore([b"not sqlite at all" * 100])
    truncated = data[: len(data) // 2]
    with pytest.raises(IntegrityError):
        SqliteRestoreTarget(target).restore(pieces(truncated))
    leftovers = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert leftovers == ["app.sqlite3"]
    # overwrite=True replaces atomically
    report = SqliteRestoreTarget(db, overwrite=True).restore(pieces(data))
    assert report.items == 1


def test_sqlite_copy_is_consistent_while_a_writer_commits(tmp_path: Path) -> None:
    db = tmp_path / "busy.sqlite3"
    make_sqlite(db)
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(db, timeout=10)
        n = 10_000
        try:
            while not stop.is_set():
                conn.execute("INSERT INTO items (id, name) VALUES (?, 'w')", (n,))
                conn.commit()
                n += 1
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        data, stream = dump_all(SqliteBackupSource("busy", db))
    finally:
        stop.set()
        thread.join()
    restored = tmp_path / "restored.sqlite3"
    report = SqliteRestoreTarget(restored).restore(pieces(data))
    assert report.tables == stream.tables  # the streamed file is exactly what was summarized


def test_dump_stream_misuse_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    make_sqlite(db, wal=False)
    stream = SqliteBackupSource("app", db).dump()
    with pytest.raises(PermanentError, match="enter the context"):
        _ = stream.consistent_at
    with pytest.raises(PermanentError, match="inside its context"):
        iter(stream)
    with stream:
        first = b"".join(stream)
        with pytest.raises(PermanentError, match="only once"):
            iter(stream)
    assert first.startswith(b"SQLite format 3")
    with pytest.raises(PermanentError, match="inside its context"):
        iter(stream)  # closed


# ---------------------------------------------------------------------------------------------------------
# Config snapshot
# ---------------------------------------------------------------------------------------------------------


def rendered_config() -> RenderedConfig:
    ref = SecretRef.parse("vault://secret/app/db#password")
    return RenderedConfig(
        environment="prod",
        data={
            "database": {"host": "db.internal", "port": 5432, "password": ref, "ratio": 0.25},
            "features": ["a", "b"],
            "enabled": True,
            "nothing": None,
        },
        origins={"database.host": "config/base.yaml:3"},
        secret_refs={"database.password": ref},
        tier="production",
    )


def test_config_snapshot_round_trip(tmp_path: Path) -> None:
    source = ConfigSnapshotSource("config", "prod", rendered_config)
    data, stream = dump_all(source)
    document = json.loads(data)
    assert document["data"]["database"]["password"] == "secret+vault://secret/app/db#password"
    assert document["secret_refs"] == {"database.password": "vault://secret/app/db#password"}
    assert stream.facts["secret_refs"] == 1
    again, _ = dump_all(ConfigSnapshotSource("config", "prod", rendered_config()))
    assert again == data  # deterministic bytes for the same configuration

    out = tmp_path / "snapshot.json"
    target = ConfigSnapshotRestoreTarget(out)
    report = target.restore(pieces(data, 7))
    assert target.document == document
    assert json.loads(out.read_text()) == document
    assert out.stat().st_mode & 0o777 == 0o600
    assert report.facts == {"environment": "prod", "leaves": 8}
    with pytest.raises(ConflictError):
        ConfigSnapshotRestoreTarget(out).restore([data])
    with pytest.raises(IntegrityError, match="not a configuration snapshot"):
        ConfigSnapshotRestoreTarget().restore([b'{"format": "other"}'])
    with pytest.raises(PermanentError, match="prod"):
        dump_all(ConfigSnapshotSource("config", "staging", rendered_config))


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------


class _Wiring:
    """The narrow arguments the registry's backup factories take (catalog from the test data): no Vault
    or AWS client may be built, and every secret reference resolved is recorded."""

    def __init__(self, catalog_path: Path) -> None:
        self.catalog = load_catalog(catalog_path)
        self.resolved: list[SecretRef] = []

        def no_client() -> Any:
            raise AssertionError("not needed")

        self.clients = Clients(vault=no_client, aws=no_client)

    def resolve(self, ref: SecretRef) -> SecretStr:
        self.resolved.append(ref)
        return SecretStr(PG_PASSWORD)

    def source(self, target: Any, environment: str = "prod") -> BackupSource:
        factory = BACKUP_SOURCES.factory(target.kind)
        return factory(target, environment, self.clients, self.resolve, self.catalog.render)

    def target(self, target: Any, destination: str, overwrite: bool = False) -> RestoreTarget:
        return RESTORE_TARGETS.factory(target.kind)(
            target, destination, self.clients, self.resolve, overwrite
        )


def test_registry_builds_sources_and_targets_from_catalog_targets(
    postgres_db: str, scratch_db: str, tmp_path: Path
) -> None:
    from envsteward.catalog import ConfigBackup, PostgresBackup, SqliteBackup

    assert BACKUP_SOURCES.kinds() == ("config", "postgres", "sqlite", "ssm", "vault_kv")
    assert RESTORE_TARGETS.kinds() == BACKUP_SOURCES.kinds()
    wiring = _Wiring(Path("tests/data/catalogs/minimal"))
    seed_shop(postgres_db)
    dbname = postgres_db.split("dbname=")[1]
    pg = PostgresBackup(
        name="orders",
        kind="postgres",
        dsn=f"postgresql://postgres@127.0.0.1:5432/{dbname}",
        password="secret+env://PGPASS",  # type: ignore[arg-type]
    )
    source = wiring.source(pg)
    assert isinstance(source, PostgresBackupSource)
    assert source.summarize, "table checksums are on by default"
    assert wiring.resolved == [SecretRef("env", "PGPASS")]
    unchecked = pg.model_copy(update={"table_checksums": False})
    assert not wiring.source(unchecked).summarize  # type: ignore[attr-defined]
    data, stream = dump_all(source)
    with pytest.raises(ConfigurationError, match="no overwrite"):
        wiring.target(pg, "anything", overwrite=True)
    target = wiring.target(pg, scratch_db.split("dbname=")[1])
    assert isinstance(target, PostgresRestoreTarget)
    target.expected_tables = stream.tables
    assert target.restore(pieces(data)).tables == stream.tables

    db = tmp_path / "app.sqlite3"
    make_sqlite(db)
    lite = SqliteBackup(name="app", kind="sqlite", path=str(db))
    data, _ = dump_all(wiring.source(lite))
    restored = tmp_path / "copy.sqlite3"
    wiring.target(lite, str(restored)).restore([data])
    assert restored.exists()

    config = ConfigBackup(name="config", kind="config")
    data, stream = dump_all(wiring.source(config))
    assert json.loads(data)["environment"] == "prod"
    assert stream.kind == "config"
    assert stream.source_info().name == "config"

    class Unknown:
        kind = "mongodb"
        name = "docs"

    with pytest.raises(ConfigurationError, match="mongodb"):
        wiring.source(Unknown())
    with pytest.raises(ConfigurationError, match="mongodb"):
        wiring.target(Unknown(), "x")


# ---------------------------------------------------------------------------------------------------------
# Through the backup pipeline (encrypted, stored, verified, restored)
# ---------------------------------------------------------------------------------------------------------


def test_postgres_through_the_pipeline_and_back(postgres_db: str, scratch_db: str, tmp_path: Path) -> None:
    from envsteward.adapters.local_keys import LocalKeyProvider
    from envsteward.adapters.objectstore_fs import FilesystemObjectStore
    from envsteward.backup import (
        find_incomplete_backups,
        list_backups,
        new_backup_id,
        restore_backup,
        write_backup,
    )

    seed_shop(postgres_db)
    store = FilesystemObjectStore(tmp_path / "store")
    keys = LocalKeyProvider(tmp_path / "keys" / "backup.key")
    source = PostgresBackupSource("orders", postgres_db)
    backup_id = new_backup_id("prod", "orders")
    with source.dump() as stream:
        manifest = write_backup(
            store,
            keys,
            backup_id,
            stream,
            environment="prod",
            source=stream.source_info(),
            started_at=stream.started_at,
            consistent_at=stream.consistent_at,
            tables=lambda: stream.tables or (),
            tools=stream.tools,
        )
    assert manifest.tables == stream.tables
    assert manifest.tools.others["pg_dump"] == stream.tools["pg_dump"]

    target = PostgresRestoreTarget(scratch_db)
    target.expected_tables = manifest.tables
    with target.begin() as writer:
        restore_backup(store, backup_id, keys, sink=writer.write)
    assert writer.report is not None
    assert compare_tables(manifest.tables or (), writer.report.tables or ()) == []

    # a dump that fails leaves no backup behind
    failing = PostgresBackupSource("orders", postgres_db, extra_args=["--table=nope", "--strict-names"])
    with pytest.raises(PermanentError, match="pg_dump failed"), failing.dump() as stream:
        write_backup(
            store,
            keys,
            new_backup_id("prod", "orders"),
            stream,
            environment="prod",
            source=stream.source_info(),
            started_at=datetime.now(UTC),
            consistent_at=stream.consistent_at,
        )
    assert [m.backup_id for m in list_backups(store)] == [backup_id]
    assert find_incomplete_backups(store) == []  # the failed upload was removed
