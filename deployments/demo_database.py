"""The demo's database target: a database the demo creates, fills with a little shop data, backs up, drills
and drops on exit.

On the machine's PostgreSQL (127.0.0.1:5432, trust auth, ``pg_dump``/``pg_restore`` on PATH) it is a new
database ``envsteward_demo_<hex>``; where no PostgreSQL is reachable it is an SQLite file in the demo's
folder, and the demo says why. :func:`point_catalog_at` rewrites the demo's copy of the example catalog so
that every ``postgres`` backup target (and the drills restoring one) use that database instead of the
example's ``shopfront`` databases, which do not exist on a developer's machine.

External calls: PostgreSQL (psycopg) or the sqlite3 library, and the local filesystem.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from envsteward.deployments.local_stack import StackError

SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where the demo creates its database (the same server the example's drills create scratch databases on)."""
SQLITE_SMOKE_QUERY = {
    "name": "tables-present",
    "sql": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "min_rows": 1,
}
"""Replaces a drill's PostgreSQL smoke queries (``information_schema``) when the target becomes SQLite."""
CUSTOMERS = 40
ORDERS = 200


@dataclass(frozen=True)
class DemoDatabase:
    """Where the demo's database target lives: ``dsn`` (postgres) or ``path`` (sqlite)."""

    kind: Literal["postgres", "sqlite"]
    name: str
    """The database name (postgres) or the file's path (sqlite), for messages."""
    dsn: str | None = None
    path: Path | None = None
    why_sqlite: str = ""
    """Why the demo fell back to SQLite (empty on PostgreSQL)."""

    def describe(self) -> str:
        if self.kind == "postgres":
            return f"PostgreSQL database {self.name} on 127.0.0.1:5432 (dropped when the demo stops)"
        return f"SQLite file {self.path} (no PostgreSQL: {self.why_sqlite})"


def _rows() -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    yield "customers", [(i, f"customer {i}", f"c{i}@shop.example") for i in range(1, CUSTOMERS + 1)]
    yield (
        "orders",
        [
            (i, 1 + i % CUSTOMERS, 100 * (i % 37) + 99, f"2024-01-{1 + i % 28:02d}")
            for i in range(1, ORDERS + 1)
        ],
    )


SCHEMA = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers(id),"
    " total_cents integer NOT NULL, placed_on text NOT NULL)",
)


def create(workdir: Path, server_dsn: str = SERVER_DSN) -> DemoDatabase:
    """Create and fill the demo's database: on PostgreSQL when it answers at ``server_dsn`` and pg_dump /
    pg_restore are installed, else an SQLite file under ``workdir``. Raises StackError when neither works.
    """
    problem = _postgres_problem(server_dsn)
    if problem is None:
        name = "envsteward_demo_" + secrets.token_hex(4)
        try:
            return _create_postgres(server_dsn, name)
        except Exception as exc:  # noqa: BLE001 - any driver error means: fall back, saying why
            problem = f"creating database {name} failed ({type(exc).__name__}: {exc})"
    path = workdir / "shopfront.db"
    try:
        with sqlite3.connect(path) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            for table, rows in _rows():
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 - our names
        conn.close()
    except sqlite3.Error as exc:
        raise StackError(f"cannot create the demo's SQLite database {path}: {exc}") from exc
    return DemoDatabase("sqlite", str(path), path=path, why_sqlite=problem)


def _postgres_problem(server_dsn: str) -> str | None:
    """Why the demo cannot use PostgreSQL at ``server_dsn`` (None: it can)."""
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH"
    import psycopg

    try:
        with psycopg.connect(server_dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{_server(server_dsn)} does not answer ({type(exc).__name__})"
    return None


def _server(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


def _with_database(server_dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))


def _create_postgres(server_dsn: str, name: str) -> DemoDatabase:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = _with_database(server_dsn, name)
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            with conn.cursor() as cursor:
                for table, rows in _rows():
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 - our names
    except BaseException:
        drop(DemoDatabase("postgres", name, dsn=dsn), server_dsn)
        raise
    return DemoDatabase("postgres", name, dsn=dsn)


def drop(database: DemoDatabase, server_dsn: str = SERVER_DSN) -> str | None:
    """Drop the demo's PostgreSQL database (an SQLite file goes with the demo's folder). Returns a one-line
    problem, or None when it is gone. Calls PostgreSQL."""
    if database.kind != "postgres":
        return None
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(server_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
            )
    except psycopg.Error as exc:
        return f"could not drop the demo database {database.name}: {type(exc).__name__}"
    return None


def point_catalog_at(catalog: Path, database: DemoDatabase) -> list[str]:
    """Rewrite ``catalog``'s ``environments.yaml`` (the demo's copy) so that every ``postgres`` backup
    target backs up ``database``. On SQLite the target becomes ``kind: sqlite`` and the drills that restore
    it lose ``server_dsn`` and get an SQLite smoke query. Comments and layout are kept (ruamel round trip).

    Returns ``environment/target`` of every target it changed. Raises StackError when the catalog has no
    postgres backup target (the demo's backup and drill need one).
    """
    from ruamel.yaml import YAML

    path = catalog / "environments.yaml"
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # the example's layout: lists indented under their key
    document = yaml.load(path.read_text(encoding="utf-8"))
    changed: list[str] = []
    for env in document.get("environments") or []:
        targets = [b for b in env.get("backups") or [] if b.get("kind") == "postgres"]
        for backup in targets:
            changed.append(f"{env['name']}/{backup['name']}")
            if database.kind == "postgres":
                backup["dsn"] = database.dsn
                continue
            position = list(backup).index("kind")
            for key in ("dsn", "password", "table_checksums"):
                backup.pop(key, None)
            backup["kind"] = "sqlite"
            backup.insert(position + 1, "path", str(database.path))
        drill = env.get("drill")
        if database.kind == "sqlite" and drill is not None and targets:
            drill_target = drill.get("target") or targets[0]["name"]
            if drill_target in {b["name"] for b in targets}:
                drill.pop("server_dsn", None)
                drill.pop("password", None)
                drill["smoke_queries"] = [dict(SQLITE_SMOKE_QUERY)]
    if not changed:
        raise StackError(
            f"{path}: no backup target of kind postgres; the demo backs up and drills the example's "
            "database target"
        )
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
    return changed
