"""Read-ahead for ``wal fetch``: PostgreSQL asks for one WAL segment per ``restore_command`` process.

Recovery calls ``restore_command`` once per 16 MiB segment, serially; each call used to pay the whole
start-up of envsteward (imports, settings, catalog: ~0.3-0.5 s, against ~0.04 s for the fetch itself).
Like pgBackRest's asynchronous ``archive-get`` and WAL-G's prefetch, the first ``wal fetch`` of a segment
forks one background prefetcher that fetches the next segments of the same timeline, each fully
authenticated by :func:`envsteward.pitr.archive.fetch_wal`, into a spool folder next to ``%p``
(``pg_wal/.envsteward-prefetch/``; PostgreSQL ignores unknown folders in ``pg_wal`` and
``pg_basebackup`` does not copy ``pg_wal``). The following ``wal fetch`` calls take their segment from
the spool with one rename, before anything heavy is imported (:func:`take`, called by
``envsteward.cli.entry``).

Safety: the spool holds only objects that authenticated and passed the segment checks, written to a temp
name and renamed; the prefetcher never reports anything. A segment it could not fetch (missing, damaged,
foreign, a store down) is simply not in the spool, so the foreground ``wal fetch`` fetches it itself and
reports exactly as before (exit 1 for missing, 126 with the segment's name for anything else).

At most ``window`` segments wait in the spool (``ENVSTEWARD_WAL_PREFETCH``, default 8; 0 turns read-ahead
off); the prefetcher stops at the end of the archive, on any error, or after ``IDLE_SECONDS`` without a
taker. Only one prefetcher runs per spool (an ``flock``).

This module imports only the standard library: it runs on the fast path of every ``wal fetch``.
External calls: local files only (the fetching itself is the ``fetch_one`` callable passed in).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

SPOOL_NAME = ".envsteward-prefetch"
DEFAULT_WINDOW = 8
IDLE_SECONDS = 120.0
INFLIGHT_WAIT_SECONDS = 120.0
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_LOCK = ".lock"


def window() -> int:
    """Segments to read ahead (``ENVSTEWARD_WAL_PREFETCH``; 0 = off). A bad value means the default."""
    raw = os.environ.get("ENVSTEWARD_WAL_PREFETCH", "")
    try:
        return max(0, min(64, int(raw))) if raw else DEFAULT_WINDOW
    except ValueError:
        return DEFAULT_WINDOW


def spool_for(destination: Path) -> Path:
    """The spool folder for a restore whose ``%p`` is ``destination`` (``pg_wal/RECOVERYXLOG``)."""
    return destination.parent / SPOOL_NAME


def next_segment(name: str, segment_size: int) -> str:
    """The segment after ``name`` on the same timeline. Raises ValueError for a non-segment name."""
    if not _SEGMENT.match(name):
        raise ValueError(f"{name!r} is not a WAL segment name")
    per_log = 0x100000000 // segment_size
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    segno = log * per_log + seg + 1
    return f"{timeline:08X}{segno // per_log:08X}{segno % per_log:08X}"


def _prefetcher_running(spool: Path) -> bool:
    try:
        fd = os.open(spool / _LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def take(name: str, destination: Path, *, wait: float = INFLIGHT_WAIT_SECONDS) -> bool:
    """Move prefetched segment ``name`` to ``destination``; False when the spool does not have it.

    When the running prefetcher is fetching ``name`` right now, waits (up to ``wait`` s) for it rather
    than fetching the same segment twice. Local files only; never raises for a missing spool."""
    if not _SEGMENT.match(name):
        return False
    spool = spool_for(destination)
    ready, inflight = spool / name, spool / f"{name}.inflight"
    until = time.monotonic() + wait
    while True:
        try:
            os.replace(ready, destination)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        else:
            return True
        if not inflight.exists() or not _prefetcher_running(spool) or time.monotonic() > until:
            return False
        time.sleep(0.01)


def _waiting(spool: Path) -> int:
    return sum(1 for entry in os.listdir(spool) if _SEGMENT.match(entry))


def run_prefetcher(
    spool: Path,
    first: str,
    fetch_one: Callable[[str, Path], bool],
    *,
    segment_size: int,
    ahead: int,
    idle_seconds: float = IDLE_SECONDS,
) -> int:
    """Fetch ``first`` and the segments after it into ``spool``, keeping at most ``ahead`` waiting.

    ``fetch_one(name, path)`` writes one authenticated segment to ``path`` and returns False when the
    archive does not hold it. Returns the number of segments fetched; returns at once when another
    prefetcher holds the spool. Stops at the first missing segment, on any exception (swallowed: the
    foreground fetch reports), or when no one took a segment for ``idle_seconds``. Local files."""
    spool.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(spool / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fetched = 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0
        name, last_progress = first, time.monotonic()
        while True:
            if (spool / name).exists():  # left by an earlier prefetcher
                name = next_segment(name, segment_size)
                continue
            if _waiting(spool) >= ahead:
                if time.monotonic() - last_progress > idle_seconds:
                    return fetched
                time.sleep(0.02)
                continue
            inflight = spool / f"{name}.inflight"
            tmp = spool / f".{name}.{os.getpid()}.tmp"
            inflight.touch()
            try:
                found = fetch_one(name, tmp)
                if found:
                    os.replace(tmp, spool / name)
            except Exception:  # noqa: BLE001 - the foreground fetch of this segment reports it
                found = False
            finally:
                inflight.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    tmp.unlink()
            if not found:
                return fetched
            fetched += 1
            last_progress = time.monotonic()
            name = next_segment(name, segment_size)
    finally:
        os.close(fd)


def start_background(run: Callable[[], object]) -> None:
    """Run ``run`` in a forked, detached child (own session, stdio on /dev/null) and return at once.

    The child never returns into the caller: it ends with ``os._exit``. PostgreSQL waits only for the
    ``restore_command`` process itself, not for this child."""
    if os.fork() != 0:
        return
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        run()
    finally:
        os._exit(0)
