"""Physical base backups (``pg_basebackup``) through the encrypted pipeline, and restoring one to a time.

Backup (:func:`take_base_backup`): ``pg_basebackup -D - -F t -X fetch --manifest-checksums=SHA256``
streams one tar to stdout; every piece goes through :class:`~envsteward.pitr.tarstream.TarReader` (hashes
checked against PostgreSQL's ``backup_manifest`` as the stream passes) and on into
:func:`envsteward.backup.pipeline.write_backup` (zstd, AES-256-GCM chunks, read-back verify, envsteward
manifest LAST). A stream that does not match PostgreSQL's manifest, or a tool that exits non-zero, fails
the backup before any envsteward manifest is written. ``-X fetch`` puts the WAL needed for consistency in
the backup, so a base backup restores on its own; the archive adds everything after it.

Backup ids: ``<env>/<target>.pitr/<stamp>-<hex>`` (source kind ``postgres-base``); ``extra.pitr`` holds the
``backup_label`` fields (start WAL file, timeline, start time), the end time, the WAL ranges and the
SHA-256 of the WAL files in ``pg_wal/``.

Restore (:func:`restore_base_backup`, :func:`write_recovery_settings`, :func:`start_recovery`): unpack the
encrypted object, each chunk authenticated before it is written, into a NEW (missing or empty) directory
(emptied again if anything fails), check every file against ``backup_manifest`` and the recorded WAL
hashes, make the tree durable with one ``syncfs``, write ``recovery.signal`` and the recovery settings
(``restore_command`` = ``envsteward wal fetch``, ``recovery_target_time``, ``recovery_target_action =
promote``, ``archive_mode = off`` so the copy never archives into the original's archive), start
PostgreSQL, wait for the promotion, and report the last replayed commit time.

External calls: ``pg_basebackup``, ``pg_ctl`` and ``pg_verifybackup`` (subprocesses), PostgreSQL (the
restored cluster, to ask whether recovery ended), the object store and the key provider.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from envsteward.backup.manifest import BackupSourceInfo, Manifest
from envsteward.backup.pipeline import (
    list_backups,
    new_backup_id,
    read_manifest,
    restore_backup,
    write_backup,
)
from envsteward.backup.sources._tools import (
    StderrTail,
    start,
    stop,
    tool_environment,
    tool_error,
    tool_version,
)
from envsteward.errors import ConfigurationError, ConflictError, IntegrityError, NotFoundError, PermanentError
from envsteward.pitr.tarstream import TarReader, TarSummary
from envsteward.pitr.walnames import PITR_SUFFIX
from envsteward.ports import KeyProvider, ObjectStore

BASE_KIND = "postgres-base"
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
READ_PIECE = 1 << 20


def pg_tool(name: str, pg_bin: Path | None = None) -> str:
    """The path of PostgreSQL program ``name``: in ``pg_bin``, else Debian's 15 folder, else ``PATH``.

    Raises ConfigurationError when it is nowhere."""
    for folder in (pg_bin, DEFAULT_PG_BIN):
        if folder is not None and (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(
            f"{name} not found (looked in {pg_bin or DEFAULT_PG_BIN} and PATH): install the PostgreSQL "
            "server packages or set pitr.pg_bin in the catalog"
        )
    return found


# ---------------------------------------------------------------------------------------------------------
# Backup
# ---------------------------------------------------------------------------------------------------------


def take_base_backup(
    store: ObjectStore,
    keys: KeyProvider,
    *,
    environment: str,
    target: str,
    dsn: str,
    password: SecretStr | None = None,
    key_provider_kind: str = "local",
    pg_bin: Path | None = None,
) -> Manifest:
    """Run ``pg_basebackup`` against ``dsn`` and store its tar as base backup ``<env>/<target>.pitr/...``.

    Calls pg_basebackup (a replication connection), the key provider and the object store. Raises
    ConfigurationError (no pg_basebackup), the tool's errors (TransientError when the server could not be
    reached), IntegrityError (the stream does not match PostgreSQL's manifest), and the pipeline's errors;
    in every case no manifest was written.
    """
    backup_id = new_backup_id(environment, target + PITR_SUFFIX)
    executable = pg_tool("pg_basebackup", pg_bin)
    command = [
        executable,
        "--dbname",
        dsn,
        "--pgdata=-",
        "--format=tar",
        "--wal-method=fetch",
        "--manifest-checksums=SHA256",
        "--checkpoint=fast",
        "--no-password",
        f"--label=envsteward {backup_id}",
    ]
    started_at = datetime.now(UTC)
    reader = TarReader()
    finished: dict[str, Any] = {}
    operation = f"pg_basebackup {environment}/{target}"

    def stream() -> Iterator[bytes]:
        proc = start(command, tool_environment(password), stdin=False, operation=operation)
        stderr = StderrTail(proc.stderr)
        try:
            assert proc.stdout is not None
            while piece := proc.stdout.read(READ_PIECE):
                reader.feed(piece)
                yield piece
            code = proc.wait()
            if code != 0:
                raise tool_error("pg_basebackup", code, stderr.text(), operation=operation, password=password)
            summary = reader.close()
        finally:
            stop(proc)
        finished["summary"] = summary
        finished["end_time"] = datetime.now(UTC)

    def extra() -> dict[str, Any]:
        summary: TarSummary = finished["summary"]
        label = summary.label
        start_wal = label.get("START WAL LOCATION", "")
        return {
            "key_provider": key_provider_kind,
            "target": target,
            "pitr": {
                "start_wal_file": start_wal.partition("(file ")[2].rstrip(")"),
                "start_lsn": start_wal.partition(" ")[0],
                "timeline": int(label.get("START TIMELINE", "1")),
                "start_time": started_at.isoformat(),
                "end_time": finished["end_time"].isoformat(),
                "wal_ranges": summary.wal_ranges,
                "wal_files": summary.wal_files,
                "files": summary.files,
                "bytes": summary.bytes,
            },
        }

    return write_backup(
        store,
        keys,
        backup_id,
        stream(),
        environment=environment,
        source=BackupSourceInfo(kind=BASE_KIND, name=target + PITR_SUFFIX),
        started_at=started_at,
        consistent_at=started_at,
        tools={"pg_basebackup": tool_version(executable)},
        extra=extra,
    )


@dataclass(frozen=True)
class BaseBackupInfo:
    """One stored base backup, from its (unauthenticated) manifest: enough to choose one."""

    backup_id: str
    start_time: datetime
    end_time: datetime
    start_wal_file: str
    timeline: int
    manifest: Manifest

    @classmethod
    def of(cls, manifest: Manifest) -> BaseBackupInfo:
        """Raises IntegrityError when the manifest is not a base backup's."""
        pitr = manifest.extra.get("pitr")
        if manifest.source.kind != BASE_KIND or not isinstance(pitr, dict):
            raise IntegrityError(f"{manifest.backup_id} is not a PostgreSQL base backup")
        try:
            return cls(
                backup_id=manifest.backup_id,
                start_time=datetime.fromisoformat(pitr["start_time"]),
                end_time=datetime.fromisoformat(pitr["end_time"]),
                start_wal_file=str(pitr["start_wal_file"]),
                timeline=int(pitr["timeline"]),
                manifest=manifest,
            )
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(f"{manifest.backup_id}: the manifest's pitr section is incomplete") from None


def list_base_backups(store: ObjectStore, prefix: str) -> list[BaseBackupInfo]:
    """The complete base backups under an archive ``prefix`` (``<env>/<target>.pitr/``), oldest first.

    Calls the store (list, get)."""
    found = [BaseBackupInfo.of(m) for m in list_backups(store, prefix) if m.source.kind == BASE_KIND]
    return sorted(found, key=lambda item: (item.end_time, item.backup_id))


def choose_base_backup(backups: list[BaseBackupInfo], to_time: datetime | None) -> BaseBackupInfo:
    """The newest base backup that ended at or before ``to_time`` (any, for None). Pure.

    Raises NotFoundError naming the oldest restorable time when there is none."""
    usable = [item for item in backups if to_time is None or item.end_time <= to_time]
    if not usable:
        if not backups:
            raise NotFoundError("no base backup exists for this target: run `envsteward pitr base-backup`")
        raise NotFoundError(
            f"no base backup ended before {to_time.isoformat() if to_time else ''}: the earliest time this "
            f"archive can restore to is {backups[0].end_time.isoformat()}"
        )
    return usable[-1]


# ---------------------------------------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------------------------------------


def prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` (mode 0700) or accept an EMPTY one; never a running or used cluster's.

    Raises ConflictError naming what is there, ConfigurationError when it cannot be created."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise ConflictError(f"{data_dir} exists and is not a directory")
        entries = sorted(entry.name for entry in data_dir.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
            raise ConflictError(
                f"{data_dir} is not empty ({shown}): a point-in-time restore only writes into a new or empty "
                "directory, never over a cluster"
            )
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data_dir.chmod(0o700)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {data_dir}: {exc.strerror}") from None


def _empty(data_dir: Path) -> None:
    for entry in data_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def restore_base_backup(store: ObjectStore, keys: KeyProvider, backup_id: str, data_dir: Path) -> TarSummary:
    """Verify base backup ``backup_id`` and unpack it into the new or empty ``data_dir``.

    Every chunk of the object is authenticated before its bytes are written; at the end the object's
    length and hashes, every file against ``backup_manifest`` and the WAL hashes recorded at backup time
    are checked, and the tree is made durable at once (:func:`sync_tree`) before this returns. On any
    failure ``data_dir`` is emptied: a backup that does not verify leaves nothing behind.
    Calls the store and the key provider; writes under ``data_dir``. Raises NotFoundError, ConflictError
    (directory not empty), IntegrityError (naming the first file or chunk that failed), the store's errors.
    """
    manifest = read_manifest(store, backup_id)
    info = BaseBackupInfo.of(manifest)
    expected_wal = info.manifest.extra["pitr"].get("wal_files")
    prepare_data_dir(data_dir)
    reader = TarReader(extract_to=data_dir, sync_each_file=False)
    try:
        # one pass: every chunk is authenticated before its bytes reach a file, truncation and the hashes
        # are checked at the end, and on any failure the (new or empty) directory is emptied below, so a
        # backup that does not verify still leaves nothing behind; reading it twice cost a second
        # decryption and decompression of the whole backup
        restore_backup(store, backup_id, keys, reader.feed, verify_first=False)
        summary = reader.close(expected_wal=dict(expected_wal) if isinstance(expected_wal, dict) else None)
        sync_tree(data_dir)
    except BaseException:
        reader.abort()
        _empty(data_dir)
        raise
    return summary


def sync_tree(root: Path) -> None:
    """Make every file and directory under ``root`` durable: one ``syncfs(2)`` of its filesystem on Linux
    (one call instead of an fsync per file: a base backup has thousands of small files), else an fsync of
    each file and directory. Raises PermanentError when the kernel reports a write-back error."""
    import ctypes
    import ctypes.util

    fd = os.open(root, os.O_RDONLY)
    try:
        name = ctypes.util.find_library("c")
        syncfs = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None) if name else None
        if syncfs is not None:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise PermanentError(f"cannot make {root} durable: syncfs: {os.strerror(error)}")
            return
    finally:
        os.close(fd)
    for folder, _dirs, files in os.walk(root):
        for entry in [*files, "."]:
            try:
                handle = os.open(os.path.join(folder, entry), os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
            except OSError as exc:
                raise PermanentError(f"cannot make {folder}/{entry} durable: {exc.strerror}") from None


def verify_with_pg(data_dir: Path, pg_bin: Path | None = None) -> None:
    """Run ``pg_verifybackup`` on an unpacked base backup (files and the WAL in ``pg_wal/``).

    Raises IntegrityError with the tool's last lines when it finds a problem, ConfigurationError when the
    tool is missing."""
    executable = pg_tool("pg_verifybackup", pg_bin)
    done = subprocess.run(
        [executable, "--quiet", str(data_dir)], capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        detail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise IntegrityError(f"pg_verifybackup rejected the restored base backup in {data_dir}:\n{detail}")


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_recovery_settings(
    data_dir: Path,
    *,
    restore_command: str,
    to_time: datetime | None,
    port: int,
    listen: str = "127.0.0.1",
    socket_dir: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Make an unpacked base backup recover: ``recovery.signal`` plus settings appended to
    ``postgresql.auto.conf`` (which wins over ``postgresql.conf``). A missing ``postgresql.conf`` (clusters
    whose configuration lives in ``/etc``) gets a minimal one. ``extra``: more settings (quoted as
    strings). Writes local files only."""
    settings = {
        "restore_command": restore_command,
        "recovery_target_action": "promote",
        "archive_mode": "off",
        "port": str(port),
        "listen_addresses": listen,
        "unix_socket_directories": str(socket_dir or data_dir),
    }
    if to_time is not None:
        settings["recovery_target_time"] = to_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    settings.update(extra or {})
    lines = ["", "# envsteward pitr restore"]
    for name, value in settings.items():
        lines.append(f"{name} = {value if name == 'port' else _conf_quote(value)}")
    conf = data_dir / "postgresql.conf"
    if not conf.exists():
        conf.write_text(
            "# written by envsteward pitr restore (the original lived outside the data directory)\n"
        )
        conf.chmod(0o600)
    with (data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    (data_dir / "recovery.signal").write_bytes(b"")
    for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (data_dir / leftover).unlink(missing_ok=True)


@dataclass(frozen=True)
class RecoveryOutcome:
    """The restored cluster after recovery: promoted, and where its data ends."""

    data_dir: str
    port: int
    last_replayed_commit: datetime | None
    """The commit time of the last transaction replayed (None: none after the base backup)."""
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "port": self.port,
            "last_replayed_commit": self.last_replayed_commit.isoformat()
            if self.last_replayed_commit
            else None,
            "seconds": self.seconds,
        }


def _log_tail(log_file: Path, lines: int = 8) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    important = [line for line in text.splitlines() if "FATAL" in line or "ERROR" in line or "PANIC" in line]
    return "\n".join((important or text.splitlines())[-lines:])


def as_os_user(command: Sequence[str], run_as: str | None) -> list[str]:
    """``command`` as it must run to start PostgreSQL: unchanged for a non-root process (``run_as`` is
    ignored: only root can switch users); through ``runuser -u RUN_AS --`` for root. Raises
    ConfigurationError for root without ``run_as`` (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return list(command)
    if run_as is None or run_as == "root":
        raise ConfigurationError("PostgreSQL cannot run as root: run the restore as the database's OS user")
    return ["runuser", "-u", run_as, "--", *command]


def give_to_os_user(path: Path, run_as: str | None) -> None:
    """Make ``path`` (recursively) owned by OS user ``run_as`` when this process is root (nothing to do
    otherwise). Raises ConfigurationError for an unknown user."""
    if os.geteuid() != 0 or run_as is None:
        return
    import pwd

    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigurationError(f"OS user {run_as!r} does not exist on this machine") from None
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def start_recovery(
    data_dir: Path,
    *,
    port: int,
    user: str = "postgres",
    log_file: Path | None = None,
    pg_bin: Path | None = None,
    timeout: float = 900.0,
    run_as: str | None = None,
    host: str = "127.0.0.1",
) -> RecoveryOutcome:
    """Start PostgreSQL on a prepared data directory and wait until recovery ended with a promotion.

    Runs pg_ctl as this OS user, or as OS user ``run_as`` through ``runuser`` (root only; PostgreSQL
    refuses to run as root). ``host``: where to connect (an address, or the socket directory).
    Calls pg_ctl and the restored server (``pg_is_in_recovery``, ``pg_last_xact_replay_timestamp``).
    Raises ConfigurationError (root, missing tools), PermanentError with the server log's last errors when
    the server stops (e.g. a WAL file that failed to verify, or the target time lies beyond the archived
    WAL), TransientError on timeout.
    """
    from envsteward.adapters.postgres import PostgresClient
    from envsteward.errors import EnvstewardError, TransientError

    started = time.monotonic()
    log = log_file or data_dir.with_name(data_dir.name + ".log")
    pg_ctl = pg_tool("pg_ctl", pg_bin)
    done = subprocess.run(
        as_os_user([pg_ctl, "-D", str(data_dir), "-l", str(log), "-W", "start"], run_as),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PermanentError(
            f"pg_ctl start failed for {data_dir}: {done.stderr.strip()[-500:]}\n{_log_tail(log)}"
        )
    client = PostgresClient(f"host={host} port={port} user={user} dbname=postgres", connect_timeout=2)
    deadline = started + timeout
    appeared = started + 30.0  # pg_ctl -W returns before the postmaster wrote its pid file
    seen = False
    asked = float("-inf")
    while True:
        if (data_dir / "postmaster.pid").exists():
            seen = True
        elif seen or time.monotonic() > appeared:
            raise PermanentError(
                f"the restored server in {data_dir} stopped during recovery:\n{_log_tail(log)}"
            )
        # PostgreSQL removes recovery.signal when it promotes: until then a cheap stat every 20 ms, and
        # a query only once a second (each is a new backend, competing with replay for the CPU)
        if (data_dir / "recovery.signal").exists() and time.monotonic() - asked < 1.0:
            time.sleep(0.02)
            continue
        asked = time.monotonic()
        try:
            rows = client.query("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()")
        except EnvstewardError:
            rows = []
        if rows and rows[0][0] is False:
            replayed = rows[0][1]
            return RecoveryOutcome(
                data_dir=str(data_dir),
                port=port,
                last_replayed_commit=replayed.astimezone(UTC) if replayed else None,
                seconds=round(time.monotonic() - started, 3),
            )
        if time.monotonic() > deadline:
            raise TransientError(f"recovery in {data_dir} did not end within {timeout:g} s; see {log}")
        time.sleep(0.02)


def stop_cluster(data_dir: Path, pg_bin: Path | None = None, mode: str = "fast") -> None:
    """``pg_ctl stop`` (no error when it is not running). Calls pg_ctl."""
    subprocess.run(
        [pg_tool("pg_ctl", pg_bin), "-D", str(data_dir), "-m", mode, "-w", "stop"],
        capture_output=True,
        check=False,
    )
