"""Archive-ahead for ``wal push``: one background pusher per data directory keeps up with a busy primary.

PostgreSQL runs ``archive_command`` once per 16 MiB segment, serially; each ``wal push`` used to pay the
whole start-up of envsteward (~0.5 s) for ~0.03 s of work, which caps one archiver near 2 segments/s. Like
pgBackRest's ``archive-push`` async mode, the first ``wal push`` of a segment forks one detached pusher for
its ``pg_wal`` (an ``flock`` on ``pg_wal/.envsteward-push/.lock``: at most one). The pusher scans
``pg_wal/archive_status/*.ready`` in WAL order and pushes the oldest segments not pushed yet with
``workers`` threads through the caller's ``push_one`` (:func:`envsteward.pitr.archive.push_wal`: both
regions, put-if-absent, the same objects and checks as a synchronous push). Each success is recorded in the
spool as ``<segment>.ok`` (JSON: the target, the object key, the regions, the size and SHA-256 of the bytes
pushed, and the file's identity: device, inode, size, mtime and ctime), written to a temp file, fsynced and
renamed AFTER ``push_one`` returned, i.e. after every store confirmed. Each failure is ``<segment>.error``
(the error's message: envsteward's errors name no secret) and the segment is retried after a back-off.

The following ``wal push`` calls are answered by :func:`answer` before anything heavy is imported
(``envsteward.cli.entry``): exit 0 ONLY when ``<segment>.ok`` exists, names the same ``--target`` and the
same configuration stamp (:func:`config_stamp`: the catalog, ``.env`` and ``ENVSTEWARD_*`` settings the
call sees now, so a ``.ok`` pushed to the stores of an older catalog proves nothing) and matches the file
PostgreSQL passed as ``%p`` right now: the same identity (one ``stat``, see :func:`file_identity`), else
the same size and SHA-256 (the file is hashed, ~40 ms); a ``.ok`` that does not match is never an answer
(the full CLI pushes synchronously, with the usual conflict checks). While the pusher of this target and
stamp runs and works, the call waits for it (at most ``WAIT_SECONDS``). Never an exit 1 from the spool:
a segment the pusher failed to push (its ``.error``), no pusher (killed, exited), a pusher of another
target or stamp, a pusher that made no progress for ``STALL_SECONDS``, or a segment without a ``.ready``
file: no answer, and the full CLI pushes the segment itself (PostgreSQL sees the store's own error, or
success: a pusher broken for good, e.g. credentials expired in it, can never hold WAL back). The full CLI
then retires (``retire``) a pusher of another target or stamp, and one whose failed segment it just
stored; a pusher also exits by itself within ``CLEAN_SECONDS`` when the stamp it sees changes.

What a kill leaves: a pusher killed mid-push leaves no ``.ok`` for that segment (the ``.ok`` is written
only after the stores confirmed) and possibly a temp object the store's sweep removes (put-if-absent
never shows a partial object), a ``.<segment>.ok.<pid>.tmp`` and ``<segment>.inflight``; its ``flock``
dies with it. The next pusher removes every temp file, ``.inflight``, ``.error`` and ``retire`` of its
predecessor when it takes the lock (and rewrites ``pusher.json``: its pid, target and stamp), and
(every scan) the ``.ok`` of segments whose ``.ready`` is gone (PostgreSQL marked them ``.done`` after our
exit 0, or recycled them). The pusher exits after ``idle_seconds``
without a ``.ready`` segment to push, when ``pg_wal`` disappears, and when retired. A spool that cannot
be written (a full disk) records nothing: ``wal push`` pushes those segments itself. A clock stepped back
never makes it sleep: a file dated in the future gets no identity (only its SHA-256 proves it) and a
progress mark dated in the future counts as stalled.

This module imports only the standard library: it runs on the fast path of every ``wal push``.
External calls: local files only (the pushing is the ``push_one`` callable passed in).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envsteward.pitr.prefetch import lock_held, start_background

__all__ = [
    "SPOOL_NAME",
    "answer",
    "config_stamp",
    "disabled_by_environment",
    "pusher_running",
    "retire_after_error",
    "retire_foreign",
    "run_pusher",
    "spool_for",
    "start_background",
    "wait_started",
]

SPOOL_NAME = ".envsteward-push"
_LOCK = ".lock"
PUSHER_FILE = "pusher.json"
"""Written by the pusher when it took the lock: its pid, target and configuration stamp."""
RETIRE_FILE = "retire"
"""Holds the pid of a pusher that must exit (another target or configuration, or its pushes fail while a
synchronous push succeeds); written by ``wal push``, read by the pusher every ``CLEAN_SECONDS``."""
PROGRESS_FILE = "progress"
"""Touched when the pusher starts and whenever a push starts or ends: its mtime is the last progress."""
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_READY = re.compile(r"^([0-9A-F]{24})\.ready$")
WAIT_SECONDS = 60.0
"""How long one ``wal push`` waits for a working pusher before it pushes its segment itself."""
STALL_SECONDS = 30.0
"""A pusher with no push started or finished for this long is not making progress."""
IDLE_SECONDS = 60.0
POLL_SECONDS = 0.02
IDLE_POLL_SECONDS = 0.1
"""The pusher's scan interval after a second without work (the first segment of a new burst waits for
this at most; the following ones are pushed before PostgreSQL asks)."""
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)
"""Back-off before the pusher retries a segment that failed (the last value repeats)."""
DEFAULT_WORKERS = 2
DEFAULT_MAX_AHEAD = 64
CLEAN_SECONDS = 1.0
RACY_SECONDS = 0.05
"""A file changed less than this ago may change again within the same timestamp tick (see
:func:`settled_identity`)."""
HEARTBEAT_SECONDS = 30.0
"""``on_event("heartbeat")`` at least this often (and 2 s after a push, for ``pitr status``)."""


def disabled_by_environment() -> bool:
    """``ENVSTEWARD_WAL_PUSH_AHEAD=0`` in archive_command's environment turns the archive-ahead off at once
    (the catalog's ``pitr.archive_ahead.enabled: false`` is the lasting switch)."""
    return os.environ.get("ENVSTEWARD_WAL_PUSH_AHEAD", "").strip() in ("0", "off", "false", "no")


_STAMP_IGNORED = frozenset({"ENVSTEWARD_WAL_PUSH_AHEAD", "ENVSTEWARD_FINGERPRINT_KEY"})
_SECRET_VARIABLE = re.compile(r"PASSWORD|TOKEN|SECRET")
DEFAULT_CATALOG = "examples/catalog"
"""envsteward.settings.Settings.catalog's default (relative to the working directory)."""
DEFAULT_HOME = ".envsteward"
"""envsteward.settings.Settings.home's default (relative to the working directory)."""
STAMP_CONTENT_BYTES = 1 << 20
"""Catalog files up to this size are digested by content, larger ones by their ``stat``."""


def _dotenv_value(text: str, name: str) -> str | None:
    """``name``'s value in a ``.env`` file (``[export] KEY=VALUE``, optionally quoted; keys compared
    case-insensitively, like pydantic-settings), or None."""
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip().upper() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value
    return None


def config_stamp(environ: Mapping[str, str] | None = None) -> str:
    """A digest of everything that decides where and how ``wal push`` stores a file, as the settings see
    it from this process: the working directory, every ``ENVSTEWARD_*`` variable (names compared
    case-insensitively; ``ENVSTEWARD_WAL_PUSH_AHEAD`` and credential values such as
    ``ENVSTEWARD_SMTP_PASSWORD`` or ``ENVSTEWARD_FINGERPRINT_KEY`` aside: the settings hold references),
    the ``.env`` file of the working directory, and the name and bytes of every file in the catalog
    folder (``ENVSTEWARD_CATALOG``, else ``.env``'s, else the default; hidden subfolders such as ``.git``
    aside). A ``.ok`` proves a file stored only under the same stamp: another store, prefix, DR region or
    key provider in the catalog makes the records of the old one prove nothing, and the running pusher
    exits. Only a digest is kept. Reads local files (0.35 ms of CPU for the 11 files of
    examples/catalog); never raises."""
    environ = os.environ if environ is None else environ
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode("utf-8", "surrogateescape") + data)

    cwd = os.getcwd()
    add("cwd", cwd.encode("utf-8", "surrogateescape"))
    settings = {key.upper(): value for key, value in environ.items() if key.upper().startswith("ENVSTEWARD_")}
    for key in sorted(settings.keys() - _STAMP_IGNORED):
        if _SECRET_VARIABLE.search(key):  # a credential's value (never where or how WAL is stored)
            continue
        add(f"env {key}", settings[key].encode("utf-8", "surrogateescape"))
    try:
        dotenv = Path(cwd, ".env").read_bytes()
    except OSError:
        dotenv = b""
    add(".env", dotenv)
    catalog = (
        settings.get("ENVSTEWARD_CATALOG")
        or _dotenv_value(dotenv.decode("utf-8", "replace"), "ENVSTEWARD_CATALOG")
        or DEFAULT_CATALOG
    )
    root = os.path.join(cwd, catalog)
    # ENVSTEWARD_HOME may lie inside the catalog folder: its state and objects change all the time
    home = os.path.realpath(
        os.path.join(
            cwd,
            settings.get("ENVSTEWARD_HOME")
            or _dotenv_value(dotenv.decode("utf-8", "replace"), "ENVSTEWARD_HOME")
            or DEFAULT_HOME,
        )
    )
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(
            sub
            for sub in subfolders
            if not sub.startswith(".") and os.path.realpath(os.path.join(folder, sub)) != home
        )  # .git and the like, and the home
        for filename in sorted(files):
            add(
                f"catalog {os.path.relpath(os.path.join(folder, filename), root)}",
                _file_stamp(folder, filename),
            )
    return digest.hexdigest()[:32]


def _file_stamp(folder: str, filename: str) -> bytes:
    """The bytes of a catalog file, or for a file above ``STAMP_CONTENT_BYTES`` (not a catalog document)
    its size, inode and timestamps. Never raises."""
    path = os.path.join(folder, filename)
    try:
        st = os.stat(path)
        if st.st_size > STAMP_CONTENT_BYTES:
            return f"\0stat {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}".encode()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b"\0unreadable"


def spool_for(path: Path) -> Path | None:
    """The spool of the ``pg_wal`` holding ``path`` (PostgreSQL's ``%p``), or None when ``path`` is not in
    a folder with an ``archive_status`` subfolder (not PostgreSQL's layout: push synchronously)."""
    folder = path.parent
    if not (folder / "archive_status").is_dir():
        return None
    return folder / SPOOL_NAME


def pusher_running(spool: Path) -> bool:
    """True while a pusher holds the spool's lock. Local files only; never raises."""
    return lock_held(spool / _LOCK)


def wait_started(spool: Path, seconds: float = 2.0) -> bool:
    """Wait (at most ``seconds``) until a pusher holds the spool's lock; whether one does."""
    until = time.monotonic() + seconds
    while not pusher_running(spool):
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


def file_digest(path: Path) -> tuple[int, str]:
    """``(size, SHA-256 hex)`` of the file at ``path``. Raises OSError."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def read_ok(spool: Path, name: str) -> dict[str, Any] | None:
    """The ``.ok`` record of segment ``name``, or None (none, unreadable or not a record)."""
    try:
        record = json.loads((spool / f"{name}.ok").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def proven(spool: Path, name: str, path: Path, target: str, config: str) -> dict[str, Any] | None:
    """The ``.ok`` record of ``name`` when it proves that the file at ``path`` is stored for ``target``
    under configuration ``config`` (:func:`config_stamp`): the same segment name, target and stamp, and
    the file's identity or its size and SHA-256 now equal those pushed. Else None.
    Reads the file (local files only; never raises)."""
    record = read_ok(spool, name)
    if record is None or record.get("segment") != name or record.get("target") != target:
        return None
    if not config or record.get("config") != config:
        return None
    if not record.get("key") or not record.get("regions"):
        return None
    try:
        if record.get("stat") is not None and record["stat"] == file_identity(path):
            return record
        size, digest = file_digest(path)
    except OSError:
        return None
    if record.get("size") != size or record.get("sha256") != digest:
        return None
    return record


def file_identity(path: Path) -> list[int]:
    """``[device, inode, size, mtime_ns, ctime_ns]`` of ``path``. Raises OSError.

    Unchanged between the pusher's read and now means the same bytes: any write or rename changes the
    mtime or ctime (ctime cannot be set by a user), and PostgreSQL never writes a segment it marked
    ``.ready``. The one blind spot, a write within the same clock tick after the last look, is closed by
    :func:`settled_identity`."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def settled_identity(path: Path, before: list[int]) -> list[int] | None:
    """The identity of ``path`` after it was pushed, when it equals ``before`` (taken before the push) and
    the last change is older than ``RACY_SECONDS`` (waiting for that if needed, so that a later write
    could not share the timestamp); None when the file changed, or its timestamps cannot be trusted (dated
    in the future: the clock stepped back; whole seconds: a coarse filesystem), then only the SHA-256
    proves it."""
    after = file_identity(path)
    age = (time.time_ns() - max(after[3], after[4])) / 1e9
    if age < 0:  # changed "in the future": the clock stepped back; its timestamps prove nothing
        return None
    if after[3] % 1_000_000_000 == 0 and after[4] % 1_000_000_000 == 0:
        return None  # a filesystem keeping whole seconds: a rewrite within the second looks the same
    if age < RACY_SECONDS:
        time.sleep(RACY_SECONDS - age)
        after = file_identity(path)
    return after if after == before else None


def read_error(spool: Path, name: str) -> str | None:
    """The message of segment ``name``'s ``.error``, or None."""
    try:
        record = json.loads((spool / f"{name}.error").read_text(encoding="utf-8"))
        message = record["message"]
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        return None
    return str(message)


def _stalled(spool: Path, now: float) -> bool:
    """No progress for ``STALL_SECONDS``, or a progress mark dated in the future (the clock stepped back:
    its age is unknown, and waiting for it could mean waiting ``WAIT_SECONDS`` on every segment)."""
    try:
        age = now - (spool / PROGRESS_FILE).stat().st_mtime
    except OSError:
        return True
    return age > STALL_SECONDS or age < -1.0


def read_pusher(spool: Path) -> dict[str, Any]:
    """The running (or last) pusher's ``pusher.json`` (pid, target, config), or ``{}``. Never raises."""
    try:
        record = json.loads((spool / PUSHER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _retire(spool: Path) -> bool:
    """Ask the running pusher to exit (it reads ``retire`` within ``CLEAN_SECONDS``). Local files; never
    raises. Whether it was asked."""
    pid = read_pusher(spool).get("pid")
    if not isinstance(pid, int) or not pusher_running(spool):
        return False
    with contextlib.suppress(OSError):
        _write_record(spool, RETIRE_FILE, {"pid": pid})
        return True
    return False


def retire_foreign(spool: Path, target: str, config: str) -> bool:
    """Retire the running pusher when it pushes for another target or under another configuration stamp
    than this ``wal push`` (archive_command or the catalog changed): its pushes go where this call's
    would not. Whether one was asked to exit. Local files; never raises."""
    running = read_pusher(spool)
    if not running or (running.get("target") == target and running.get("config") == config):
        return False
    return _retire(spool)


def retire_after_error(spool: Path, name: str) -> bool:
    """After ``wal push`` stored segment ``name`` itself: retire the running pusher when it had failed to
    push that segment (its ``.error``): a pusher that fails where a fresh process succeeds (credentials
    that expired in it, a client in a bad state) would otherwise never recover. Local files; never
    raises."""
    if not (spool / f"{name}.error").exists():
        return False
    return _retire(spool)


def answer(
    name: str, path: Path, target: str, config: str, *, wait: float = WAIT_SECONDS
) -> tuple[int, str] | None:
    """The archive-ahead's answer to ``wal push --target TARGET PATH`` for segment ``name`` under
    configuration stamp ``config`` (:func:`config_stamp`): ``(0, line)`` when a ``.ok`` proves the file is
    stored (:func:`proven`); None when the caller must push the segment itself: no spool, no ``.ready``
    for it, no pusher running, a pusher of another target or configuration, a pusher making no progress,
    ``wait`` seconds passed, or the pusher failed to push it (its ``.error``: the synchronous push then
    tells PostgreSQL the store's own answer; a pusher's error never fails a segment by itself, so a
    pusher broken for good cannot hold PostgreSQL's WAL back).

    Waits while a working pusher has not answered yet. Local files only; never raises."""
    if not _SEGMENT.match(name):
        return None
    spool = spool_for(path)
    if spool is None:
        return None
    deadline = time.monotonic() + wait
    ready = path.parent / "archive_status" / f"{name}.ready"
    while True:
        record = proven(spool, name, path, target, config)
        if record is not None:
            regions = "+".join(str(region) for region in record["regions"])
            return (
                0,
                f"{name}: stored by the archive-ahead as {record['key']} ({regions}, {record['status']})",
            )
        if (spool / f"{name}.ok").exists() or not ready.exists() or not pusher_running(spool):
            return None  # a .ok that proves nothing: the synchronous push checks the store itself
        if (spool / f"{name}.error").exists():
            return None
        running = read_pusher(spool)
        if running.get("target") != target or running.get("config") != config:
            return None  # it pushes elsewhere (or has not written pusher.json yet: do not wait for it)
        if _stalled(spool, time.time()) or time.monotonic() > deadline:
            return None
        time.sleep(POLL_SECONDS)


# ---------------------------------------------------------------------------------------------------------
# The pusher
# ---------------------------------------------------------------------------------------------------------


def _write_record(spool: Path, filename: str, record: Mapping[str, Any]) -> None:
    """Write ``spool/filename`` atomically and durably (temp file, fsync, rename). Raises OSError (the temp
    file removed)."""
    tmp = spool / f".{filename}.{os.getpid()}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(record, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, spool / filename)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()


def clean_leftovers(spool: Path) -> int:
    """Remove what an earlier (killed) pusher left: temp files, ``.inflight`` markers, ``.error``
    records and a ``retire`` request meant for it. Call only while holding the lock. Returns how many
    files were removed."""
    removed = 0
    for entry in os.listdir(spool):
        if entry.endswith((".tmp", ".inflight", ".error")) or entry == RETIRE_FILE:
            with contextlib.suppress(OSError):
                (spool / entry).unlink()
                removed += 1
    return removed


def ready_segments(pg_wal: Path) -> list[str]:
    """The segments PostgreSQL has marked ready to archive, in WAL order."""
    names = (_READY.match(entry) for entry in os.listdir(pg_wal / "archive_status"))
    return sorted(match.group(1) for match in names if match)


def clean_stale(spool: Path, ready: set[str], pending: set[str]) -> int:
    """Remove the ``.ok`` / ``.error`` of segments PostgreSQL no longer has ready (archived or recycled),
    except those being pushed. Returns how many were removed."""
    removed = 0
    for entry in os.listdir(spool):
        name, dot, kind = entry.partition(".")
        if dot and kind in ("ok", "error") and _SEGMENT.match(name) and name not in ready | pending:
            with contextlib.suppress(OSError):
                (spool / entry).unlink()
                removed += 1
    return removed


PushOne = Callable[[str, Path], Mapping[str, Any]]
"""``push_one(segment, path)``: push it; the ``.ok`` record (without target/segment); raise on failure."""


def run_pusher(
    pg_wal: Path,
    push_one: PushOne,
    *,
    target: str,
    config: str,
    workers: int = DEFAULT_WORKERS,
    max_ahead: int = DEFAULT_MAX_AHEAD,
    idle_seconds: float = IDLE_SECONDS,
    describe_error: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
    on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> int:
    """Push the ``.ready`` segments of ``pg_wal`` ahead of PostgreSQL until idle (see the module docstring).

    ``config`` is the :func:`config_stamp` the caller built ``push_one`` under (computed BEFORE it read
    the catalog): every ``.ok`` records it, and the pusher exits when the stamp it sees changes or
    ``wal push`` asks it to (``retire``); pushes then in flight record nothing. At most ``workers``
    pushes run at once (threads) and at most ``max_ahead`` segments wait pushed but not
    yet taken by PostgreSQL. ``describe_error(exc)`` is the ``.error`` message of a failed push (it must
    name no secret). ``on_event(kind, fields)`` (``started``, ``error``, ``heartbeat``, ``stopped``) is
    called from this thread, best effort (its exceptions are swallowed); an ``error``'s fields carry the
    segment, the error's class and the exception itself (``exception``: never to be stored as is).
    Returns the number of segments pushed; returns 0 at once when another pusher holds the lock. Local
    files, plus the callables' calls.
    """
    from concurrent.futures import ThreadPoolExecutor

    pg_wal = Path(os.path.abspath(pg_wal))
    spool = pg_wal / SPOOL_NAME
    spool.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(spool / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0
        try:
            _write_record(spool, PUSHER_FILE, {"pid": os.getpid(), "target": target, "config": config})
        except OSError:  # a full disk: no wal push waits for this pusher then (see answer)
            with contextlib.suppress(OSError):
                (spool / PUSHER_FILE).unlink()
        clean_leftovers(spool)
        _touch(spool / PROGRESS_FILE)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="push-ahead") as pool:
            run = _Pusher(pg_wal, spool, push_one, pool, (target, config), describe_error, on_event)
            run.event("started", {})
            try:
                run.loop(max(1, workers), max(1, max_ahead), idle_seconds)
            except FileNotFoundError:  # pg_wal (the cluster) was removed
                pass
            finally:
                run.event("stopped", {"pushed": run.pushed})
            return run.pushed
    finally:
        os.close(fd)


class _Pusher:
    """The state of one pusher (see :func:`run_pusher`)."""

    def __init__(  # noqa: PLR0917 - the arguments of run_pusher
        self,
        pg_wal: Path,
        spool: Path,
        push_one: PushOne,
        pool: Any,
        target: tuple[str, str],
        describe_error: Callable[[BaseException], str],
        on_event: Callable[[str, Mapping[str, Any]], None] | None,
    ) -> None:
        self.pg_wal, self.spool, self.push_one, self.pool = pg_wal, spool, push_one, pool
        (self.target, self.config), self.describe_error, self.on_event = target, describe_error, on_event
        self.pending: dict[str, Any] = {}
        self.retry: dict[str, tuple[float, int]] = {}  # segment -> (not before, failures)
        self.pushed = 0

    def event(self, kind: str, fields: Mapping[str, Any]) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(kind, fields)

    def loop(self, workers: int, max_ahead: int, idle_seconds: float) -> None:
        last_work = last_beat = time.monotonic()
        last_clean = float("-inf")  # clean at once: a killed predecessor's .ok of archived segments
        beat_pushed = 0
        while True:
            now = time.monotonic()
            self.collect()
            ready = ready_segments(self.pg_wal)
            if now - last_clean >= CLEAN_SECONDS:
                if self.retired():
                    return
                clean_stale(self.spool, set(ready), set(self.pending))
                last_clean = now
            waiting = [name for name in ready if not (self.spool / f"{name}.ok").exists()]
            ahead = len(ready) - len(waiting)
            for name in waiting:
                if len(self.pending) >= workers or ahead + len(self.pending) >= max_ahead:
                    break
                if name in self.pending or self.retry.get(name, (0.0, 0))[0] > now:
                    continue
                self.submit(name)
            if waiting or self.pending:
                last_work = now
            elif now - last_work > idle_seconds:
                return
            news = self.pushed != beat_pushed and now - last_beat >= 2.0
            if news or now - last_beat >= HEARTBEAT_SECONDS:
                last_beat, beat_pushed = now, self.pushed
                self.event("heartbeat", {"pushed": self.pushed})
            time.sleep(POLL_SECONDS if now - last_work < 1.0 else IDLE_POLL_SECONDS)

    def retired(self) -> bool:
        """The configuration changed under the pusher, or ``wal push`` asked it to exit."""
        if config_stamp() != self.config:
            return True
        try:
            record = json.loads((self.spool / RETIRE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        return isinstance(record, dict) and record.get("pid") == os.getpid()

    def submit(self, name: str) -> None:
        _touch(self.spool / PROGRESS_FILE)
        _touch(self.spool / f"{name}.inflight")
        self.pending[name] = self.pool.submit(_push_and_identify, self.push_one, name, self.pg_wal / name)

    def collect(self) -> None:
        for name in [name for name, future in self.pending.items() if future.done()]:
            future = self.pending.pop(name)
            try:
                record = dict(future.result())
            except Exception as exc:  # noqa: BLE001 - recorded in .error; archive_command reports it
                self.failed(name, exc)
            else:
                self.record_ok(name, record)
            finally:
                with contextlib.suppress(OSError):
                    (self.spool / f"{name}.inflight").unlink(missing_ok=True)
                _touch(self.spool / PROGRESS_FILE)

    def record_ok(self, name: str, record: Mapping[str, Any]) -> None:
        """Write ``<name>.ok`` for a segment every store confirmed. A spool that cannot be written (a full
        disk) leaves no ``.ok``: ``wal push`` pushes that segment itself (the store answers "already
        archived") and the pusher retries it after the back-off, instead of dying."""
        try:
            _write_record(
                self.spool,
                f"{name}.ok",
                {**record, "segment": name, "target": self.target, "config": self.config},
            )
        except OSError as exc:
            self.failed(name, exc)
            return
        with contextlib.suppress(OSError):
            (self.spool / f"{name}.error").unlink(missing_ok=True)
        self.retry.pop(name, None)
        self.pushed += 1

    def failed(self, name: str, exc: BaseException) -> None:
        try:
            message = self.describe_error(exc)
        except Exception:  # noqa: BLE001
            message = type(exc).__name__
        failures = self.retry.get(name, (0.0, 0))[1] + 1
        delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]
        self.retry[name] = (time.monotonic() + delay, failures)
        with contextlib.suppress(OSError):  # a full disk: wal push pushes the segment itself anyway
            _write_record(
                self.spool, f"{name}.error", {"segment": name, "message": message, "at": time.time()}
            )
        self.event(
            "error", {"segment": name, "error": type(exc).__name__, "failures": failures, "exception": exc}
        )


def _push_and_identify(push_one: PushOne, name: str, path: Path) -> dict[str, Any]:
    """``push_one`` plus the file's identity (``stat``, when it did not change meanwhile): the fast path
    then proves the file unchanged with one ``stat`` instead of hashing 16 MiB."""
    before = file_identity(path)
    record = dict(push_one(name, path))
    record["stat"] = settled_identity(path, before)
    return record
