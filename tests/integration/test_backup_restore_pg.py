"""Restores into PostgreSQL are all or nothing: a target holding any user object is refused (naming it),
and a restore that fails half-way leaves the database as empty as it was. Real PostgreSQL on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from envsteward.backup.restore import restore_stored_backup
from envsteward.backup.runner import plan_backups, run_backup_target
from envsteward.backup.stores import backup_stores
from envsteward.errors import ConflictError, EnvstewardError
from envsteward.services import Services
from tests.fixtures.databases import temporary_database
from tests.integration.test_backup_runner import (
    Setup,
    dbname_of,
    environment,
    pg_url,
    write_catalog,
)


@pytest.fixture
def backed_up(postgres_db: str, tmp_path: Path) -> tuple[Services, str]:
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO big SELECT g, 'row ' || g || ' 日本語' FROM generate_series(1, 2000) g")
        conn.execute("CREATE TABLE empty_t (id int)")
    catalog = write_catalog(
        tmp_path / "catalog",
        [
            environment(
                "dev", [{"name": "orders-db", "kind": "postgres", "dsn": pg_url(dbname_of(postgres_db))}]
            )
        ],
    )
    services = Setup(tmp_path=tmp_path, store="filesystem").services(catalog)
    result = run_backup_target(services, plan_backups(services.catalog())[0])
    assert result.status == "ok", result.error
    assert result.backup is not None
    return services, result.backup.backup_id


@pytest.fixture
def scratch_database(postgres_dsn_base: str) -> Iterator[Callable[[], str]]:
    """A factory of empty databases (names), all dropped afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda: dbname_of(
            stack.enter_context(temporary_database(postgres_dsn_base, "envsteward_restore"))
        )


def user_tables(dbname: str) -> list[str]:
    with psycopg.connect(pg_url(dbname)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_a_database_holding_only_a_type_is_refused_and_left_alone(
    backed_up: tuple[Services, str], scratch_database: Callable[[], str]
) -> None:
    services, backup_id = backed_up
    target = scratch_database()
    with psycopg.connect(pg_url(target), autocommit=True) as conn:
        conn.execute("CREATE TYPE people AS (x int)")
    primary = backup_stores(services).primary
    with pytest.raises(ConflictError, match=r"is not empty \(type public\.people\)"):
        restore_stored_backup(services, primary, backup_id, pg_url(target))
    assert user_tables(target) == []


@pytest.fixture
def latin1_database(postgres_dsn_base: str) -> Iterator[str]:
    """An empty database in LATIN1: the backup's Japanese text cannot be stored there, so pg_restore fails
    while loading data, after the tables were created."""
    name = "envsteward_latin1_" + __import__("uuid").uuid4().hex[:10]
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    yield name
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_failed_restore_leaves_nothing_behind(
    backed_up: tuple[Services, str], latin1_database: str
) -> None:
    services, backup_id = backed_up
    primary = backup_stores(services).primary
    with pytest.raises(EnvstewardError, match="pg_restore failed"):
        restore_stored_backup(services, primary, backup_id, pg_url(latin1_database))
    assert user_tables(latin1_database) == [], "a failed restore left tables behind"


def test_a_restore_into_an_empty_database_still_works(
    backed_up: tuple[Services, str], scratch_database: Callable[[], str]
) -> None:
    services, backup_id = backed_up
    target = scratch_database()
    outcome = restore_stored_backup(services, backup_stores(services).primary, backup_id, pg_url(target))
    assert outcome.table_mismatches == ()
    assert user_tables(target) == ["big", "empty_t"]
