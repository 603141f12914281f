"""PostgreSQL: ``pg_dump -Fc`` streamed out of one exported snapshot, ``pg_restore`` streamed back in.

Consistency. The dump opens a connection, starts a ``REPEATABLE READ, READ ONLY`` transaction and
exports its snapshot (``pg_export_snapshot()``); pg_dump is started with ``--snapshot=<id>`` and so sees
exactly the data that transaction sees. The exporting transaction stays open (and the snapshot alive) until
the dump AND the table summaries are done. The per-table row counts and checksums are derived FROM THE
DUMP ITSELF as it streams by (algorithm ``pg-copy-xxh3-framed128/v5``, an order-dependent hash of each
table's COPY rows, each framed as pg_dump frames it, :mod:`envsteward.adapters.pg_checksums`; the archive is
parsed by
:mod:`~envsteward.backup.sources.pg_archive`), so the checksums describe exactly the snapshot that was
dumped and cost no extra scan of the database (nor a Python loop per row). A restore that brings a table
back in another physical order is re-checked order-independently (:func:`reorder_check`).
pg_dump's session is pinned (``PGOPTIONS``: TimeZone UTC, bytea_output hex, lc_monetary) so a
verifier can reproduce the COPY text byte for byte. When the archive cannot be read that way (pg_dump's
own compression on, ``--inserts``, an archive version this envsteward does not know), the checksums fall
back to the server-side algorithm :data:`CHECKSUM_ALGORITHM` (``pg-md5-sum128/v2``), computed on a second
connection that imports the same snapshot (``SET TRANSACTION SNAPSHOT``) while pg_dump runs. The stream's
``tables`` are set at the end; a failure of the checksum thread makes the stream raise (so the pipeline
aborts the upload). A DR drill that restores the dump and runs :func:`database_table_summaries` (with the
manifest's algorithm) on the restored database must therefore get identical numbers; any difference is a
real defect. ``consistent_at`` is the server's ``statement_timestamp()`` of the statement
that took the snapshot: the moment the backup represents (what RPO is measured against).

Streaming. pg_dump writes to a pipe; the stream reads it in 1 MiB pieces and yields them. Nothing is ever
held whole in memory or written to local disk. pg_dump's own compression is off by default
(``--compress=0``): the backup pipeline compresses with zstd, faster and smaller than zlib twice. When
pg_dump exits non-zero the iterator raises (after the chunks it already yielded), so the pipeline aborts
the upload. stderr is drained in a thread and scrubbed before it reaches a message.

Deadlines. pg_dump and pg_restore each run in their own process group with a deadline of their own
(``timeout_seconds``; by default the backup task's timeout, :mod:`envsteward.backup.limits`), so a dump
queued behind ``LOCK TABLE ... ACCESS EXCLUSIVE`` or a restore stuck on a lock cannot outlive the run that
started it: at the deadline the group is killed, the tool's server session (unique ``application_name``) is
terminated, and the stream or writer raises ToolTimeoutError naming the tool, the target and the limit;
the pipeline then removes the partial upload. The dump's deadline also bounds the table checksums.

Credentials. The DSN never holds a password (``PostgresClient`` refuses one); the password goes to
pg_dump / pg_restore through ``PGPASSWORD`` in the subprocess environment only, never the command line.

Restore. ``pg_restore --format=custom --no-owner --no-privileges --exit-on-error`` reads the dump from
stdin into a database the caller created (a scratch database for drills). Reading custom format from a
pipe works in archive order without parallel jobs (no ``-j``), which is what a full restore needs.

External calls: PostgreSQL (through :mod:`envsteward.adapters.postgres` and
:mod:`~envsteward.adapters.pg_snapshot`), the ``pg_dump`` and ``pg_restore`` executables.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from envsteward.adapters import pg_checksums, pg_snapshot
from envsteward.adapters.postgres import PostgresClient
from envsteward.backup.limits import BACKUP_TIMEOUT_SECONDS, RESTORE_TIMEOUT_SECONDS
from envsteward.backup.manifest import TableChecksum
from envsteward.backup.sources import _tools
from envsteward.backup.sources.base import CHUNK_SIZE, DumpStream, RestoreReport, RestoreTarget, RestoreWriter
from envsteward.backup.sources.pg_archive import ArchiveScanner, UnsupportedArchive
from envsteward.errors import EnvstewardError, IntegrityError, PermanentError

if TYPE_CHECKING:
    from envsteward.adapters.pg_snapshot import Connection

KIND = "postgres"
CUSTOM_FORMAT_MAGIC = b"PGDMP"

CHECKSUM_ALGORITHM = pg_checksums.CHECKSUM_ALGORITHM
"""What :attr:`TableChecksum.algorithm` says for PostgreSQL tables (the drill compares like with like)."""

DUMP_CHECKSUM_FAMILY = pg_checksums.FRAMED_ALGORITHM
"""What a dump records: v5 (order-dependent hash of the framed rows, the default), v4 (``STREAM_ALGORITHM``,
order-dependent hash of the COPY text) or v3 (``COPY_ALGORITHM``, per-row multiset sum); v4 and v3 are kept
so benchmarks and tests can still make such backups (stored ones verify whatever the default)."""

SUMMARY_APPLICATION_NAME = "envsteward-table-checksums"
"""``application_name`` of the connection that computes the table summaries during a dump."""


# ---------------------------------------------------------------------------------------------------------
# Table summaries (the same function on the dumped snapshot and on a restored database)
# ---------------------------------------------------------------------------------------------------------


def table_summaries(
    conn: Connection, *, should_stop: Callable[[], bool] | None = None
) -> tuple[TableChecksum, ...]:
    """Row count and content checksum of every ordinary table, in ``schema.table`` order, over ``conn``.

    Runs in whatever transaction ``conn`` is in (a snapshot transaction, or autocommit), with the
    algorithm of :mod:`envsteward.adapters.pg_checksums` (the one shared with
    :meth:`PostgresClient.table_checksums`): order-independent, no sort, constant server memory.
    ``should_stop``: see :func:`~envsteward.adapters.pg_checksums.table_sums`.
    Calls PostgreSQL; psycopg errors propagate (wrap the call in ``PostgresClient.connect``).
    """
    return tuple(
        TableChecksum(name=item.name, rows=item.rows, checksum=item.checksum, algorithm=CHECKSUM_ALGORITHM)
        for item in pg_checksums.table_sums(conn, should_stop=should_stop)
    )


PSQL_MIN_PAGES = 1024
"""Tables of at least this many pages (8 MiB, by the planner's estimate) are verified through ``psql``
(:func:`_psql_table_sum`): its C client hands over the COPY text in large blocks, about 3x less client CPU
than the driver's row-by-row ``COPY`` iteration; smaller tables go over the driver (no process start)."""


def database_table_summaries(
    client: PostgresClient,
    expected: Sequence[TableChecksum] | None = None,
    *,
    psql: str = "psql",
    psql_min_pages: int = PSQL_MIN_PAGES,
    timeout_seconds: float = RESTORE_TIMEOUT_SECONDS,
) -> tuple[TableChecksum, ...]:
    """Table summaries of the database ``client`` points at (e.g. a restored scratch database), made with
    the algorithm of ``expected`` (the backup's manifest) so the two can be compared.

    ``expected`` made with ``pg-copy-xxh3-framed128/v5`` (order-dependent hash of the framed rows, the
    default), ``pg-copy-xxh3-stream128/v4`` (order-dependent stream hash) or ``pg-copy-xxh3-sum128/v3``
    (per-row multiset sum): each table named in ``expected`` is read once with
    ``COPY ... TO STDOUT`` (``synchronize_seqscans`` off) and hashed client-side, streaming
    (tables of ``psql_min_pages`` or more through the ``psql`` executable when it is
    installed, the others over the driver: :func:`envsteward.adapters.pg_checksums.copy_table_sums`; the
    same text either way); tables not found are left out (:func:`compare_tables` reports them missing).
    Otherwise (None, or older backups' ``pg-md5-sum128/v2``): :func:`table_summaries`, computed by the
    server, of every table.

    Calls PostgreSQL (and ``psql``). Raises the errors of ``PostgresClient.connect``, psql's translated
    failure, ToolTimeoutError after ``timeout_seconds`` for one psql run.
    """
    algorithms = {table.algorithm for table in expected or ()}
    algorithm = next(iter(algorithms)) if len(algorithms) == 1 else None
    if algorithm is None or pg_checksums.copy_algorithm_settings(algorithm) is None:
        with client.connect("table summaries") as conn:
            return table_summaries(conn)
    family = pg_checksums.algorithm_family(algorithm) or pg_checksums.COPY_ALGORITHM
    psql_path = shutil.which(psql)
    sums: list[TableChecksum] = []
    with client.connect("table summaries") as conn:
        settings = pg_checksums.pin_copy_session(conn, algorithm)
        present = {f"{schema}.{table}": (schema, table) for schema, table in pg_checksums.list_tables(conn)}
        pages = pg_checksums.table_pages(conn)
        for name in (table.name for table in expected or ()):
            if name not in present:
                continue
            schema, table = present[name]
            if psql_path is not None and pages.get(name, 0) >= psql_min_pages:
                script = " ".join(
                    (
                        pg_checksums.session_statements(conn, settings),
                        pg_checksums.copy_statement(conn, schema, table) + ";",
                    )
                )
                item = _psql_table_sum(client, psql_path, script, name, timeout_seconds, family=family)
            else:
                item = pg_checksums.copy_table_sum(conn, schema, table, family=family)
            sums.append(
                TableChecksum(name=item.name, rows=item.rows, checksum=item.checksum, algorithm=algorithm)
            )
    return tuple(sums)


def _terminate(client: PostgresClient, app_name: str) -> None:
    """End the server sessions named ``app_name`` (a killed tool's). Calls PostgreSQL."""
    _tools.terminate_sessions(client.connect, app_name)


def _psql_table_sum(
    client: PostgresClient,
    psql: str,
    script: str,
    name: str,
    timeout_seconds: float,
    *,
    family: str = pg_checksums.COPY_ALGORITHM,
) -> pg_checksums.TableSum:
    """Run ``script`` (session settings, then one ``COPY ... TO STDOUT``) with psql and hash its output
    (v4 ``family``: block by block; v5: block by block, rows framed with numpy; no per-row Python work
    either way; v3: per line).

    Runs psql (password through ``PGPASSWORD`` only). Raises psql's translated failure, ToolTimeoutError
    at the deadline, IntegrityError when the output does not end with a newline.
    """
    operation = f"psql COPY {name} of {client.target}"
    app_name = _tools.application_name("psql")
    # the same client's DSN (never a password) and credentials, handed to its own tool as for pg_restore
    password = client._password
    env = _tools.tool_environment(password, {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": app_name})
    argv = [
        psql,
        "-X",
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        f"--dbname={client._dsn}",
        "-c",
        script,
    ]
    proc = _tools.start(argv, env, stdin=False, operation=operation)
    deadline = _tools.Deadline(
        proc,
        timeout_seconds,
        tool="psql",
        target=client.target,
        operation=operation,
        on_expire=functools.partial(_terminate, client, app_name),
    )
    stderr = _tools.StderrTail(proc.stderr)
    acc: pg_checksums.RowSum | pg_checksums.StreamSum | pg_checksums.FramedSum
    carry = b""
    try:
        assert proc.stdout is not None
        if family == pg_checksums.FRAMED_ALGORITHM:
            acc = pg_checksums.FramedSum()
            while piece := proc.stdout.read(CHUNK_SIZE):
                acc.update(piece)
            carry = acc.pending
        elif family == pg_checksums.STREAM_ALGORITHM:
            acc = pg_checksums.StreamSum()
            while piece := proc.stdout.read(CHUNK_SIZE):
                acc.update(piece)
                carry = piece[-1:] if piece[-1:] != b"\n" else b""
        else:
            acc = pg_checksums.RowSum()
            while piece := proc.stdout.read(CHUNK_SIZE):
                lines = (carry + piece).split(b"\n") if carry else piece.split(b"\n")
                carry = lines.pop()
                acc.add_lines(lines)
        returncode = proc.wait()
    finally:
        deadline.cancel()
        _tools.stop(proc)
    if deadline.expired:
        raise deadline.error()
    if returncode != 0:
        raise _tools.tool_error("psql", returncode, stderr.text(), operation=operation, password=password)
    if carry:
        raise IntegrityError("psql's COPY output ended without a newline", system=KIND, operation=operation)
    return pg_checksums.TableSum(name, acc.rows, acc.checksum)


def compare_tables(expected: Sequence[TableChecksum], actual: Sequence[TableChecksum]) -> list[str]:
    """Every difference between two sets of table summaries, as sentences; empty when they match.

    Pure. Tables missing on either side, different row counts, different checksums, and summaries made
    with different algorithms are all reported (a drill that cannot compare must fail, not pass).
    """
    problems: list[str] = []
    expected_algorithms = sorted({str(table.algorithm) for table in expected})
    actual_algorithms = sorted({str(table.algorithm) for table in actual})
    if expected and actual and expected_algorithms != actual_algorithms:
        return [
            "the table checksums were made with different algorithms and cannot be compared: the backup "
            f"used {' + '.join(map(repr, expected_algorithms))}, the restored data "
            f"{' + '.join(map(repr, actual_algorithms))}; summarise the restored data with the backup's "
            "algorithm (an envsteward version that knows it)"
        ]
    wanted = {table.name: table for table in expected}
    found = {table.name: table for table in actual}
    for name in sorted(wanted.keys() - found.keys()):
        problems.append(f"table {name} is missing from the restored data")
    for name in sorted(found.keys() - wanted.keys()):
        problems.append(f"table {name} is in the restored data but not in the backup")
    for name in sorted(wanted.keys() & found.keys()):
        before, after = wanted[name], found[name]
        if before.algorithm != after.algorithm:
            problems.append(f"table {name}: checksums were made with different algorithms; cannot compare")
            continue
        if before.rows != after.rows:
            problems.append(f"table {name}: {after.rows} rows restored, the backup had {before.rows}")
        elif before.checksum != after.checksum:
            problems.append(f"table {name}: same row count ({after.rows}) but different content checksum")
    return problems


def order_suspects(expected: Sequence[TableChecksum], actual: Sequence[TableChecksum]) -> list[str]:
    """Tables whose order-dependent (v4, v5) hashes differ while their row counts agree: the same rows may
    have come back in another physical order (or a row differs). Pure."""
    found = {table.name: table for table in actual}
    suspects: list[str] = []
    for before in expected:
        after = found.get(before.name)
        if (
            after is not None
            and after.algorithm == before.algorithm
            and pg_checksums.algorithm_family(before.algorithm or "") in pg_checksums.ORDERED_FAMILIES
            and after.rows == before.rows
            and after.checksum != before.checksum
        ):
            suspects.append(before.name)
    return suspects


DumpReader = Callable[[Callable[[bytes], None]], Any]
"""Streams the backup's plaintext (the custom-format dump) into the sink it is given, e.g.
``lambda sink: restore_backup(store, backup_id, keys, sink, verify_first=False)``."""


def reorder_check(
    client: PostgresClient,
    expected: Sequence[TableChecksum],
    names: Sequence[str],
    read_dump: DumpReader,
) -> dict[str, str | None]:
    """Re-check the tables ``names`` (v4 / v5 order-dependent hashes that differ with equal row counts)
    order-independently: the dump is read again (``read_dump``) and, for these tables only, both its
    order-dependent hash (the manifest's family) and its per-row multiset sum (v3) are computed; the
    restored tables are summed the v3 way. A table passes when the dump's order-dependent hash is the
    manifest's (the backup holds what was recorded) and the two multisets are equal (the restore holds the
    same rows, in another order).

    Returns ``name -> None`` (same rows, another order) or ``name -> why it fails``. Calls the object store
    and key provider (through ``read_dump``), PostgreSQL and psql. Raises the errors of ``read_dump`` and
    of :func:`database_table_summaries`; IntegrityError / UnsupportedArchive when the dump cannot be
    scanned.
    """
    wanted = {table.name: table for table in expected if table.name in set(names)}
    families = {pg_checksums.algorithm_family(table.algorithm or "") for table in wanted.values()}
    family = families.pop() if len(families) == 1 else None
    if family not in pg_checksums.ORDERED_FAMILIES:
        return dict.fromkeys(wanted, "no order-dependent checksum to re-check")
    assert family is not None
    scanner = ArchiveScanner(stream=True, rows=True, only=wanted.keys(), family=family)
    read_dump(scanner.feed)
    dump_stream = {item.name: item for item in scanner.finish("stream")}
    dump_rows = {item.name: item for item in scanner.finish("rows")}
    v3 = {
        name: TableChecksum(
            name=name,
            rows=table.rows,
            checksum="0" * 32,
            algorithm=pg_checksums.as_family(table.algorithm or "", pg_checksums.COPY_ALGORITHM),
        )
        for name, table in wanted.items()
    }
    restored = {item.name: item for item in database_table_summaries(client, list(v3.values()))}
    verdict: dict[str, str | None] = {}
    for name, table in wanted.items():
        stream, rows, after = dump_stream.get(name), dump_rows.get(name), restored.get(name)
        if stream is None or rows is None or after is None:
            verdict[name] = "could not be re-read from the backup or the restored database"
        elif (stream.rows, stream.checksum) != (table.rows, table.checksum):
            verdict[name] = "the backup's data does not match its own manifest"
        elif (after.rows, after.checksum) != (rows.rows, rows.checksum):
            verdict[name] = "different rows (an order-independent re-check of every row agrees)"
        else:
            verdict[name] = None
    return verdict


# ---------------------------------------------------------------------------------------------------------
# Dump
# ---------------------------------------------------------------------------------------------------------


class PostgresBackupSource:
    """One PostgreSQL database, dumped with ``pg_dump -Fc`` from an exported snapshot.

    ``dsn``: libpq string or URL WITHOUT a password (``postgresql://backup@db:5432/orders``); ``password``
    is passed to libpq and to pg_dump's environment only. ``compress_level``: pg_dump's own compression
    (0: leave it to the pipeline's zstd). ``lock_wait_timeout_ms``: how long pg_dump waits for a table
    lock before failing (instead of hanging behind an ``ACCESS EXCLUSIVE`` lock). ``summarize``: compute
    per-table row counts and checksums of the dumped data (from the dump stream: no extra read of the
    database unless the archive cannot be parsed, see the module docstring; the catalog's
    ``PostgresBackup.table_checksums``).

    Raises ConfigurationError for a malformed DSN or one that contains a password.
    """

    kind = KIND

    def __init__(
        self,
        name: str,
        dsn: str,
        password: SecretStr | None = None,
        *,
        pg_dump: str = "pg_dump",
        compress_level: int = 0,
        lock_wait_timeout_ms: int | None = 60_000,
        summarize: bool = True,
        extra_args: Sequence[str] = (),
        connect_timeout: float = 10.0,
        chunk_size: int = CHUNK_SIZE,
        timeout_seconds: float = BACKUP_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.client = PostgresClient(dsn, password=password, connect_timeout=connect_timeout)
        self._dsn = dsn
        self._password = password
        self.pg_dump = pg_dump
        self.compress_level = compress_level
        self.lock_wait_timeout_ms = lock_wait_timeout_ms
        self.summarize = summarize
        self.extra_args = tuple(extra_args)
        self.connect_timeout = connect_timeout
        self.chunk_size = chunk_size
        self.timeout_seconds = timeout_seconds
        self._tool_version: str | None = None

    def __repr__(self) -> str:
        return f"PostgresBackupSource(name={self.name!r}, target={self.client.target!r})"

    def describe(self) -> dict[str, str]:
        """``kind``, ``name``, ``target`` (``host:port/db``) and ``database``. No network call."""
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.client.target,
            "database": self.client.dbname,
        }

    def tool_version(self) -> str:
        """``pg_dump --version`` (e.g. ``15.20``), cached. Runs the executable once."""
        if self._tool_version is None:
            self._tool_version = _tools.tool_version(self.pg_dump)
        return self._tool_version

    def command(self, snapshot: str) -> list[str]:
        """pg_dump's argv for ``snapshot`` (never holds the password)."""
        argv = [
            self.pg_dump,
            "--format=custom",
            f"--compress={self.compress_level}",
            f"--snapshot={snapshot}",
            "--no-password",
        ]
        if self.lock_wait_timeout_ms is not None:
            argv.append(f"--lock-wait-timeout={self.lock_wait_timeout_ms}")
        argv.extend(self.extra_args)
        argv.append(f"--dbname={self._dsn}")
        return argv

    def dump(self) -> PostgresDumpStream:
        """A dump of the database; enter it to take the snapshot and start pg_dump.

        Entering calls PostgreSQL (NotFoundError for a missing database, AuthenticationError,
        TransientError when unreachable...) and starts pg_dump (ConfigurationError when not installed).
        Iterating raises the translated pg_dump failure (password scrubbed) when pg_dump exits non-zero.
        """
        return PostgresDumpStream(self)


class PostgresDumpStream(DumpStream):
    """A running ``pg_dump --snapshot`` plus, when summarising, the checksum thread on the same snapshot
    (see :class:`PostgresBackupSource.dump`)."""

    def __init__(self, source: PostgresBackupSource) -> None:
        super().__init__(KIND, source.name)
        self._source = source
        self._stack = ExitStack()
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _tools.StderrTail | None = None
        self._deadline: _tools.Deadline | None = None
        self._app_name = _tools.application_name("pg_dump")
        self._summary_thread: threading.Thread | None = None
        self._summary_conn: Connection | None = None
        self._summary_lock = threading.Lock()
        self._summary_stop = threading.Event()
        self._summary_result: tuple[TableChecksum, ...] | None = None
        self._summary_error: BaseException | None = None
        self._scanner: ArchiveScanner | None = None
        self._scan_fallback: str | None = None
        self._lc_monetary = "C"
        self.snapshot: str | None = None
        self.server_version: str | None = None

    @property
    def _operation(self) -> str:
        return f"pg_dump {self._source.client.target}"

    def _open(self) -> None:
        source = self._source
        conn = self._stack.enter_context(source.client.connect(f"dump snapshot of {source.name}"))
        self._conn = conn
        exported = pg_snapshot.export_snapshot(conn, source.client.target)
        self.snapshot = exported.snapshot
        self._consistent_at = exported.consistent_at
        self.server_version = exported.server_version
        self._lc_monetary = exported.lc_monetary
        extra = {
            "PGCONNECT_TIMEOUT": str(max(1, int(source.connect_timeout))),
            "PGAPPNAME": self._app_name,
        }
        if source.summarize and pg_checksums.recordable(exported.lc_monetary):
            # the checksums are derived from the dump's COPY text: pin what shapes it (restore-safe values)
            options = pg_checksums.pg_dump_options(exported.lc_monetary)
            inherited = _tools.tool_environment(None).get("PGOPTIONS", "").strip()
            extra["PGOPTIONS"] = f"{inherited} {options}".strip()
            ordered = DUMP_CHECKSUM_FAMILY in pg_checksums.ORDERED_FAMILIES
            self._scanner = ArchiveScanner(
                stream=ordered,
                rows=not ordered,
                family=DUMP_CHECKSUM_FAMILY if ordered else pg_checksums.FRAMED_ALGORITHM,
            )
        env = _tools.tool_environment(source._password, extra)
        self._proc = _tools.start(source.command(self.snapshot), env, stdin=False, operation=self._operation)
        _tools.widen_pipe(self._proc.stdout)
        self._deadline = _tools.Deadline(
            self._proc,
            source.timeout_seconds,
            tool="pg_dump",
            target=source.client.target,
            operation=self._operation,
            on_expire=self._terminate_sessions,
        )
        self._stderr = _tools.StderrTail(self._proc.stderr)
        self.tools.update({"pg_dump": source.tool_version(), "postgres_server": self.server_version})
        if source.summarize and self._scanner is None:
            self._fall_back("lc_monetary cannot be recorded in the algorithm text")

    # -- checksums from the dump stream (v5, v4, v3) -------------------------------------------------------

    def _scan(self, piece: bytes) -> None:
        """Feed ``piece`` to the archive scanner; on an archive it cannot read, fall back to the server-side
        checksums (v2) in the same snapshot, which is still open."""
        assert self._scanner is not None
        try:
            self._scanner.feed(piece)
        except (UnsupportedArchive, IntegrityError) as exc:
            self._fall_back(str(exc))

    def _fall_back(self, reason: str) -> None:
        self._scanner = None
        self._scan_fallback = reason
        assert self.snapshot is not None
        self._summary_thread = threading.Thread(
            target=self._summarize, args=(self.snapshot,), name=f"pg-table-checksums-{self._source.name}"
        )
        self._summary_thread.daemon = True
        self._summary_thread.start()

    def _tables(self) -> tuple[tuple[TableChecksum, ...], str]:
        """The table checksums (from the stream, or from the fallback thread) and their algorithm."""
        if self._scanner is not None:
            try:
                sums = self._scanner.finish()
                algorithm = pg_checksums.copy_algorithm(
                    self._scanner.client_encoding, self._lc_monetary, prefix=DUMP_CHECKSUM_FAMILY
                )
            except (IntegrityError, ValueError) as exc:
                self._fall_back(str(exc))
            else:
                tables = tuple(
                    TableChecksum(name=item.name, rows=item.rows, checksum=item.checksum, algorithm=algorithm)
                    for item in sums
                )
                return tables, algorithm
        return self._summaries(), CHECKSUM_ALGORITHM

    # -- the server-side checksum thread (v2: fallback) ----------------------------------------------------

    def _summarize(self, snapshot: str) -> None:
        """Thread body: import ``snapshot`` on a second connection and summarise every table in it.

        Never raises: the result or the (translated) error is kept for :meth:`_summaries`.
        """
        try:
            with self._source.client.connect(f"table checksums of {self._source.name}") as conn:
                with self._summary_lock:
                    if self._summary_stop.is_set():
                        return
                    self._summary_conn = conn
                pg_snapshot.import_snapshot(conn, snapshot, application_name=SUMMARY_APPLICATION_NAME)
                tables = table_summaries(conn, should_stop=self._summary_stop.is_set)
                conn.execute("ROLLBACK")
            self._summary_result = tables
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._summary_error = exc
        finally:
            with self._summary_lock:
                self._summary_conn = None

    def _raise_summary_error(self) -> None:
        error = self._summary_error
        if error is None:
            return
        if isinstance(error, EnvstewardError):
            raise error
        raise PermanentError(
            f"computing the table checksums failed: {type(error).__name__}",
            system=KIND,
            operation=f"table checksums {self._source.client.target}",
        ) from error

    def _summaries(self) -> tuple[TableChecksum, ...]:
        """Wait for the checksum thread (until the dump's deadline); its tables, or its error raised here.

        Raises ToolTimeoutError when the deadline passes first (the thread's query is cancelled).
        """
        assert self._summary_thread is not None
        assert self._deadline is not None
        self._summary_thread.join(self._deadline.remaining())
        if self._summary_thread.is_alive():
            self._stop_summaries()
            raise self._deadline.error("pg_dump's table checksums")
        self._raise_summary_error()
        if self._summary_result is None:  # pragma: no cover - the thread sets one or the other
            raise PermanentError(
                "the table checksums stopped before the end", system=KIND, operation=self._operation
            )
        return self._summary_result

    def _stop_summaries(self) -> None:
        """Ask the checksum thread to stop (cancel its running query) and wait for it."""
        thread = self._summary_thread
        if thread is None:
            return
        self._summary_stop.set()
        with self._summary_lock:
            conn = self._summary_conn
            if conn is not None:
                pg_snapshot.cancel_query(conn, timeout=5.0)
        thread.join(timeout=30.0)

    # -- the dump ----------------------------------------------------------------------------------------

    def _chunks(self) -> Iterator[bytes]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        assert self._stderr is not None
        source = self._source
        stdout = self._proc.stdout
        total = 0
        first = True
        while piece := stdout.read(source.chunk_size):
            if first:
                first = False
                if not piece.startswith(CUSTOM_FORMAT_MAGIC) and self._proc.poll() in (None, 0):
                    raise IntegrityError(
                        "pg_dump's output does not start with the custom-format signature (PGDMP); "
                        "do not pass --format in extra_args",
                        system=KIND,
                        operation=self._operation,
                    )
            if self._scanner is not None:
                self._scan(piece)
            # fail early: no point uploading the rest of a backup whose checksums already failed
            self._raise_summary_error()
            total += len(piece)
            yield piece
        returncode = self._proc.wait()
        assert self._deadline is not None
        self._deadline.cancel()
        if self._deadline.expired:
            raise self._deadline.error()
        stderr = self._stderr.text()
        if returncode != 0:
            raise _tools.tool_error(
                "pg_dump", returncode, stderr, operation=self._operation, password=source._password
            )
        if total == 0:
            raise PermanentError("pg_dump exited 0 but wrote nothing", system=KIND, operation=self._operation)
        facts: dict[str, Any] = {
            "database": source.client.dbname,
            "target": source.client.target,
            "format": "custom",
            "dump_bytes": total,
            "snapshot": self.snapshot,
            "server_version": self.server_version,
            "pg_dump_version": self.tools["pg_dump"],
        }
        if source.summarize:
            self.tables, algorithm = self._tables()
            facts["tables"] = {
                table.name: {"rows": table.rows, "checksum": table.checksum} for table in self.tables
            }
            facts["checksum_algorithm"] = algorithm
            facts["checksum_source"] = (
                "dump stream" if self._scan_fallback is None else f"server scan ({self._scan_fallback})"
            )
        self.facts.update(facts)

    def _terminate_sessions(self) -> None:
        """End pg_dump's server session (after pg_dump was killed). Calls PostgreSQL."""
        _tools.terminate_sessions(self._source.client.connect, self._app_name)

    def _close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._proc is not None and _tools.stop(self._proc):
            # stopped early: its session may be queued for a lock and would outlive it
            with contextlib.suppress(Exception):
                self._terminate_sessions()
        # the exporting transaction must outlive the checksum thread's snapshot import
        self._stop_summaries()
        if self._conn is not None:
            pg_snapshot.end_transaction(self._conn)
        with contextlib.suppress(Exception):
            self._stack.close()


# ---------------------------------------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------------------------------------


class PostgresRestoreTarget(RestoreTarget):
    """Restore a custom-format dump into an EXISTING database (the caller creates it, e.g. a scratch DB).

    ``single_transaction``: all or nothing (``--single-transaction``); by default objects restored before
    a failure stay (``--exit-on-error`` stops at the first error either way), so restore into a scratch
    database and drop it on failure. ``summarize``: compute :func:`table_summaries` of the restored
    database into the report, to compare with the dump's (:func:`compare_tables`).

    Raises ConfigurationError for a malformed DSN or one that contains a password.
    """

    kind = KIND

    def __init__(
        self,
        dsn: str,
        password: SecretStr | None = None,
        *,
        pg_restore: str = "pg_restore",
        single_transaction: bool = False,
        summarize: bool = True,
        extra_args: Sequence[str] = (),
        connect_timeout: float = 10.0,
        timeout_seconds: float = RESTORE_TIMEOUT_SECONDS,
    ) -> None:
        self.client = PostgresClient(dsn, password=password, connect_timeout=connect_timeout)
        self._dsn = dsn
        self._password = password
        self.pg_restore = pg_restore
        self.single_transaction = single_transaction
        self.summarize = summarize
        self.extra_args = tuple(extra_args)
        self.connect_timeout = connect_timeout
        self.timeout_seconds = timeout_seconds
        self.expected_tables: Sequence[TableChecksum] | None = None
        """The backup's table checksums (its manifest), when known: ``summarize`` then uses their algorithm
        (:func:`database_table_summaries`); without them, the server-side v2 checksums of every table."""

    def __repr__(self) -> str:
        return f"PostgresRestoreTarget(target={self.client.target!r})"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.client.target, "database": self.client.dbname}

    def command(self) -> list[str]:
        """pg_restore's argv (reads stdin; never holds the password)."""
        argv = [
            self.pg_restore,
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--no-password",
        ]
        if self.single_transaction:
            argv.append("--single-transaction")
        argv.extend(self.extra_args)
        argv.append(f"--dbname={self._dsn}")
        return argv

    def begin(self) -> PostgresRestoreWriter:
        """Start pg_restore. Raises ConfigurationError when pg_restore is not installed."""
        return PostgresRestoreWriter(self)


class PostgresRestoreWriter(RestoreWriter):
    """A running pg_restore fed through its stdin."""

    def __init__(self, target: PostgresRestoreTarget) -> None:
        super().__init__(KIND, target.client.target)
        self._target = target
        self._operation = f"pg_restore {target.client.target}"
        self._app_name = _tools.application_name("pg_restore")
        env = _tools.tool_environment(
            target._password,
            {
                "PGCONNECT_TIMEOUT": str(max(1, int(target.connect_timeout))),
                "PGAPPNAME": self._app_name,
            },
        )
        self._proc = _tools.start(target.command(), env, stdin=True, operation=self._operation)
        self._deadline = _tools.Deadline(
            self._proc,
            target.timeout_seconds,
            tool="pg_restore",
            target=target.client.target,
            operation=self._operation,
            on_expire=self._terminate_sessions,
        )
        self._stderr = _tools.StderrTail(self._proc.stderr)

    def _terminate_sessions(self) -> None:
        """End pg_restore's server session (after pg_restore was killed). Calls PostgreSQL."""
        _tools.terminate_sessions(self._target.client.connect, self._app_name)

    def _failure(self) -> Exception:
        _tools.stop(self._proc, grace=10.0)
        self._deadline.cancel()
        if self._deadline.expired:
            return self._deadline.error()
        return _tools.tool_error(
            "pg_restore",
            self._proc.returncode,
            self._stderr.text(),
            operation=self._operation,
            password=self._target._password,
        )

    def _write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, ValueError, OSError):
            # pg_restore exited (--exit-on-error) and closed its end: its stderr says why
            self._done = True
            raise self._failure() from None

    def _finish(self) -> RestoreReport:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        returncode = self._proc.wait()
        self._deadline.cancel()
        if self._deadline.expired:
            raise self._deadline.error()
        stderr = self._stderr.text()
        if returncode != 0:
            raise _tools.tool_error(
                "pg_restore", returncode, stderr, operation=self._operation, password=self._target._password
            )
        if self.bytes_read == 0:
            raise PermanentError(
                "the dump was empty: nothing restored", system=KIND, operation=self._operation
            )
        tables = (
            database_table_summaries(self._target.client, self._target.expected_tables)
            if self._target.summarize
            else None
        )
        facts: Mapping[str, Any] = {"pg_restore_version": _tools.tool_version(self._target.pg_restore)}
        return self._make_report(len(tables) if tables is not None else 0, tables=tables, facts=dict(facts))

    def _abort(self) -> None:
        self._deadline.cancel()
        if _tools.stop(self._proc):
            # stopped early: its session may be queued for a lock and would outlive it
            with contextlib.suppress(Exception):
                self._terminate_sessions()
