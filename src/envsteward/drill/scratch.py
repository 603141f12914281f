"""Scratch targets: where a drill restores a backup, how it checks the result, and how it removes it.

=========  =======================================================  ==========================================
kind       scratch target                                           verified by
=========  =======================================================  ==========================================
postgres   database ``envsteward_drill_<env>_<id>`` on the drill     row counts + per-table checksums vs the
           PostgreSQL server from the catalog (``drill.server_dsn``)  manifest; health checks; smoke queries
vault_kv   prefix ``<mount>/envsteward-drills/<scratch name>``       every secret read back and compared with
                                                                    the dump (in memory; only counts reported)
sqlite     file ``<home>/drill-scratch/<scratch name>/restored.db``  row counts + checksums; integrity_check;
                                                                    smoke queries
config     file ``<home>/drill-scratch/<scratch name>/config.json``  the snapshot parses (digests verified by
                                                                    the restore pass)
=========  =======================================================  ==========================================

Every scratch target remembers whether IT created the place (``created``): teardown never removes
something the drill did not create (a name collision fails the drill instead), and reports whether the
place is confirmed gone.

External calls: the drill PostgreSQL server (the PostgreSQL adapter, pg_restore), Vault (KV v2), the
local file system.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsteward.backup.manifest import Manifest, TableChecksum
from envsteward.backup.sources.base import RestoreReport, RestoreTarget
from envsteward.drill.model import Verification
from envsteward.errors import ConflictError, EnvstewardError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.vault import VaultClient
    from envsteward.catalog.models import SmokeQuery
    from envsteward.health.result import CheckResult
    from envsteward.health.specs import PostgresCheck

Sink = Callable[[bytes], None]
CheckRunner = Callable[["PostgresCheck"], "CheckResult"]
VAULT_SCRATCH_FOLDER = "envsteward-drills"
CHECKSUM_SHOWN = 12
"""How many hex digits of a table checksum reports show (enough to compare by eye)."""


def table_verifications(
    expected: Sequence[TableChecksum] | None, actual: Sequence[TableChecksum] | None
) -> list[Verification]:
    """One row per table (expected vs restored rows and checksum), plus a failing row when the backup
    recorded no checksums or nothing could be summarised (fail safe: what cannot be verified fails). Pure."""
    from envsteward.backup.sources.postgres import compare_tables

    if expected is None:
        return [
            Verification(
                "table",
                "<all tables>",
                "table checksums in the manifest",
                "the backup records none: cannot verify",
                ok=False,
            )
        ]
    if actual is None:
        return [
            Verification("table", "<all tables>", f"{len(expected)} table(s)", "not summarised", ok=False)
        ]
    found = {table.name: table for table in actual}
    wanted = {table.name: table for table in expected}
    rows: list[Verification] = []
    for name in sorted(wanted.keys() | found.keys()):
        before, after = wanted.get(name), found.get(name)
        problems = compare_tables([before] if before else [], [after] if after else [])
        rows.append(
            Verification(
                "table",
                name,
                _describe_table(before, "not in the backup"),
                _describe_table(after, "missing"),
                ok=not problems,
            )
        )
    if not rows:
        rows.append(Verification("table", "<all tables>", "0 tables", "0 tables", ok=True))
    return rows


def _describe_table(table: TableChecksum | None, absent: str) -> str:
    if table is None:
        return absent
    return f"{table.rows} rows, {table.checksum[:CHECKSUM_SHOWN]}"


class Scratch(ABC):
    """One scratch target of one drill."""

    kind: str
    name: str
    """What the record shows: a database name, a KV prefix, a folder."""
    location: str
    """Where the drill ledger finds it again: the drill server's DSN (no password), the KV mount, the
    folder."""

    def __init__(self) -> None:
        self.created = False
        self.read_dump: Callable[[Sink], object] | None = None
        """Streams the backup's plaintext into a sink again (set by the drill before :meth:`verify`); a
        scratch may use it to re-check what the restored data alone cannot settle."""

    @abstractmethod
    def create(self, marker: str | None = None) -> None:
        """Create the empty scratch place, labelled with ``marker`` where the system keeps a label (a
        PostgreSQL database's comment). Raises ConflictError when it already exists (nothing is created,
        nothing will be removed), and the system's errors."""

    @abstractmethod
    def restore_target(self) -> RestoreTarget:
        """The restore target writing into the scratch place."""

    def wrap_sink(self, sink: Sink) -> Sink:
        """The sink the pipeline writes plaintext to (a scratch target may watch the stream)."""
        return sink

    @abstractmethod
    def verify(self, manifest: Manifest, report: RestoreReport) -> list[Verification]:
        """Compare the restored data with the manifest (and the dump). Raises the system's errors."""

    @abstractmethod
    def health(self) -> list[Verification]:
        """Health checks and smoke queries against the restored target; never raises for a failing one."""

    @abstractmethod
    def teardown(self) -> bool:
        """Remove the scratch place if this drill created it; True when it is confirmed gone.
        Raises the system's errors."""


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------


class PostgresScratch(Scratch):
    """A scratch database on the drill server. ``server_dsn``: the drill server (any database there, to
    connect; no password in it); ``checks``: the environment's postgres health checks, already pointed at
    the scratch database; ``run_check``: runs one of them (:func:`envsteward.health.checks.run_check`).

    Raises ConfigurationError for a malformed DSN or one holding a password."""

    kind = "postgres"

    def __init__(
        self,
        server_dsn: str,
        database: str,
        *,
        password: SecretStr | None,
        checks: Sequence[PostgresCheck] = (),
        run_check: CheckRunner | None = None,
        smoke_queries: Sequence[SmokeQuery] = (),
        smoke_timeout_seconds: float = 30.0,
        pg_restore: str = "pg_restore",
    ) -> None:
        from envsteward.adapters.postgres import PostgresClient

        super().__init__()
        self.server_dsn = server_dsn
        self.location = server_dsn
        self.server = PostgresClient(server_dsn, password=password, connect_timeout=10)
        self.name = database
        self.client = self.server.for_database(database)
        self.password = password
        self.checks = tuple(checks)
        self.run_check = run_check
        self.smoke_queries = tuple(smoke_queries)
        self.smoke_timeout_seconds = smoke_timeout_seconds
        self.pg_restore = pg_restore

    def __repr__(self) -> str:
        return f"PostgresScratch(target={self.client.target!r})"

    def create(self, marker: str | None = None) -> None:
        """CREATE DATABASE on the drill server, then COMMENT ON DATABASE with ``marker`` (two statements:
        CREATE DATABASE cannot run in a transaction; the drill ledger names the database before it is
        created). Raises ConflictError when it exists."""
        self.server.create_database(self.name)
        self.created = True
        if marker is not None:
            self.server.comment_on_database(self.name, marker)

    def restore_target(self) -> RestoreTarget:
        from envsteward.adapters.postgres import dsn_for_database
        from envsteward.backup.sources.postgres import PostgresRestoreTarget

        # summarize=False: the table summaries are the verify phase's work, not the restore's.
        # single_transaction: every table is created and loaded in the restore's one transaction, so its
        # COPY skips the free space map and appends pages in stream order: the restored heap holds the
        # rows in dump order, which the order-dependent checksums (v5, v4) rely on (see verify).
        return PostgresRestoreTarget(
            dsn_for_database(self.server_dsn, self.name),
            self.password,
            pg_restore=self.pg_restore,
            summarize=False,
            single_transaction=True,
        )

    def verify(self, manifest: Manifest, report: RestoreReport) -> list[Verification]:
        """Every table of the manifest against the restored database. With v5 / v4 (order-dependent)
        checksums, a table whose hash differs at the same row count is re-checked order-independently (the
        dump is read again through :attr:`read_dump`): same rows in another physical order pass, with a
        note; a false alarm costs time, never a failed drill. Calls PostgreSQL, psql, and (re-check only)
        the object store and key provider."""
        from envsteward.backup.sources.postgres import database_table_summaries, order_suspects, reorder_check

        expected = manifest.tables
        actual = database_table_summaries(self.client, expected)
        notes: dict[str, str] = {}
        suspects = order_suspects(expected or (), actual)
        if suspects and self.read_dump is not None and expected is not None:
            verdict = reorder_check(self.client, expected, suspects, self.read_dump)
            wanted = {table.name: table for table in expected}
            actual = tuple(wanted[t.name] if verdict.get(t.name, "") is None else t for t in actual)
            notes = {
                name: why or "same rows in another physical order: re-checked order-independently"
                for name, why in verdict.items()
            }
        rows = table_verifications(expected, actual)
        return [
            dataclasses.replace(row, actual=f"{row.actual} ({notes[row.name]})") if row.name in notes else row
            for row in rows
        ]

    def health(self) -> list[Verification]:
        rows: list[Verification] = []
        for check in self.checks:
            if self.run_check is None:
                break
            result = self.run_check(check)
            actual = f"{result.status.value}: {result.detail}"
            rows.append(Verification("health", check.name, "up", actual, ok=result.ok))
        rows.extend(self._smoke(query) for query in self.smoke_queries)
        return rows

    def _smoke(self, query: SmokeQuery) -> Verification:
        return run_smoke_query(self.client, query, self.smoke_timeout_seconds)

    def teardown(self) -> bool:
        """DROP DATABASE ... WITH (FORCE) when this drill created it; True when it no longer exists."""
        if self.created:
            self.server.drop_database(self.name, force=True, missing_ok=True)
        return not self.server.database_exists(self.name)


def run_smoke_query(client: Any, query: SmokeQuery, timeout_seconds: float) -> Verification:
    """Run one smoke query read-only under a statement timeout through ``client`` (a PostgresClient) and
    compare it with its expectation; a failure is a failed verification (never raised). Calls PostgreSQL."""
    expected = _smoke_expectation(query)
    try:
        with client.connect(f"smoke query {query.name}") as conn:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (str(int(timeout_seconds * 1000)),)
            )
            conn.execute("BEGIN READ ONLY")
            try:
                rows = conn.execute(query.sql).fetchmany(max(query.min_rows, 1))
            finally:
                conn.execute("ROLLBACK")
    except EnvstewardError as exc:
        return Verification("smoke", query.name, expected, f"error: {exc}", ok=False)
    return _smoke_result(query, expected, [tuple(row) for row in rows])


def _smoke_expectation(query: SmokeQuery) -> str:
    text = f">= {query.min_rows} row(s)"
    return f"{text}, first value = {query.expect!r}" if query.expect is not None else text


def _smoke_result(query: SmokeQuery, expected: str, rows: list[tuple[Any, ...]]) -> Verification:
    """Never echo the returned values (they may be data): only how many rows and whether they matched."""
    count = len(rows)
    shown = f"{count}+ row(s)" if count >= max(query.min_rows, 1) and count > 0 else f"{count} row(s)"
    ok = count >= query.min_rows
    if query.expect is not None:
        first = str(rows[0][0]) if rows and rows[0] else None
        matched = first == query.expect
        ok = ok and matched
        shown += ", first value matches" if matched else ", first value differs"
    return Verification("smoke", query.name, expected, shown, ok=ok)


# ---------------------------------------------------------------------------------------------------------
# Vault KV
# ---------------------------------------------------------------------------------------------------------


class VaultKVScratch(Scratch):
    """A scratch prefix in a KV v2 mount. While the restore streams through, the dump's secrets are
    hashed (SHA-256 over canonical JSON, kept in memory only); verify reads every restored secret back and
    compares. Reports hold counts and paths, never values or their hashes."""

    kind = "vault_kv"

    def __init__(self, client: VaultClient, mount: str, scratch_name: str) -> None:
        super().__init__()
        self.client = client
        self.mount = mount
        self.location = mount
        self.prefix = f"{VAULT_SCRATCH_FOLDER}/{scratch_name}"
        self.name = f"{mount}/{self.prefix}"
        self._expected: dict[str, str] = {}
        self._splitter: Any = None

    def __repr__(self) -> str:
        return f"VaultKVScratch(location={self.name!r})"

    def _existing(self) -> list[str]:
        paths = list(self.client.kv_walk(self.mount, self.prefix))
        with contextlib.suppress(EnvstewardError):
            self.client.kv_metadata(self.mount, self.prefix)
            paths.insert(0, "")
        return paths

    def create(self, marker: str | None = None) -> None:
        """Claim the prefix (the drill ledger is its only label). Raises ConflictError when anything is
        stored under it already."""
        if self._existing():
            raise ConflictError(f"scratch prefix {self.name} is not empty", system="vault", operation="drill")
        self.created = True

    def restore_target(self) -> RestoreTarget:
        from envsteward.backup.sources.vault_kv import VaultKVRestoreTarget

        return VaultKVRestoreTarget(self.client, self.name)

    def wrap_sink(self, sink: Sink) -> Sink:
        from envsteward.backup.sources._jsonlines import LineSplitter

        splitter = LineSplitter("vault", f"drill restore into {self.name}")
        self._splitter = splitter

        def watch(data: bytes) -> None:
            sink(data)
            for record in splitter.feed(data):
                self._note(record)

        return watch

    def _note(self, record: dict[str, Any]) -> None:
        path, data = record.get("path"), record.get("data")
        if isinstance(path, str) and isinstance(data, dict):
            self._expected[path] = _digest(data)

    def verify(self, manifest: Manifest, report: RestoreReport) -> list[Verification]:
        if self._splitter is not None:
            for record in self._splitter.close():
                self._note(record)
        found: dict[str, str] = {}
        for relative in self._existing():
            path = "/".join(part for part in (self.prefix, relative) if part)
            found[relative] = _digest(dict(self.client.kv_read(self.mount, path).data))
        missing = sorted(self._expected.keys() - found.keys())
        extra = sorted(found.keys() - self._expected.keys())
        differ = sorted(p for p in self._expected.keys() & found.keys() if self._expected[p] != found[p])
        rows = [
            Verification(
                "secrets",
                "restored secrets",
                f"{len(self._expected)} secret(s) from the dump",
                f"{len(found)} secret(s) read back",
                ok=len(found) == len(self._expected) and not (missing or extra or differ),
            )
        ]
        for paths, expected, actual in (
            (missing, "present", "missing"),
            (extra, "absent", "unexpected"),
            (differ, "same data", "differs"),
        ):
            rows += [Verification("secrets", p or "<prefix>", expected, actual, ok=False) for p in paths[:20]]
        if not self._expected:
            rows.append(Verification("secrets", "<dump>", "at least one secret", "none", ok=False))
        return rows

    def health(self) -> list[Verification]:
        try:
            health = self.client.health()
        except EnvstewardError as exc:
            return [Verification("health", "vault", "active, unsealed", f"error: {exc}", ok=False)]
        state = "sealed" if health.sealed else ("standby" if health.standby else "active")
        return [Verification("health", "vault", "active, unsealed", state, ok=health.ok(standby_ok=True))]

    def teardown(self) -> bool:
        """Delete every secret (metadata and all versions) under the prefix; True when none is left."""
        if self.created:
            for relative in self._existing():
                path = "/".join(part for part in (self.prefix, relative) if part)
                self.client.kv_delete_all(self.mount, path)
        return not self._existing()


def _digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Files: SQLite and configuration snapshots
# ---------------------------------------------------------------------------------------------------------


def make_scratch_folder(folder: Path) -> None:
    """Create ``folder`` (0700; its parents as needed) for one drill. Raises ConflictError when it exists:
    a folder already there belongs to another drill or is a leftover for the sweep, never reused."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except FileExistsError:
        raise ConflictError(f"scratch folder {folder} exists", system="drill") from None


class FileScratch(Scratch):
    """A scratch folder holding the restored file (``restored.db`` or ``config.json``)."""

    def __init__(
        self,
        kind: str,
        folder: Path,
        *,
        smoke_queries: Sequence[SmokeQuery] = (),
    ) -> None:
        super().__init__()
        self.kind = kind
        self.folder = folder
        self.name = str(folder)
        self.location = str(folder)
        self.path = folder / ("restored.db" if kind == "sqlite" else "config.json")
        self.smoke_queries = tuple(smoke_queries)

    def __repr__(self) -> str:
        return f"FileScratch(kind={self.kind!r}, folder={str(self.folder)!r})"

    def create(self, marker: str | None = None) -> None:
        """Make the folder (the drill ledger is its label). Raises ConflictError when it exists."""
        make_scratch_folder(self.folder)
        self.created = True

    def restore_target(self) -> RestoreTarget:
        if self.kind == "sqlite":
            from envsteward.backup.sources.sqlite import SqliteRestoreTarget

            return SqliteRestoreTarget(self.path)
        from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget

        return ConfigSnapshotRestoreTarget(self.path)

    def verify(self, manifest: Manifest, report: RestoreReport) -> list[Verification]:
        if self.kind == "sqlite":
            return table_verifications(manifest.tables, report.tables)
        try:
            document = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            document = None
        ok = isinstance(document, dict) and report.bytes_read == manifest.sizes.plaintext
        return [
            Verification(
                "file",
                self.path.name,
                f"a JSON document of {manifest.sizes.plaintext} bytes",
                f"{'a JSON document' if isinstance(document, dict) else 'not a JSON document'} of "
                f"{report.bytes_read} bytes",
                ok=ok,
            )
        ]

    def health(self) -> list[Verification]:
        if self.kind != "sqlite":
            return []
        rows: list[Verification] = []
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            return [Verification("health", "sqlite", "opens", f"error: {type(exc).__name__}", ok=False)]
        try:
            try:
                check = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
            except sqlite3.Error as exc:
                check = f"error: {type(exc).__name__}"
            rows.append(Verification("health", "integrity_check", "ok", check, ok=check == "ok"))
            for query in self.smoke_queries:
                expected = _smoke_expectation(query)
                try:
                    found = conn.execute(query.sql).fetchmany(max(query.min_rows, 1))
                except sqlite3.Error as exc:
                    rows.append(Verification("smoke", query.name, expected, f"error: {exc}", ok=False))
                    continue
                rows.append(_smoke_result(query, expected, [tuple(row) for row in found]))
        finally:
            conn.close()
        return rows

    def teardown(self) -> bool:
        if self.created:
            shutil.rmtree(self.folder, ignore_errors=True)
        return not self.folder.exists()
