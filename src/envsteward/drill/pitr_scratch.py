"""The scratch target of a point-in-time-recovery drill: a throwaway PostgreSQL cluster.

For a postgres backup target with ``pitr.enabled``, the drill restores the newest base backup of the
drilled region plus every archived WAL file of that region (``restore_command`` = ``envsteward wal fetch
--from dr``) into a NEW data directory and starts it on a free port, then asks it when the last replayed
transaction committed: RPO = drill start - that commit time (the data a loss of the primary at drill
start would have lost), RTO = drill start - the cluster answering the smoke queries.

Layout: ``<home>/drill-scratch/<scratch name>/`` (mode 0700) holds ``data/`` (the cluster),
``postgresql.log``, the Unix socket and ``envsteward-drill.json`` (the :class:`ScratchMarker`: which
drill of which installation created it, and when). The cluster listens on the socket ONLY
(``listen_addresses = ''``; the port names the socket), with a ``pg_hba.conf`` that trusts local socket
logins and nothing else: a copy of production data is never reachable over TCP, and only this OS user
(and root) can open the folder. When envsteward runs as root, the cluster runs as the OS user
``settings.drill.cluster_os_user`` (PostgreSQL refuses root) and the folder is theirs.

Teardown (and the sweep of a killed drill, :mod:`envsteward.drill.abandoned`) stops the postmaster found
in ``data/postmaster.pid`` (only when that process's working directory is this data directory) and
removes the folder.

External calls: the object store and key provider (through :mod:`envsteward.pitr.base`), ``pg_ctl``,
``pg_verifybackup``, the restored server, local files, signals to the scratch postmaster.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsteward.backup.sources.base import RestoreReport, RestoreTarget
from envsteward.drill.model import Verification
from envsteward.drill.scratch import Scratch, make_scratch_folder, run_smoke_query
from envsteward.errors import ConfigurationError, EnvstewardError

if TYPE_CHECKING:
    from envsteward.backup.manifest import Manifest
    from envsteward.catalog.models import SmokeQuery
    from envsteward.health.result import CheckResult
    from envsteward.health.specs import PostgresCheck
    from envsteward.pitr.base import RecoveryOutcome
    from envsteward.pitr.tarstream import TarSummary
    from envsteward.ports import KeyProvider, ObjectStore

KIND = "pitr_cluster"
MARKER_FILE = "envsteward-drill.json"
DATA_DIR = "data"
LOG_FILE = "postgresql.log"
SOCKET_PATH_MAX = 100
"""Unix socket paths are limited to about 107 bytes; the socket sits in the scratch folder."""
LOCAL_ONLY_HBA = (
    "# envsteward drill: Unix socket logins only, in a folder only the cluster's owner opens\n"
    "local all all trust\n"
)


@dataclass(frozen=True)
class PitrRestored:
    """What the restore phase of a PITR drill found (kept on the scratch target for verify and the record)."""

    backup_id: str
    files: int
    wal_files_in_backup: int
    base_backup_end: datetime
    recovery: RecoveryOutcome

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "files": self.files,
            "base_backup_end": self.base_backup_end.isoformat(),
            **self.recovery.as_json(),
        }


class PitrClusterScratch(Scratch):
    """A scratch PostgreSQL cluster restored from a base backup plus archived WAL (module docstring).

    ``checks``: the environment's postgres health checks (re-pointed at the cluster here); ``run_check``
    runs one. ``database``/``user``: where and as whom the smoke queries run (the target DSN's)."""

    kind = KIND

    def __init__(
        self,
        folder: Path,
        *,
        port: int,
        database: str,
        user: str,
        run_as: str | None,
        pg_bin: Path | None = None,
        checks: Sequence[PostgresCheck] = (),
        run_check: Callable[[PostgresCheck], CheckResult] | None = None,
        smoke_queries: Sequence[SmokeQuery] = (),
        smoke_timeout_seconds: float = 30.0,
        recovery_timeout_seconds: float = 3600.0,
    ) -> None:
        super().__init__()
        if len(str(folder / f".s.PGSQL.{port}")) > SOCKET_PATH_MAX:
            raise ConfigurationError(
                f"the drill's scratch folder {folder} is too long a path for PostgreSQL's Unix socket: use "
                "a shorter ENVSTEWARD_HOME"
            )
        self.folder = folder
        self.name = folder.name
        self.location = str(folder)
        self.data_dir = folder / DATA_DIR
        self.log_file = folder / LOG_FILE
        self.port, self.database, self.user, self.run_as = port, database, user, run_as
        self.pg_bin = pg_bin
        self.checks = tuple(checks)
        self.run_check = run_check
        self.smoke_queries = tuple(smoke_queries)
        self.smoke_timeout_seconds = smoke_timeout_seconds
        self.recovery_timeout_seconds = recovery_timeout_seconds
        self.restored: PitrRestored | None = None
        self.restore_command = ""
        """PostgreSQL's ``restore_command`` (``envsteward wal fetch --from REGION``), set by the drill."""
        self.read_ahead: Callable[[Path, str, str | None], subprocess.Popen[bytes] | None] | None = None
        """Starts the WAL read-ahead (data directory, first segment, OS user), set by the drill
        (:func:`envsteward.pitr.restore.start_read_ahead`); None: the first ``wal fetch`` starts it."""

    def __repr__(self) -> str:
        return f"PitrClusterScratch(folder={str(self.folder)!r}, port={self.port})"

    def libpq(self, database: str | None = None, user: str | None = None) -> str:
        """Connection string of the scratch cluster (its socket; no password: the socket is trusted)."""
        return (
            f"host={self.folder} port={self.port} user={user or self.user} dbname={database or self.database}"
        )

    def create(self, marker: str | None = None) -> None:
        """Make the folder (0700) and write the marker into it. Raises ConflictError when it exists."""
        make_scratch_folder(self.folder)
        self.created = True
        if marker is not None:
            (self.folder / MARKER_FILE).write_text(marker + "\n", encoding="utf-8")

    def restore_target(self) -> RestoreTarget:
        raise ConfigurationError("a PITR drill restores with restore_pitr(), not through a RestoreTarget")

    def restore_pitr(self, store: ObjectStore, keys: KeyProvider, backup_id: str) -> PitrRestored:
        """Unpack and check base backup ``backup_id`` into ``data/``, write the recovery settings (to the
        end of the archive, socket only, local-only hba), start the cluster and wait for its promotion.
        Raises ConfigurationError when no ``restore_command`` was set.
        Raises what :mod:`envsteward.pitr.base` raises (IntegrityError for a file or WAL segment that
        fails its checks, PermanentError when the server stops during recovery)."""
        from envsteward.backup.pipeline import read_manifest
        from envsteward.pitr.base import BaseBackupInfo, prepare_data_dir
        from envsteward.pitr.restore import stop_read_ahead

        if not self.restore_command:
            raise ConfigurationError("the PITR scratch cluster has no restore_command")
        info = BaseBackupInfo.of(read_manifest(store, backup_id))
        prepare_data_dir(self.data_dir)  # refuses a used directory before the read-ahead is pointed at it
        reader = self.read_ahead(self.data_dir, info.start_wal_file, self.run_as) if self.read_ahead else None
        try:
            outcome, summary = self._recover(store, keys, backup_id, reader)
        except BaseException:
            stop_read_ahead(reader, failed=True)
            raise
        stop_read_ahead(reader)
        self.restored = PitrRestored(
            backup_id=backup_id,
            files=summary.files,
            wal_files_in_backup=len(summary.wal_files or {}),
            base_backup_end=info.end_time,
            recovery=outcome,
        )
        return self.restored

    def _recover(
        self, store: ObjectStore, keys: KeyProvider, backup_id: str, reader: subprocess.Popen[bytes] | None
    ) -> tuple[RecoveryOutcome, TarSummary]:
        """Unpack, check, configure and start (see :meth:`restore_pitr`)."""
        from envsteward.pitr.base import (
            give_to_os_user,
            restore_base_backup,
            start_recovery,
            verify_with_pg,
            write_recovery_settings,
        )
        from envsteward.pitr.restore import wait_read_ahead

        summary: TarSummary = restore_base_backup(store, keys, backup_id, self.data_dir)
        verify_with_pg(self.data_dir, self.pg_bin)
        # the original's pg_hba.conf (or none: Debian keeps it in /etc) is replaced: socket logins only
        (self.data_dir / "pg_hba.conf").write_text(LOCAL_ONLY_HBA, encoding="utf-8")
        (self.data_dir / "pg_ident.conf").write_text("", encoding="utf-8")
        write_recovery_settings(
            self.data_dir,
            restore_command=self.restore_command,
            to_time=None,
            port=self.port,
            listen="",
            socket_dir=self.folder,
            extra={
                "hba_file": str(self.data_dir / "pg_hba.conf"),
                "ident_file": str(self.data_dir / "pg_ident.conf"),
            },
        )
        give_to_os_user(self.folder, self.run_as)
        wait_read_ahead(reader, self.data_dir)
        outcome = start_recovery(
            self.data_dir,
            port=self.port,
            user=self.user,
            log_file=self.log_file,
            pg_bin=self.pg_bin,
            timeout=self.recovery_timeout_seconds,
            run_as=self.run_as,
            host=str(self.folder),
        )
        return outcome, summary

    def report(self, started_at: datetime, finished_at: datetime) -> RestoreReport:
        """The restore phase's report (for the drill's bookkeeping)."""
        restored = self.restored
        return RestoreReport(
            kind=KIND,
            target=f"{self.folder} (socket port {self.port})",
            bytes_read=0,
            items=restored.files if restored else 0,
            started_at=started_at,
            finished_at=finished_at,
            facts=restored.as_json() if restored else {},
        )

    def verify(self, manifest: Manifest, report: RestoreReport) -> list[Verification]:
        """What a physical restore proves: every file matched PostgreSQL's ``backup_manifest`` (SHA-256)
        and ``pg_verifybackup``, every archived WAL file authenticated on fetch, and recovery replayed to
        the end of the archive and promoted. (There are no table checksums: the data is newer than any
        backup's manifest.)"""
        restored = self.restored
        if restored is None:
            return [Verification("pitr", "restore", "a restored cluster", "none", ok=False)]
        replayed = restored.recovery.last_replayed_commit
        return [
            Verification(
                "pitr",
                "base backup files",
                "every file matches backup_manifest (SHA-256) and pg_verifybackup",
                f"{restored.files} file(s) match",
                ok=restored.files > 0,
            ),
            Verification(
                "pitr",
                "WAL replay",
                "recovery to the end of the archive, then promoted",
                f"promoted after {restored.recovery.seconds:.1f} s",
                ok=True,
            ),
            Verification(
                "pitr",
                "last replayed commit",
                "a commit time",
                replayed.isoformat(timespec="seconds") if replayed else "none after the base backup",
                ok=True,
            ),
        ]

    def health(self) -> list[Verification]:
        """The cluster answers (not in recovery), the environment's postgres checks and the smoke
        queries, all through the socket. Never raises for a failing check."""
        from envsteward.adapters.postgres import PostgresClient

        rows: list[Verification] = []
        client = PostgresClient(self.libpq(), connect_timeout=10)
        try:
            (in_recovery,) = client.query("SELECT pg_is_in_recovery()")[0]
            rows.append(
                Verification(
                    "health",
                    "scratch-cluster",
                    "accepts writes (promoted)",
                    "in recovery" if in_recovery else "promoted",
                    ok=not in_recovery,
                )
            )
        except EnvstewardError as exc:
            rows.append(Verification("health", "scratch-cluster", "answers", f"error: {exc}", ok=False))
            return rows
        for check in self.checks:
            if self.run_check is None:
                break
            result = self.run_check(check)
            rows.append(
                Verification(
                    "health", check.name, "up", f"{result.status.value}: {result.detail}", ok=result.ok
                )
            )
        rows.extend(self._smoke(client, query) for query in self.smoke_queries)
        return rows

    def _smoke(self, client: Any, query: SmokeQuery) -> Verification:
        return run_smoke_query(client, query, self.smoke_timeout_seconds)

    def teardown(self) -> bool:
        """Stop the cluster (immediate shutdown) and remove the folder, when this drill created it; True
        when neither the folder nor its postmaster is left."""
        if self.created:
            return remove_cluster_folder(self.folder)
        return not self.folder.exists()


def remove_cluster_folder(folder: Path) -> bool:
    """Stop the postmaster of ``folder/data`` (if it is running there) and remove ``folder``; True when
    both are gone. Signals the postmaster; removes local files."""
    from envsteward.pitr.postmaster import postmaster_pid, stop_postmaster

    data_dir = folder / DATA_DIR
    stopped = stop_postmaster(data_dir)
    if stopped:
        shutil.rmtree(folder, ignore_errors=True)
    return stopped and not folder.exists() and postmaster_pid(data_dir) is None
