"""A transaction's exported snapshot: how a PostgreSQL dump and its table checksums see the same data.

One connection starts a ``REPEATABLE READ, READ ONLY`` transaction and exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot=<id>`` and a second connection that imports it
(``SET TRANSACTION SNAPSHOT``) then read exactly what that transaction sees, for as long as it stays open.
Used by :mod:`envsteward.backup.sources.postgres`; the psycopg calls and their error translation live here.

External system: PostgreSQL (psycopg), over connections from
:meth:`envsteward.adapters.postgres.PostgresClient.connect`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envsteward.adapters.postgres import SYSTEM, translate_postgres_error
from envsteward.errors import PermanentError

if TYPE_CHECKING:
    from typing import TypeAlias

    import psycopg

    Connection: TypeAlias = psycopg.Connection[Any]
    """A connection from ``PostgresClient.connect`` (for annotations outside adapters/)."""


@dataclass(frozen=True)
class ExportedSnapshot:
    """What :func:`export_snapshot` returns (no secret in it)."""

    snapshot: str
    """The id to pass to ``pg_dump --snapshot`` or :func:`import_snapshot`."""
    consistent_at: datetime
    """The server's ``statement_timestamp()`` of the statement that took the snapshot (UTC)."""
    server_version: str
    """e.g. ``15.20``."""
    lc_monetary: str = "C"
    """The session's ``lc_monetary`` (shapes the text of ``money`` values in the dump's COPY data)."""


@contextlib.contextmanager
def translated(operation: str, target: str) -> Iterator[None]:
    """psycopg errors raised inside become envsteward errors (:func:`translate_postgres_error`), for work on
    a connection held open outside the ``with`` of ``PostgresClient.connect``."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise translate_postgres_error(exc, operation, target, connecting=False) from None


def export_snapshot(conn: Connection, target: str) -> ExportedSnapshot:
    """Begin a ``REPEATABLE READ, READ ONLY`` transaction on ``conn`` and export its snapshot; the snapshot
    lives until that transaction ends (:func:`end_transaction`). ``target`` names the database in messages.

    Calls PostgreSQL. Raises TransientError, PermissionDeniedError, PermanentError (translated).
    """
    with translated("export snapshot", target):
        # psycopg reads timestamptz only in ISO style; a database may default to another DateStyle
        conn.execute("SELECT set_config('DateStyle', 'ISO', false)")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute(
            "SELECT pg_export_snapshot(), statement_timestamp(), current_setting('server_version'),"
            " current_setting('lc_monetary')"
        ).fetchone()
    if row is None:  # pragma: no cover - a SELECT without FROM always returns one row
        raise PermanentError("could not export a snapshot", system=SYSTEM, operation=f"pg_dump {target}")
    moment: datetime = row[1]
    return ExportedSnapshot(
        snapshot=str(row[0]),
        consistent_at=moment.astimezone(UTC),
        server_version=str(row[2]).split()[0],
        lc_monetary=str(row[3]),
    )


def import_snapshot(conn: Connection, snapshot: str, *, application_name: str) -> None:
    """Name the session ``application_name``, then begin a ``REPEATABLE READ, READ ONLY`` transaction on
    ``conn`` that sees ``snapshot`` (exported by :func:`export_snapshot`, whose transaction is still open).

    Calls PostgreSQL; psycopg errors propagate (call inside ``PostgresClient.connect``, which translates).
    """
    from psycopg import sql

    conn.execute("SELECT set_config('application_name', %s, false)", (application_name,))
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


def end_transaction(conn: Connection) -> None:
    """``ROLLBACK`` (ends a read-only snapshot transaction). Calls PostgreSQL; raises nothing (best effort:
    the connection may already be broken)."""
    with contextlib.suppress(Exception):
        conn.execute("ROLLBACK")


def cancel_query(conn: Connection, timeout: float = 5.0) -> None:
    """Ask the server to cancel the query running on ``conn`` (from another thread). Calls PostgreSQL;
    raises nothing (best effort)."""
    with contextlib.suppress(Exception):
        conn.cancel_safe(timeout=timeout)


__all__ = ["ExportedSnapshot", "cancel_query", "end_transaction", "export_snapshot", "import_snapshot"]
