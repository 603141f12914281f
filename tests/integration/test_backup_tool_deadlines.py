"""pg_dump and pg_restore have deadlines of their own: a tool stuck behind a lock is killed (its whole process
group), its server session is terminated, nothing is left behind, and the error names the tool, the target
and the limit. Real PostgreSQL on loopback; the slow case is a real lock held by another connection."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.backup import new_backup_id, write_backup
from envsteward.backup.limits import BACKUP_TIMEOUT_SECONDS, RESTORE_TIMEOUT_SECONDS
from envsteward.backup.sources._tools import ToolTimeoutError
from envsteward.backup.sources.base import RestoreWriter
from envsteward.backup.sources.postgres import PostgresBackupSource, PostgresRestoreTarget
from envsteward.errors import TransientError
from tests.integration.test_backup_sources import dump_all, pieces, scratch_db, seed_big_table, seed_shop

__all__ = ["scratch_db"]  # the fixture, imported for this module's tests

DEADLINE = 2.0


@contextmanager
def holding(dsn: str, statement: str) -> Iterator[None]:
    """Run ``statement`` in a transaction that stays open (its locks held) until the block ends."""
    with psycopg.connect(dsn) as conn:
        conn.execute(statement)
        try:
            yield
        finally:
            conn.rollback()


def tool_sessions(dsn: str, tool: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            # this test's database only: other runs on the shared server have pg_dump sessions of their own
            "SELECT application_name FROM pg_stat_activity"
            " WHERE application_name LIKE %s AND datname = current_database()",
            (f"envsteward-{tool}-%",),
        ).fetchall()
    return [str(row[0]) for row in rows]


def feed(writer: RestoreWriter, chunks: Iterable[bytes]) -> None:
    with writer:
        for piece in chunks:
            writer.write(piece)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_default_deadlines_are_the_backup_task_timeout() -> None:
    assert PostgresBackupSource("x", "postgresql://u@h/db").timeout_seconds == BACKUP_TIMEOUT_SECONDS
    assert PostgresRestoreTarget("postgresql://u@h/db").timeout_seconds == RESTORE_TIMEOUT_SECONDS


def test_pg_dump_blocked_by_a_lock_is_killed_at_its_deadline_and_leaves_nothing(
    postgres_db: str, tmp_path: Path
) -> None:
    seed_big_table(postgres_db, 2_000)
    store_root = tmp_path / "store"
    store = FilesystemObjectStore(store_root)
    keys = LocalKeyProvider(tmp_path / "keys" / "backup.key")
    # no --lock-wait-timeout: pg_dump would wait for the lock forever
    source = PostgresBackupSource("big", postgres_db, lock_wait_timeout_ms=None, timeout_seconds=DEADLINE)
    started = time.monotonic()
    with holding(postgres_db, "LOCK TABLE big IN ACCESS EXCLUSIVE MODE"):
        with pytest.raises(ToolTimeoutError) as caught, source.dump() as stream:
            write_backup(
                store,
                keys,
                new_backup_id("prod", "big"),
                stream,
                environment="prod",
                source=stream.source_info(),
                started_at=datetime.now(UTC),
                consistent_at=stream.consistent_at,
            )
        elapsed = time.monotonic() - started
        # checked while the lock is still held: nothing of the dump waits behind it any more
        assert tool_sessions(postgres_db, "pg_dump") == []
    assert DEADLINE <= elapsed < DEADLINE + 15
    message = str(caught.value)
    assert "pg_dump for 127.0.0.1:5432/" in message
    assert "deadline of 2 s" in message
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, TransientError)
    assert stream._proc is not None
    assert gone(stream._proc.pid)
    assert not stream.complete
    assert [p for p in store_root.rglob("*") if p.is_file()] == []  # no data object, no temp file


def test_table_checksums_blocked_by_a_lock_are_bounded_by_the_same_deadline(postgres_db: str) -> None:
    seed_shop(postgres_db)
    seed_big_table(postgres_db, 100)
    # pg_dump itself skips the locked table and finishes; the server-side checksum thread (v2, the fallback
    # when pg_dump compresses) reads every table and waits
    source = PostgresBackupSource(
        "shop", postgres_db, extra_args=["--exclude-table=big"], timeout_seconds=DEADLINE, compress_level=1
    )
    started = time.monotonic()
    with holding(postgres_db, "LOCK TABLE big IN ACCESS EXCLUSIVE MODE"):
        # v3 (the default) derives the checksums from the dump: the excluded, locked table is never read
        _data, stream = dump_all(
            PostgresBackupSource(
                "shop", postgres_db, extra_args=["--exclude-table=big"], timeout_seconds=DEADLINE
            )
        )
        assert stream.tables is not None
        assert "public.big" not in {table.name for table in stream.tables}
        started = time.monotonic()
        with pytest.raises(ToolTimeoutError, match=r"pg_dump's table checksums for .* deadline of 2 s"):
            dump_all(source)
        assert time.monotonic() - started < DEADLINE + 15
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'envsteward-table-checksums'"
            ).fetchone()
        assert waiting == (0,)


def test_pg_restore_blocked_by_a_lock_is_killed_at_its_deadline(postgres_db: str, scratch_db: str) -> None:
    seed_shop(postgres_db)
    data, _ = dump_all(PostgresBackupSource("orders", postgres_db))
    target = PostgresRestoreTarget(scratch_db, single_transaction=True, timeout_seconds=DEADLINE)
    started = time.monotonic()
    # an uncommitted CREATE TABLE of the same name: pg_restore's CREATE TABLE waits for it to end
    with holding(scratch_db, "CREATE TABLE customers (id int)"):
        writer = target.begin()
        with pytest.raises(ToolTimeoutError) as caught:
            feed(writer, pieces(data, 4096))
        assert tool_sessions(scratch_db, "pg_restore") == []
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 15
    assert "pg_restore for 127.0.0.1:5432/" in str(caught.value)
    assert "deadline of 2 s" in str(caught.value)
    assert gone(writer._proc.pid)  # type: ignore[attr-defined]
    with psycopg.connect(scratch_db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
    assert tables == (0,)  # one transaction, rolled back with the killed session


def test_a_restore_fed_too_slowly_is_stopped_at_its_deadline(scratch_db: str) -> None:
    def stalling() -> Iterator[bytes]:
        yield b"PGDMP"
        time.sleep(2.0)  # the producer stalls (a slow download): pg_restore is killed meanwhile
        yield b"\0" * 65536

    writer = PostgresRestoreTarget(scratch_db, timeout_seconds=1.0).begin()
    with pytest.raises(ToolTimeoutError, match=r"pg_restore for .* deadline of 1 s"):
        feed(writer, stalling())
    assert gone(writer._proc.pid)  # type: ignore[attr-defined]
    assert tool_sessions(scratch_db, "pg_restore") == []
