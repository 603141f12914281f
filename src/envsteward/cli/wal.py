"""``envsteward wal``: PostgreSQL's ``archive_command`` and ``restore_command``.

* ``wal push --target ENV/TARGET %p`` — archive one WAL file; exit 0 only once it is stored in the primary
  store (and the DR store, when the target has a replica). Any failure: one line on stderr, exit 1, and
  PostgreSQL keeps the file and retries.
* ``wal stream --target ENV/TARGET [--spool DIR] [--partial-interval S]`` — for targets with
  ``pitr.streaming: true``: run ``pg_receivewal`` with a replication slot and push every completed segment
  (and, every S seconds, the segment being written) until stopped (SIGTERM / Ctrl-C).
* ``wal fetch --target ENV/TARGET [--from any|primary|dr] %f %p`` — restore one WAL file. Exit 0 when
  restored; exit 1, silently, when the archive does not hold it (PostgreSQL probes for files that may not
  exist); exit 126 with one line on stderr for anything else (a segment that fails authentication, a
  foreign segment, an unreachable store): PostgreSQL treats an exit status above 125 as fatal and stops
  recovery instead of taking the failure for the end of the archive and promoting early.

Both run once per WAL file, so they import as little as they can and print nothing on success (``-v``
prints one line). ``wal fetch`` of a segment also forks a read-ahead of the next segments into
``pg_wal/.envsteward-prefetch/`` (:mod:`envsteward.pitr.prefetch`); the next calls take theirs from there
in ``envsteward.cli.entry`` before anything heavy is imported. Settings come from the environment
(``ENVSTEWARD_HOME``, ``ENVSTEWARD_CATALOG``, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from envsteward.pitr.archive import FetchSource, WalArchive
    from envsteward.services import Services

app = typer.Typer(
    help="Archive and restore PostgreSQL WAL files (archive_command / restore_command).", no_args_is_help=True
)

EXIT_MISSING = 1
EXIT_FATAL = 126
"""Above 125: PostgreSQL aborts recovery rather than treating the file as absent."""

TargetOption = Annotated[str, typer.Option("--target", help="The catalog backup target, ENVIRONMENT/TARGET.")]
VerboseOption = Annotated[bool, typer.Option("-v", "--verbose", help="Print one line per file.")]


def _services() -> Services:
    from envsteward.services import Services

    return Services()


def _say(command: str, message: str) -> None:
    sys.stderr.write(f"envsteward wal {command}: {message}\n")
    sys.stderr.flush()


@app.command("push")
def push(
    path: Annotated[Path, typer.Argument(help="The WAL file (PostgreSQL's %p).")],
    target: TargetOption,
    name: Annotated[
        str | None, typer.Option("--name", help="Archive under this name (default: the file's).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Archive one WAL file (for archive_command)."""
    from envsteward.errors import EnvstewardError
    from envsteward.pitr import push_ahead
    from envsteward.pitr.archive import push_wal
    from envsteward.pitr.context import pitr_target, wal_archive

    # before the catalog is read: a catalog changed meanwhile makes the stamp older, never newer, than
    # the archive built below (a .ok under it then proves nothing; never the other way round)
    config = push_ahead.config_stamp()
    services: Services | None = None
    try:
        services = _services()
        archive = wal_archive(services, target, write=True)
        ahead = pitr_target(services, target)[1].pitr.archive_ahead
        spool = push_ahead.spool_for(path) if name is None else None
        if spool is not None and ahead.enabled:
            _push_ahead(
                services, archive, (target, config), path, workers=ahead.workers, max_ahead=ahead.max_ahead
            )
        result = push_wal(archive, path, name)
        if spool is not None:
            push_ahead.retire_after_error(spool, path.name)
    except EnvstewardError as exc:
        _say("push", push_error_line(name or path.name, target, exc))
        if services is not None:
            _record_failure(services, target, exc, name or path.name)
        raise typer.Exit(1) from None
    if verbose:
        _say("push", f"{result.name}: {result.status} (DR: {result.dr_status}) in {result.seconds:.3f}s")


def push_error_line(segment: str, target: str, exc: BaseException) -> str:
    """The line PostgreSQL logs for a failed push: it names the segment and the target even when the
    error itself (a store that does not answer) does not. envsteward's errors name no secret. Pure."""
    message = str(exc)
    where = "" if segment in message else f"{segment} (--target {target}): "
    return f"error: {where}{message}"


def _push_ahead(
    services: Services,
    archive: WalArchive,
    target_config: tuple[str, str],
    path: Path,
    *,
    workers: int,
    max_ahead: int,
) -> None:
    """Let the archive-ahead answer for ``path`` (envsteward.pitr.push_ahead) under ``(target, config
    stamp)``: retire a pusher of another target or configuration, start the pusher of its ``pg_wal`` when
    none runs, wait for its answer, and exit 0 (stored). Returns when the caller must push the segment
    itself (not PostgreSQL's layout, no pusher, no progress, the pusher failed to push it)."""
    from envsteward.pitr import push_ahead

    target, config = target_config
    spool = push_ahead.spool_for(path)
    if spool is None or push_ahead.disabled_by_environment():
        return
    if push_ahead.retire_foreign(spool, target, config):
        return  # it exits within a second; the next wal push starts one under this configuration
    if not push_ahead.pusher_running(spool):
        push_ahead.start_background(
            lambda: _run_pusher(
                services, archive, target_config, path.parent, workers=workers, max_ahead=max_ahead
            )
        )
        push_ahead.wait_started(spool)
    answered = push_ahead.answer(path.name, path, target, config)
    if answered is not None and answered[0] == 0:
        raise typer.Exit(0)


def _run_pusher(
    services: Services,
    archive: WalArchive,
    target_config: tuple[str, str],
    pg_wal: Path,
    *,
    workers: int,
    max_ahead: int,
) -> int:
    """The body of the forked pusher: push ``pg_wal``'s ready segments with :func:`push_wal` and record
    each failure (class and segment) and the pusher's state for ``pitr status``. Calls the stores, the
    key provider and the state store; writes the spool."""
    from envsteward.errors import EnvstewardError
    from envsteward.pitr import push_ahead
    from envsteward.pitr.archive import push_wal
    from envsteward.pitr.status import record_pusher_event

    target, config = target_config

    def push_one(segment: str, segment_path: Path) -> dict[str, object]:
        result = push_wal(archive, segment_path)
        regions = ["primary"] + ([] if result.dr_status == "no-dr-store" else ["dr"])
        return {
            "key": result.key,
            "regions": regions,
            "status": result.status,
            "dr_status": result.dr_status,
            "size": result.size,
            "sha256": result.sha256,
            "stored_size": result.stored_size,
        }

    def describe(exc: BaseException) -> str:
        # envsteward's errors are written for the operator and name no secret; anything else is a bug
        # whose text could hold anything, so only its class is shown
        if isinstance(exc, EnvstewardError):
            return str(exc)
        return f"unexpected {type(exc).__name__} in the archive-ahead (see `envsteward pitr status`)"

    def on_event(kind: str, fields: Mapping[str, object]) -> None:
        details = {key: value for key, value in fields.items() if key != "exception"}
        exc = fields.get("exception")
        if kind == "error" and isinstance(exc, BaseException):
            _record_failure(services, target, exc, str(fields["segment"]))
        record_pusher_event(services.state_store(), target, kind, {**details, "pg_wal": str(pg_wal)})

    return push_ahead.run_pusher(
        pg_wal,
        push_one,
        target=target,
        config=config,
        workers=workers,
        max_ahead=max_ahead,
        describe_error=describe,
        on_event=on_event,
    )


def _record_failure(services: Services, target: str, exc: BaseException, segment: str) -> None:
    """Count the failure for ``backup list``/``pitr status`` (class and segment only; best effort)."""
    from envsteward.pitr.status import record_push_failure

    environment, _, name = target.partition("/")
    if not environment or not name:
        return
    try:
        store = services.state_store()
    except Exception:  # noqa: BLE001 - the push failed already; its own error is what PostgreSQL logs
        return
    record_push_failure(store, environment, name, exc, segment)


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="The WAL file name PostgreSQL asks for (%f).")],
    path: Annotated[Path, typer.Argument(help="Where to write it (%p).")],
    target: TargetOption,
    source: Annotated[str, typer.Option("--from", help="any (primary, then DR), primary or dr.")] = "any",
    verbose: VerboseOption = False,
) -> None:
    """Restore one WAL file (for restore_command)."""
    from envsteward.errors import EnvstewardError
    from envsteward.pitr.archive import WalNotFoundError, fetch_wal
    from envsteward.pitr.context import wal_archive

    if source not in ("any", "primary", "dr"):
        _say("fetch", f"error: --from {source!r}: expected any, primary or dr")
        raise typer.Exit(EXIT_FATAL)
    try:
        archive = wal_archive(_services(), target, write=False)
        result = fetch_wal(archive, name, path, cast("FetchSource", source))
    except WalNotFoundError:
        raise typer.Exit(EXIT_MISSING) from None
    except EnvstewardError as exc:
        _say("fetch", f"error: {exc}")
        raise typer.Exit(EXIT_FATAL) from None
    if verbose:
        _say("fetch", f"{result.name}: from {result.region} in {result.seconds:.3f}s")
    _read_ahead(
        archive,
        name,
        path,
        cast("FetchSource", source),
        segment_size=result.size,
        result_partial=result.partial,
    )


def _read_ahead(
    archive: WalArchive,
    name: str,
    path: Path,
    source: FetchSource,
    *,
    segment_size: int,
    result_partial: bool,
) -> None:
    """After a segment was fetched, fork the prefetcher of the segments after it (envsteward.pitr.prefetch);
    the next ``wal fetch`` calls then take theirs from the spool (``envsteward.cli.entry``)."""
    from envsteward.pitr import prefetch
    from envsteward.pitr.walnames import wal_kind

    ahead = prefetch.window()
    if ahead == 0 or wal_kind(name) != "segment" or result_partial:
        return
    first = prefetch.next_segment(name, segment_size)
    prefetch.start_background(
        lambda: _prefetch(archive, source, first, path, segment_size=segment_size, ahead=ahead)
    )


def _prefetch(
    archive: WalArchive, source: FetchSource, first: str, path: Path, *, segment_size: int, ahead: int
) -> int:
    """Run the read-ahead for a restore whose ``%p`` is ``path`` (``pg_wal/RECOVERYXLOG``), from segment
    ``first``: segments into the spool, and the negative listing of what the archive does not hold.
    Calls the stores and the key provider; writes the spool."""
    import os

    from envsteward.pitr import prefetch
    from envsteward.pitr.archive import WalNotFoundError, absent_names, fetch_wal

    def fetch_one(next_name: str, target_path: Path) -> bool:
        try:
            fetch_wal(archive, next_name, target_path, source, allow_partial=False)
        except WalNotFoundError:
            return False
        return True

    # PostgreSQL runs restore_command in its data directory, with %p = pg_wal/RECOVERY...
    signal = (
        Path(os.path.abspath(path.parent.parent / "recovery.signal"))
        if path.parent.name == "pg_wal"
        else None
    )
    return prefetch.run_prefetcher(
        prefetch.spool_for(path),
        first,
        fetch_one,
        segment_size=segment_size,
        ahead=ahead,
        absent=lambda names: absent_names(archive, names, source),
        recovery_signal=signal,
    )


@app.command("prefetch", hidden=True)
def prefetch_command(
    first: Annotated[str, typer.Argument(help="The first WAL segment to read ahead.")],
    pg_wal: Annotated[Path, typer.Argument(help="The restored cluster's pg_wal folder.")],
    target: TargetOption,
    source: Annotated[str, typer.Option("--from", help="any (primary, then DR), primary or dr.")] = "any",
    restore_pid: Annotated[
        int | None, typer.Option("--restore-pid", help="Give up when this process (the restore) ends first.")
    ] = None,
) -> None:
    """Read ahead for a restore that is starting (run by ``backup restore`` / ``pitr restore`` and the PITR
    drill): loads the settings and the archive while the base backup is unpacked, waits for
    ``recovery.signal`` (written once the base backup is unpacked and checked), then runs the read-ahead in
    the foreground until recovery ended or it idled."""
    import os
    import time

    from envsteward.errors import EnvstewardError
    from envsteward.pitr import prefetch
    from envsteward.pitr.context import wal_archive

    ahead = prefetch.window()
    if ahead == 0 or source not in ("any", "primary", "dr"):
        raise typer.Exit(0)
    try:
        archive = wal_archive(_services(), target, write=False)
    except EnvstewardError as exc:  # the restore_command reports the same problem to PostgreSQL
        _say("prefetch", f"error: {exc}")
        raise typer.Exit(1) from None
    signal = pg_wal.parent / "recovery.signal"
    # ready: the settings are written, and (a root restore) the directory was handed to this OS user
    while not (signal.exists() and os.access(pg_wal, os.W_OK | os.X_OK)):
        if restore_pid is not None:
            try:
                os.kill(restore_pid, 0)
            except ProcessLookupError:
                raise typer.Exit(0) from None
            except PermissionError:
                pass  # alive, run by another OS user (root, which started us through runuser)
        time.sleep(0.02)
    try:
        segment_size = (pg_wal / first).stat().st_size
    except OSError:
        segment_size = 16 << 20
    _prefetch(
        archive,
        cast("FetchSource", source),
        first,
        pg_wal / "RECOVERYXLOG",
        segment_size=segment_size,
        ahead=ahead,
    )


@app.command("stream")
def stream(
    target: TargetOption,
    spool: Annotated[
        Path | None,
        typer.Option(
            "--spool", help="pg_receivewal's folder (default: ENVSTEWARD_HOME/wal-stream/ENV_TARGET)."
        ),
    ] = None,
    partial_interval: Annotated[
        float, typer.Option("--partial-interval", min=0.5, help="Seconds between pushes of the open segment.")
    ] = 5.0,
    slot: Annotated[
        str | None,
        typer.Option(
            "--slot", help="Replication slot (default: pitr.slot_name, else envsteward_ENV_TARGET)."
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Stream WAL with pg_receivewal into the archive (for pitr.streaming: true); runs until stopped."""
    run_stream(target, spool=spool, partial_interval=partial_interval, slot=slot, verbose=verbose)


def run_stream(
    target: str, *, spool: Path | None, partial_interval: float, slot: str | None, verbose: bool
) -> None:
    """The body of ``wal stream``: build the streamer, stop on SIGTERM/SIGINT. Exit 1 with one line on
    a configuration error or a slot that cannot be created."""
    import signal

    from envsteward.errors import ConfigurationError, EnvstewardError
    from envsteward.pitr.base import pg_tool
    from envsteward.pitr.context import pitr_target, wal_archive
    from envsteward.pitr.stream import StreamConfig, WalStreamer, target_slot

    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        services = _services()
        environment, spec = pitr_target(services, target)
        if not spec.pitr.streaming:
            raise ConfigurationError(
                f"backup target {target} does not enable streaming (set pitr.streaming: true)"
            )
        archive = wal_archive(services, target, write=True)
        folder = spool or Path(services.settings.home) / "wal-stream" / f"{environment}_{spec.name}"
        config = StreamConfig(
            dsn=spec.dsn,
            slot=slot or target_slot(environment, spec),
            spool=folder,
            pg_receivewal=pg_tool("pg_receivewal", Path(spec.pitr.pg_bin) if spec.pitr.pg_bin else None),
            password=services.resolve_secret(spec.password) if spec.password is not None else None,
            partial_interval=partial_interval,
        )
        streamer = WalStreamer(
            archive,
            config,
            on_event=lambda message: (
                _say("stream", message) if verbose or message.startswith("error") else None
            ),
        )
        streamer.run(lambda: bool(stopping))
    except EnvstewardError as exc:
        _say("stream", f"error: {exc}")
        raise typer.Exit(1) from None
