"""Restore a PITR target into a new cluster at a point in time: the one code path behind
``envsteward backup restore ID --to-time/--to-latest --to-dir`` and ``envsteward pitr restore``.

Steps (:func:`restore_to_point`): choose the base backup (the one given, else the newest that ended before
the target time) in the store WAL is read from; start the WAL read-ahead (:func:`start_read_ahead`: it
loads while the base backup is unpacked); unpack and check the base backup into the NEW or empty directory
(:func:`~envsteward.pitr.base.restore_base_backup`), ``pg_verifybackup``, write the recovery settings
with ``restore_command`` = ``mv`` from the read-ahead spool, else ``envsteward wal fetch``
(:func:`restore_command`), then (``start``) start PostgreSQL and wait for the promotion. The JSON summary
has ``timings`` (seconds per step).

External calls: the object stores, the key provider, ``pg_verifybackup``, ``pg_ctl`` and the restored
server (through :mod:`envsteward.pitr.base`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from envsteward.errors import ConfigurationError
from envsteward.pitr.context import PitrServices, pitr_target, target_keys, target_stores

SOURCES = ("any", "primary", "dr")


def parse_time(value: str, option: str = "--to-time") -> datetime:
    """An ISO 8601 time with a zone, in UTC. Raises ConfigurationError naming ``option``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"{option} {value!r}: expected an ISO 8601 time, e.g. 2024-05-01T12:30:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"{option} {value!r}: give a time zone (Z or +02:00)")
    return moment.astimezone(UTC)


def envsteward_command() -> str:
    """How PostgreSQL should call envsteward: ``ENVSTEWARD_EXECUTABLE`` when set, else the console script
    next to this interpreter, else ``envsteward`` on the server's PATH."""
    if os.environ.get("ENVSTEWARD_EXECUTABLE"):
        return os.environ["ENVSTEWARD_EXECUTABLE"]
    candidate = Path(sys.executable).parent / "envsteward"
    return str(candidate) if candidate.exists() else "envsteward"


def _settings_env(home: Path, catalog: Path) -> dict[str, str]:
    return {"ENVSTEWARD_HOME": str(Path(home).resolve()), "ENVSTEWARD_CATALOG": str(Path(catalog).resolve())}


def restore_command(home: Path, catalog: Path, selector: str, source: str) -> str:
    r"""``restore_command`` for a restored cluster: this envsteward, with ``home`` and ``catalog`` as
    absolute paths (other settings come from the server's environment; no secret is written).

    With read-ahead on (:func:`envsteward.pitr.prefetch.window`) it is a POSIX ``sh`` line that first
    moves ``%f`` from the read-ahead spool (one ``rename``: a segment there was fully authenticated by the
    prefetcher) and otherwise ``exec``\ s ``envsteward wal fetch``, which fetches, waits for a segment in
    flight, answers known-absent files and reports errors. PostgreSQL runs it with ``/bin/sh -c`` in the
    data directory, with ``%p`` = ``pg_wal/RECOVERY...`` and ``%f`` = a WAL file name (hex digits and
    ``.history``): only the values quoted here can hold unusual characters. Pure."""
    from envsteward.pitr.prefetch import SPOOL_NAME, window

    assignments = " ".join(
        f"{name}={shlex.quote(value)}" for name, value in _settings_env(home, catalog).items()
    )
    command = shlex.quote(envsteward_command())
    fetch = f"{command} wal fetch --target {shlex.quote(selector)} --from {shlex.quote(source)} %f %p"
    if window() == 0:
        return f"{assignments} {fetch}"
    return f"mv -f pg_wal/{SPOOL_NAME}/%f %p 2>/dev/null || {assignments} exec {fetch}"


def start_read_ahead(  # noqa: PLR0917 - the restore_command's four, plus where and from which segment
    home: Path,
    catalog: Path,
    selector: str,
    source: str,
    data_dir: Path,
    first_segment: str,
    *,
    run_as: str | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start ``envsteward wal prefetch`` for a restore that is starting (None when read-ahead is off).

    Started before the base backup is unpacked: it loads the settings and opens the archive meanwhile,
    waits for ``recovery.signal`` (:func:`~envsteward.pitr.base.write_recovery_settings`), then fills the
    spool from ``first_segment`` (the base backup's first WAL file, PostgreSQL's first request) and keeps
    the negative listing PostgreSQL's ``.history`` probes are answered from. Detached (own session); it
    gives up when this process ends first, and exits by itself a few seconds after the promotion.
    Runs as OS user ``run_as`` when this process is root. Starts a process; raises ConfigurationError
    (root without ``run_as``)."""
    from envsteward.pitr.base import as_os_user
    from envsteward.pitr.prefetch import window

    if window() == 0:
        return None
    command = [
        envsteward_command(),
        "wal",
        "prefetch",
        "--target",
        selector,
        "--from",
        source,
        "--restore-pid",
        str(os.getpid()),
        first_segment,
        str(data_dir / "pg_wal"),
    ]
    return subprocess.Popen(
        as_os_user(command, run_as),
        env={**os.environ, **_settings_env(home, catalog)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_read_ahead(process: subprocess.Popen[bytes] | None, data_dir: Path, timeout: float = 10.0) -> None:
    """Wait (up to ``timeout`` s) until the read-ahead wrote its first negative listing, so PostgreSQL's
    first probes are answered without a CLI start; returns early when it exited. Local files only."""
    from envsteward.pitr.prefetch import ABSENT_FILE, SPOOL_NAME

    if process is None:
        return
    listing = data_dir / "pg_wal" / SPOOL_NAME / ABSENT_FILE
    until = time.monotonic() + timeout
    while process.poll() is None and not listing.exists() and time.monotonic() < until:
        time.sleep(0.02)


def stop_read_ahead(process: subprocess.Popen[bytes] | None, *, failed: bool = False) -> None:
    """After the restore: the read-ahead ends by itself a few seconds after PostgreSQL promoted (it is
    reaped by a daemon thread, so the caller does not wait); after a failed restore it is terminated now.
    Signals only that process."""
    if process is None:
        return
    if not failed:
        threading.Thread(target=process.wait, name="read-ahead-reaper", daemon=True).start()
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def base_backup_selector(backup_id: str) -> str | None:
    """``ENV/TARGET`` when ``backup_id`` names a PITR base backup (``<env>/<target>.pitr/<stamp>``), else
    None (a logical dump or another kind of backup). Pure; raises ConfigurationError for an invalid id."""
    from envsteward.backup.manifest import check_backup_id
    from envsteward.pitr.walnames import PITR_SUFFIX

    parts = check_backup_id(backup_id).split("/")
    if len(parts) == 3 and parts[1].endswith(PITR_SUFFIX) and len(parts[1]) > len(PITR_SUFFIX):
        return f"{parts[0]}/{parts[1][: -len(PITR_SUFFIX)]}"
    return None


def not_a_base_backup(backup_id: str) -> ConfigurationError:
    """The error for ``--to-time/--to-latest`` on a backup that is not a PITR base backup."""
    parts = backup_id.split("/")
    selector = "/".join(parts[:2]) if len(parts) >= 2 else "ENV/TARGET"
    target = parts[1] if len(parts) >= 2 else "TARGET"
    return ConfigurationError(
        f"backup {backup_id} is not a PITR base backup (a logical dump restores to its own moment only): "
        "--to-time/--to-latest need a base backup of a postgres target with pitr.enabled; list them with "
        f"`envsteward backup list --target {target}.pitr` or `envsteward pitr status {selector}`, or restore "
        "this dump with --to postgresql://..."
    )


@dataclass(frozen=True)
class PointInTimeRequest:
    """What to restore: ``to_time`` None means every archived transaction (``--to-latest``)."""

    selector: str
    data_dir: Path
    to_time: datetime | None
    port: int = 5499
    source: str = "any"
    backup_id: str | None = None
    start: bool = True

    def check(self) -> None:
        """Raises ConfigurationError for a bad ``source`` or port."""
        if self.source not in SOURCES:
            raise ConfigurationError(f"--from {self.source!r}: expected any, primary or dr")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"--port {self.port}: expected 1..65535")


def restore_to_point(services: PitrServices, request: PointInTimeRequest) -> dict[str, Any]:
    """Restore ``request.selector`` into ``request.data_dir`` (see the module docstring); a JSON summary
    (backup id, directory, files, and after ``start`` the port, last replayed commit and seconds).

    Raises ConfigurationError / CatalogError (unknown or non-PITR target, bad input), NotFoundError (no
    usable base backup), ConflictError (the directory is not empty), IntegrityError (a file or WAL that
    fails its checks), PermanentError (the server stopped during recovery), TransientError (timeout)."""
    from envsteward.pitr.base import (
        BaseBackupInfo,
        choose_base_backup,
        list_base_backups,
        prepare_data_dir,
        restore_base_backup,
        start_recovery,
        verify_with_pg,
        write_recovery_settings,
    )
    from envsteward.pitr.walnames import archive_prefix

    request.check()
    environment, spec = pitr_target(services, request.selector)
    stores = target_stores(services, spec)
    store = stores.dr if request.source == "dr" and stores.dr is not None else stores.primary
    prefix = archive_prefix(environment, spec.name)
    if request.backup_id is not None:
        from envsteward.backup.pipeline import read_manifest

        if not request.backup_id.startswith(prefix):
            raise ConfigurationError(
                f"backup {request.backup_id} is not a base backup of {request.selector} (those are "
                f"{prefix}...; list them with `envsteward pitr status {request.selector}`)"
            )
        chosen = BaseBackupInfo.of(read_manifest(store, request.backup_id))
        if request.to_time is not None and chosen.end_time > request.to_time:
            raise ConfigurationError(
                f"base backup {chosen.backup_id} ended at {chosen.end_time.isoformat()}, after --to-time "
                f"{request.to_time.isoformat()}: choose an older base backup or a later time"
            )
    else:
        chosen = choose_base_backup(list_base_backups(store, prefix), request.to_time)
    data_dir = request.data_dir.resolve()
    pg_bin = Path(spec.pitr.pg_bin) if spec.pitr.pg_bin else None
    home, catalog = services.settings.home, services.settings.catalog
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[step] = round(now - clock, 3)
        clock = now

    prepare_data_dir(data_dir)  # refuses a used directory before the read-ahead is pointed at it
    reader = (
        start_read_ahead(home, catalog, request.selector, request.source, data_dir, chosen.start_wal_file)
        if request.start
        else None
    )
    result: dict[str, Any] = {}
    try:
        keys = target_keys(services, spec, write=False)
        summary = restore_base_backup(store, keys, chosen.backup_id, data_dir)
        lap("unpack")
        verify_with_pg(data_dir, pg_bin)
        lap("pg_verifybackup")
        write_recovery_settings(
            data_dir,
            restore_command=restore_command(home, catalog, request.selector, request.source),
            to_time=request.to_time,
            port=request.port,
        )
        result.update(
            {
                "target": request.selector,
                "backup_id": chosen.backup_id,
                "data_dir": str(data_dir),
                "files": summary.files,
                "to_time": request.to_time.isoformat() if request.to_time else "latest",
            }
        )
        if request.start:
            wait_read_ahead(reader, data_dir)
            lap("read_ahead_ready")
            user = urlsplit(spec.dsn).username or "postgres"
            outcome = start_recovery(data_dir, port=request.port, user=user, pg_bin=pg_bin)
            lap("start_and_recovery")
            result.update(outcome.as_json())
    except BaseException:
        stop_read_ahead(reader, failed=True)
        raise
    stop_read_ahead(reader)
    result["timings"] = timings
    return result
