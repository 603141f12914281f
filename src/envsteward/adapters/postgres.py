"""PostgreSQL over psycopg 3: queries, liveness, and the helpers backups and DR drills use.

The password never goes into the connection string (which may end up in logs or Prefect parameters): it
is passed to libpq separately, and a DSN that contains one is refused. Every psycopg exception is
translated in :func:`translate_postgres_error`, the one place that knows psycopg; messages name
``postgres``, the operation and ``host:port/dbname`` (never a password, and never data values PostgreSQL
echoes back).

Checksums (:meth:`PostgresClient.table_checksums`) are computed inside PostgreSQL by
:mod:`envsteward.adapters.pg_checksums` (the one implementation, shared with the PostgreSQL backup source):
two 64-bit lanes of the md5 of every row's text form, summed mod 2^64, with the session settings that
shape ``row::text`` pinned. Deterministic for the same content whatever the physical row order, locale or
server; no sort, constant server memory.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from envsteward._redact import redact_quoted, shorten
from envsteward.adapters.pg_checksums import LIST_TABLES, table_sums
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

SYSTEM = "postgres"
MAINTENANCE_DB = "postgres"

Params = Sequence[Any] | Mapping[str, Any] | None

# SQLSTATEs (and whole classes) that retrying can fix.
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03", "57014"}
_TRANSIENT_CLASSES = {"08", "53", "58"}
_AUTH_STATES = {"28P01", "28000"}
_NOT_FOUND_STATES = {"3D000", "42P01", "3F000", "42883"}
_CONFLICT_STATES = {"42P04", "42P07", "42710", "23505"}
# Messages that may quote data values: classes 22 (data exception) and 23 (constraint violation), and
# syntax errors (42601), which quote the statement's token "at or near" the error, e.g. a literal.
_DATA_CLASSES = {"22", "23"}
_QUOTES_INPUT_STATES = {"42601"}

# Connection failures carry no SQLSTATE in psycopg: libpq's FATAL text is all there is.
_CONNECT_PATTERNS: tuple[tuple[re.Pattern[str], type[EnvstewardError]], ...] = (
    (re.compile(r"database \".*\" does not exist"), NotFoundError),
    (
        re.compile(r"password authentication failed|no password supplied|no pg_hba\.conf entry"),
        AuthenticationError,
    ),
    (re.compile(r"role \".*\" does not exist|authentication failed"), AuthenticationError),
    (re.compile(r"permission denied for database|must have CONNECT privilege"), PermissionDeniedError),
)


USER_OBJECTS = """
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname <> 'information_schema' AND left(nspname, 3) <> 'pg_'
), by_extension AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), found AS (
    SELECT 1 AS o, 'schema ' || nspname AS what FROM user_ns WHERE nspname <> 'public'
    UNION ALL
    SELECT 2, 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
    UNION ALL
    SELECT 3, CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                  WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'table' END
              || ' ' || n.nspname || '.' || c.relname
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND (c.oid NOT IN (SELECT objid FROM by_extension WHERE classid = 'pg_class'::regclass))
    UNION ALL
    SELECT 4, CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END || ' ' || n.nspname || '.' || t.typname
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
    WHERE t.typcategory <> 'A' AND t.typtype <> 'm'
      AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      AND (t.oid NOT IN (SELECT objid FROM by_extension WHERE classid = 'pg_type'::regclass))
    UNION ALL
    SELECT 5, CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END
              || ' ' || n.nspname || '.' || p.proname
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
    WHERE p.oid NOT IN (SELECT objid FROM by_extension WHERE classid = 'pg_proc'::regclass)
)
SELECT what FROM found ORDER BY o, what LIMIT %s
"""
"""User objects in a database (see :meth:`PostgresClient.user_objects`)."""


def dsn_for_database(dsn: str, dbname: str) -> str:
    """``dsn`` (a libpq ``key=value`` string or URL) pointed at database ``dbname`` of the same server,
    with the same user and options; as a ``key=value`` string. No network call.

    Raises ConfigurationError (naming no part of the DSN) when ``dsn`` is malformed.
    """
    from psycopg.conninfo import make_conninfo

    try:
        return make_conninfo(dsn, dbname=dbname)
    except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError; its text may echo the DSN
        raise ConfigurationError(
            "malformed connection string: expected 'host=... user=... dbname=...' or postgresql://user@host/db",
            system=SYSTEM,
            operation="connect",
        ) from None


class PostgresClient:
    """A small PostgreSQL client: one short-lived connection per call (autocommit).

    ``dsn`` is a libpq connection string or URL *without* a password, e.g.
    ``host=db port=5432 user=app dbname=app`` or ``postgresql://app@db:5432/app``.
    """

    def __init__(self, dsn: str, password: SecretStr | None = None, connect_timeout: float = 5) -> None:
        """Raises ConfigurationError when the DSN is malformed or contains a password."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(dsn)
        except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError; its text may echo the DSN
            raise ConfigurationError(
                "malformed connection string: expected 'host=... user=... dbname=...' or postgresql://user@host/db",
                system=SYSTEM,
                operation="connect",
            ) from None
        if "password" in params:
            raise ConfigurationError(
                "the connection string contains a password; remove it and pass the password separately "
                "(as a secret reference)",
                system=SYSTEM,
                operation="connect",
            )
        self._dsn = dsn
        self._params: dict[str, Any] = dict(params)
        self._password = password
        self._connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"PostgresClient(target={self.target!r})"

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def dbname(self) -> str:
        """The database this client connects to (libpq's default: the user name)."""
        return str(self._params.get("dbname") or self._params.get("user") or "postgres")

    @property
    def target(self) -> str:
        """``host:port/dbname``, for messages (never credentials)."""
        host = self._params.get("host") or self._params.get("hostaddr") or "localhost"
        port = self._params.get("port") or "5432"
        return f"{host}:{port}/{self.dbname}"

    def for_database(self, name: str) -> PostgresClient:
        """A client for another database on the same server with the same credentials (no network call)."""
        return PostgresClient(
            dsn_for_database(self._dsn, name),
            password=self._password,
            connect_timeout=self._connect_timeout,
        )

    # -- connections -----------------------------------------------------------------------------------------

    @contextmanager
    def connect(self, operation: str = "connect") -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """An autocommit connection, closed on exit. psycopg errors raised inside become envsteward errors.

        Calls PostgreSQL. Raises TransientError, AuthenticationError, NotFoundError, PermissionDeniedError,
        ConflictError or PermanentError (see :func:`translate_postgres_error`).
        """
        import psycopg

        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, math.ceil(self._connect_timeout)),
            "application_name": "envsteward",
        }
        if self._password is not None:
            kwargs["password"] = self._password.get_secret_value()
        try:
            conn = psycopg.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            raise translate_postgres_error(exc, operation, self.target, connecting=True) from None
        try:
            with conn:
                yield conn
        except psycopg.Error as exc:
            raise translate_postgres_error(exc, operation, self.target, connecting=False) from None

    def query(self, query: str | sql.Composable, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (an empty list for statements without a result).

        Calls PostgreSQL. Raises the errors listed on :meth:`connect`.
        """
        with self.connect("query") as conn, conn.cursor() as cur:
            cur.execute(_as_query(query), params)
            if cur.description is None:
                return []
            return list(cur.fetchall())

    def execute(self, query: str | sql.Composable, params: Params = None) -> int:
        """Run one statement (or, without params, a script of several) and return the affected row count.

        Calls PostgreSQL. Raises the errors listed on :meth:`connect`.
        """
        with self.connect("execute") as conn, conn.cursor() as cur:
            cur.execute(_as_query(query), params)
            return cur.rowcount

    def ping(self) -> float:
        """Connect, run ``SELECT 1``, and return the whole round trip in milliseconds.

        Calls PostgreSQL. Raises the errors listed on :meth:`connect`.
        """
        started = time.perf_counter()
        with self.connect("ping") as conn:
            conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000.0

    def server_version(self) -> str:
        """The server's version string, e.g. ``15.20`` (``SHOW server_version``, first word).

        Calls PostgreSQL. Raises the errors listed on :meth:`connect`.
        """
        with self.connect("server_version") as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else ""

    # -- databases -------------------------------------------------------------------------------------------

    def database_exists(self, name: str) -> bool:
        """True when a database called ``name`` exists on the server. Calls PostgreSQL."""
        with self.connect("database_exists") as conn:
            row = conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name``. Calls PostgreSQL.

        Raises ConflictError when it exists (42P04), PermissionDeniedError without CREATEDB, or the errors
        listed on :meth:`connect`.
        """
        from psycopg import sql

        with self._admin_client(name).connect(f"create database {name}") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str, force: bool = True, missing_ok: bool = True) -> None:
        """``DROP DATABASE [IF EXISTS] name [WITH (FORCE)]``; ``force`` terminates its open sessions first.

        Calls PostgreSQL. Raises NotFoundError when it does not exist and ``missing_ok`` is false,
        PermissionDeniedError when not its owner, or the errors listed on :meth:`connect`.
        """
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE {if_exists}{name}{force}").format(
            if_exists=sql.SQL("IF EXISTS " if missing_ok else ""),
            name=sql.Identifier(name),
            force=sql.SQL(" WITH (FORCE)" if force else ""),
        )
        with self._admin_client(name).connect(f"drop database {name}") as conn:
            conn.execute(statement)

    def comment_on_database(self, name: str, comment: str) -> None:
        """``COMMENT ON DATABASE name IS comment`` (kept in the shared catalog, beside the database, until
        it is dropped). Calls PostgreSQL. Raises NotFoundError when it does not exist,
        PermissionDeniedError when not its owner, or the errors listed on :meth:`connect`."""
        from psycopg import sql

        statement = sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment))
        with self.connect(f"comment on database {name}") as conn:
            conn.execute(statement)

    def databases_with_prefix(self, prefix: str) -> list[tuple[str, str | None]]:
        """``(name, comment)`` of every database whose name starts with ``prefix`` (taken literally: ``_``
        and ``%`` are not wildcards), by name. Calls PostgreSQL (``pg_database``, ``shobj_description``).
        Raises ConfigurationError for an empty prefix, or the errors listed on :meth:`connect`."""
        if not prefix:
            raise ConfigurationError("a database prefix must not be empty", system=SYSTEM)
        with self.connect("list databases") as conn:
            rows = conn.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database "
                "WHERE left(datname, %s) = %s ORDER BY datname",
                (len(prefix), prefix),
            ).fetchall()
        return [(str(row[0]), None if row[1] is None else str(row[1])) for row in rows]

    def _admin_client(self, name: str) -> PostgresClient:
        # A database cannot be created from or dropped while connected to itself: use the maintenance db.
        return self.for_database(MAINTENANCE_DB) if name == self.dbname else self

    # -- content summaries -----------------------------------------------------------------------------------

    def table_row_counts(self) -> dict[str, int]:
        """Exact row count of every ordinary table outside the system schemas, keyed ``schema.table``.

        Calls PostgreSQL (``count(*)`` per table, in one connection). Raises the errors listed on
        :meth:`connect`.
        """
        from psycopg import sql

        counts: dict[str, int] = {}
        with self.connect("table_row_counts") as conn:
            for schema, table in conn.execute(LIST_TABLES).fetchall():
                statement = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
                row = conn.execute(statement).fetchone()
                counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        return counts

    def user_objects(self, limit: int = 20) -> list[str]:
        """Up to ``limit`` user objects of the database, as ``kind schema.name`` (``type public.people``):
        schemas other than ``public``, extensions other than ``plpgsql``, and every table, view,
        sequence, type, domain and function outside the system schemas that no extension owns. Empty for
        a database as ``CREATE DATABASE`` makes it (what a restore needs).

        Calls PostgreSQL (catalog queries). Raises the errors listed on :meth:`connect`.
        """
        with self.connect("user objects") as conn:
            rows = conn.execute(USER_OBJECTS, (limit,)).fetchall()
        return [str(row[0]) for row in rows]

    def table_checksums(self) -> dict[str, str]:
        """A deterministic checksum (32 hex digits) of every ordinary table's content, keyed ``schema.table``.

        Algorithm :data:`envsteward.adapters.pg_checksums.CHECKSUM_ALGORITHM` (order- and
        locale-independent, session settings pinned). Two databases with the same rows in a table give
        the same checksum for it. Calls PostgreSQL. Raises the errors listed on :meth:`connect`.
        """
        with self.connect("table_checksums") as conn:
            return {item.name: item.checksum for item in table_sums(conn)}


def _as_query(query: str | sql.Composable) -> Any:
    # psycopg's stubs want a LiteralString; callers pass catalog-provided SQL (health checks) as plain str.
    return query


def translate_postgres_error(
    exc: Exception, operation: str, target: str, *, connecting: bool
) -> EnvstewardError:
    """Map a psycopg exception to an envsteward error. The one place that interprets psycopg errors."""
    import psycopg

    where = f"{operation} on {target}"
    state = getattr(exc, "sqlstate", None)
    detail = _safe_detail(exc, state)
    kwargs = {"system": SYSTEM, "operation": where}
    if state:
        message = f"{detail} (SQLSTATE {state})"
        if state in _TRANSIENT_STATES or state[:2] in _TRANSIENT_CLASSES:
            return TransientError(message, **kwargs)
        if state in _AUTH_STATES:
            return AuthenticationError(message, **kwargs)
        if state == "42501":
            return PermissionDeniedError(message, **kwargs)
        if state in _NOT_FOUND_STATES:
            return NotFoundError(message, **kwargs)
        if state in _CONFLICT_STATES:
            return ConflictError(message, **kwargs)
        return PermanentError(message, **kwargs)
    if connecting or isinstance(exc, psycopg.OperationalError):
        for pattern, error_type in _CONNECT_PATTERNS:
            if pattern.search(detail):
                return error_type(detail, **kwargs)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return TransientError(detail or "connection failed", **kwargs)
    return PermanentError(detail or type(exc).__name__, **kwargs)


def _safe_detail(exc: Exception, state: str | None) -> str:
    """The server's primary message (or psycopg's first line), without data values it may quote.

    Quoted names in other messages (``relation "orders" does not exist``) stay: they say what to fix.
    """
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or (str(exc).strip().splitlines() or [""])[0]
    if state and (state[:2] in _DATA_CLASSES or state in _QUOTES_INPUT_STATES):
        text = redact_quoted(text)
    return shorten(text, 300)


# -- connection strings (libpq's parser, no network call) ------------------------------------------------


def _dsn_params(dsn: str) -> dict[str, Any] | None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return dict(conninfo_to_dict(dsn))
    except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError for junk; its text may echo the DSN
        return None


def same_server(dsn_a: str, dsn_b: str) -> bool:
    """True when both connection strings name the same host, port and user (libpq's defaults filled in);
    False when either is malformed. No network call, raises nothing."""
    a, b = _dsn_params(dsn_a), _dsn_params(dsn_b)
    if a is None or b is None:
        return False

    def ident(params: dict[str, Any]) -> tuple[str, str, str]:
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        return host, str(params.get("port") or "5432"), str(params.get("user") or "")

    return ident(a) == ident(b)


def dsn_database(dsn: str) -> str | None:
    """The database a connection string names (``dbname``), or None when it names none or is malformed.
    No network call, raises nothing."""
    params = _dsn_params(dsn)
    name = params.get("dbname") if params is not None else None
    return str(name) if name else None
