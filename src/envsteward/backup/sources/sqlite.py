"""SQLite: a consistent copy through the online backup API, streamed; restored atomically into a file.

SQLite is the ONE source that touches local disk. The online backup API (``sqlite3.Connection.backup``)
needs a destination database, and the alternatives are worse: ``Connection.serialize()`` holds the whole
database in memory, and reading the database file directly is wrong in WAL mode (committed pages may still
be in the ``-wal`` file). So the dump copies the database, in ONE backup step (``pages=-1``: one read
transaction, hence one consistent state, and no restart when another connection writes meanwhile), into a
fresh private temporary directory (mode 0700, file 0600), opens the copy, unlinks it at once (the data
stays reachable only through our open file descriptor, under no name), and streams it in 1 MiB pieces.
The disk used is bounded by the database's size and is released when the stream is closed, also on error.
Pass ``work_dir`` to put the temporary copy on a particular (e.g. encrypted, tmpfs) filesystem.

The source database is opened read-only (``mode=ro``): a missing file is NotFoundError, never a new empty
database. Table row counts and order-independent checksums (:func:`sqlite_table_summaries`) are computed
on the copy, i.e. on exactly the data in the stream; the restore target computes the same on what it wrote.

Restore writes the stream to a temporary file in the target's directory, checks it (``PRAGMA
quick_check``), fsyncs it and renames it over the target path (``os.replace``: atomic on POSIX), so the
target path holds either the old file or the complete restored one.

External calls: the local filesystem and the sqlite3 library.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from envsteward.backup.manifest import TableChecksum
from envsteward.backup.sources.base import (
    CHUNK_SIZE,
    DumpStream,
    RestoreReport,
    RestoreTarget,
    RestoreWriter,
    utcnow,
)
from envsteward.errors import ConflictError, IntegrityError, NotFoundError, PermanentError, TransientError

KIND = "sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
CHECKSUM_ALGORITHM = "sqlite: sum mod 2^256 of sha256(repr(row)) over every row (order-independent)"
_MODULUS = 1 << 256


def _error(exc: BaseException, operation: str) -> PermanentError | TransientError:
    """The one mapping from sqlite3/OS errors to envsteward errors (messages carry no data values)."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
        return TransientError(
            "the database is locked by another connection", system=KIND, operation=operation
        )
    if isinstance(exc, FileNotFoundError):
        return NotFoundError("no such file", system=KIND, operation=operation)
    if isinstance(exc, sqlite3.DatabaseError) and any(
        text in str(exc).lower() for text in ("not a database", "malformed")
    ):
        return IntegrityError("the file is not a valid SQLite database", system=KIND, operation=operation)
    if isinstance(exc, OSError):
        return PermanentError(exc.strerror or type(exc).__name__, system=KIND, operation=operation)
    return PermanentError(f"{type(exc).__name__}: {str(exc)[:200]}", system=KIND, operation=operation)


def sqlite_table_summaries(conn: sqlite3.Connection) -> tuple[TableChecksum, ...]:
    """Row count and content checksum of every table (``main.<table>``, sqlite_* internals excluded).

    The checksum is the sum modulo 2^256 of the SHA-256 of each row's ``repr`` (types kept: ``b'1'`` and
    ``'1'`` and ``1`` differ): independent of row order, constant memory. Reads every table.
    """
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name"
        )
    ]
    summaries: list[TableChecksum] = []
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        total = 0
        rows = 0
        for row in conn.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 - identifier quoted above
            total = (
                total + int.from_bytes(hashlib.sha256(repr(tuple(row)).encode()).digest(), "big")
            ) % _MODULUS
            rows += 1
        summaries.append(
            TableChecksum(
                name=f"main.{name}", rows=rows, checksum=f"{total:064x}", algorithm=CHECKSUM_ALGORITHM
            )
        )
    return tuple(summaries)


def file_table_summaries(path: str | os.PathLike[str]) -> tuple[TableChecksum, ...]:
    """:func:`sqlite_table_summaries` of the database file at ``path`` (opened read-only).

    Raises NotFoundError, IntegrityError (not a database), PermanentError.
    """
    operation = f"summarize {path}"
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _error(exc, operation) from None
    try:
        return sqlite_table_summaries(conn)
    except sqlite3.Error as exc:
        raise _error(exc, operation) from None
    finally:
        conn.close()


class SqliteBackupSource:
    """One SQLite database file (see the module docstring for how the copy is made and where)."""

    kind = KIND

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        work_dir: str | os.PathLike[str] | None = None,
        summarize: bool = True,
        busy_timeout_seconds: float = 10.0,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.summarize = summarize
        self.busy_timeout_seconds = busy_timeout_seconds
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"SqliteBackupSource(name={self.name!r}, path={str(self.path)!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path)}

    def dump(self) -> SqliteDumpStream:
        """A dump of the database. Entering makes the private copy (NotFoundError when the file is
        missing, IntegrityError when it is not a database, TransientError when it stays locked)."""
        return SqliteDumpStream(self)


class SqliteDumpStream(DumpStream):
    def __init__(self, source: SqliteBackupSource) -> None:
        super().__init__(KIND, source.name)
        self._source = source
        self._dir: str | None = None
        self._file: IO[bytes] | None = None

    def _open(self) -> None:
        source = self._source
        operation = f"backup {source.path}"
        if not source.path.is_file():
            raise NotFoundError("no such database file", system=KIND, operation=operation)
        self._dir = tempfile.mkdtemp(prefix="envsteward-sqlite-", dir=source.work_dir)  # mode 0700
        copy_path = os.path.join(self._dir, "copy.sqlite3")
        try:
            src = sqlite3.connect(
                f"{source.path.resolve().as_uri()}?mode=ro", uri=True, timeout=source.busy_timeout_seconds
            )
            try:
                dst = sqlite3.connect(copy_path)
                try:
                    os.chmod(copy_path, 0o600)
                    self._consistent_at = utcnow()
                    src.backup(dst, pages=-1)
                    page_count = int(dst.execute("PRAGMA page_count").fetchone()[0])
                    page_size = int(dst.execute("PRAGMA page_size").fetchone()[0])
                    check = str(dst.execute("PRAGMA quick_check").fetchone()[0])
                    if check != "ok":
                        raise IntegrityError(
                            "the copy fails PRAGMA quick_check: the source database is damaged",
                            system=KIND,
                            operation=operation,
                        )
                    tables = sqlite_table_summaries(dst) if source.summarize else None
                    # a rollback-journal copy: one self-contained file (no -wal to stream beside it)
                    dst.execute("PRAGMA journal_mode=DELETE")
                finally:
                    dst.close()
            finally:
                src.close()
            self._file = open(copy_path, "rb")  # noqa: SIM115 - closed in _close
        except sqlite3.Error as exc:
            raise _error(exc, operation) from None
        except OSError as exc:
            raise _error(exc, operation) from None
        # unlink at once: the open descriptor keeps the data readable, no name stays on disk
        self._remove_dir()
        self.tables = tables
        self.tools.update({"sqlite": sqlite3.sqlite_version})
        self.facts.update(
            {
                "path": str(source.path),
                "page_count": page_count,
                "page_size": page_size,
                "sqlite_version": sqlite3.sqlite_version,
            }
        )
        if tables is not None:
            self.facts["tables"] = {
                table.name: {"rows": table.rows, "checksum": table.checksum} for table in tables
            }
            self.facts["checksum_algorithm"] = CHECKSUM_ALGORITHM

    def _chunks(self) -> Iterator[bytes]:
        assert self._file is not None
        total = 0
        while piece := self._file.read(self._source.chunk_size):
            total += len(piece)
            yield piece
        self.facts["dump_bytes"] = total

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._remove_dir()


class SqliteRestoreTarget(RestoreTarget):
    """Restore into the file ``path``, atomically. ``overwrite=False`` (the default) refuses an existing
    file (ConflictError) so a drill never replaces a live database by mistake."""

    kind = KIND

    def __init__(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, summarize: bool = True
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.summarize = summarize

    def __repr__(self) -> str:
        return f"SqliteRestoreTarget(path={str(self.path)!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path)}

    def begin(self) -> SqliteRestoreWriter:
        """Create the temporary file beside the target. Raises ConflictError, NotFoundError (no directory)."""
        return SqliteRestoreWriter(self)


class SqliteRestoreWriter(RestoreWriter):
    def __init__(self, target: SqliteRestoreTarget) -> None:
        super().__init__(KIND, str(target.path))
        self._target = target
        self._operation = f"restore {target.path}"
        if target.path.exists() and not target.overwrite:
            raise ConflictError(
                "the target file exists; remove it or restore with overwrite=True",
                system=KIND,
                operation=self._operation,
            )
        directory = target.path.parent
        if not directory.is_dir():
            raise NotFoundError(
                f"directory {directory} does not exist", system=KIND, operation=self._operation
            )
        try:
            fd, self._temp = tempfile.mkstemp(
                prefix=f".{target.path.name}.", suffix=".restore", dir=directory
            )
        except OSError as exc:
            raise _error(exc, self._operation) from None
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise _error(exc, self._operation) from None

    def _finish(self) -> RestoreReport:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            with open(self._temp, "rb") as handle:
                head = handle.read(len(SQLITE_MAGIC))
            if head != SQLITE_MAGIC:
                raise IntegrityError(
                    "the restored data is not a SQLite database", system=KIND, operation=self._operation
                )
            tables = self._check_and_summarize()
            os.replace(self._temp, self._target.path)
            _fsync_dir(self._target.path.parent)
        except OSError as exc:
            raise _error(exc, self._operation) from None
        facts: dict[str, Any] = {"sqlite_version": sqlite3.sqlite_version}
        return self._make_report(1, tables=tables, facts=facts)

    def _check_and_summarize(self) -> tuple[TableChecksum, ...] | None:
        try:
            conn = sqlite3.connect(self._temp)
            try:
                check = str(conn.execute("PRAGMA quick_check").fetchone()[0])
                if check != "ok":
                    raise IntegrityError(
                        "the restored database fails PRAGMA quick_check",
                        system=KIND,
                        operation=self._operation,
                    )
                return sqlite_table_summaries(conn) if self._target.summarize else None
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise _error(exc, self._operation) from None

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
