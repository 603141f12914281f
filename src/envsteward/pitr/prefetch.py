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
off), fetched by ``WORKERS`` threads. Only one prefetcher runs per spool (an ``flock``). A point-in-time
restore starts it before PostgreSQL (``envsteward wal prefetch``,
:func:`envsteward.pitr.restore.start_read_ahead`) and writes a ``restore_command`` that takes a spooled
segment with ``mv`` in ``sh``, without starting Python at all; otherwise the first ``wal fetch`` of a
segment forks it.

Negative answers. PostgreSQL probes for files that usually do not exist: the next timeline's ``.history``
at the start and at the end of recovery, the parent timeline's at the end, and (twice) the segment after
the last one. Each used to cost a full CLI start to answer "absent". The prefetcher checks those names
every ``REFRESH_SECONDS`` (``absent``: absent only when every store asked answered "no such object", also
for a streamed partial; an error means unknown, never absent) and writes the names found absent, with the
wall-clock time the check STARTED, to ``absent`` in the spool. ``wal fetch`` answers exit 1 from it
(:func:`known_absent`) only while that listing is at most ``FRESH_SECONDS`` old and a prefetcher holds the
spool's lock; otherwise it asks the archive. The only segment ever listed is the first one the prefetcher
could not find, where ``wal fetch`` itself would answer "absent": a gap or a damaged segment in the middle
of the archive is answered exactly as before.

The race, stated exactly: a file that reaches the archive after a check started can be answered "absent"
for up to ``FRESH_SECONDS`` (2 s) after that start. That is the answer the archive gave 2 s earlier, i.e.
the restore behaves as if PostgreSQL had asked 2 s sooner, never as if a file existed that does not or a
file were missing from the middle: (a) the segment after the last one: recovery ends at the end of the
archive as it was at most 2 s before (what ``--to-latest`` means anyway; the reported last replayed commit
is the truth, so the drill's RPO stays honest, and a ``--to-time`` beyond it fails as before); (b) a
``.history`` file of a timeline created in those 2 s (another cluster promoted on the same archive at that
very moment): PostgreSQL picks its timeline as of 2 s earlier; any probe after that window finds the file.
A killed prefetcher's listing is never used (no lock holder) and every listing expires after 2 s.

At the end of the archive the prefetcher stays: it puts the last segment back once (PostgreSQL reads it
again when recovery ends), keeps looking for the next segment (an archive that still grows continues the
read-ahead), and exits ``LINGER_SECONDS`` after PostgreSQL removed ``recovery.signal`` (emptying the
spool), or after ``IDLE_SECONDS`` without a taker.

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
from typing import Any

SPOOL_NAME = ".envsteward-prefetch"
DEFAULT_WINDOW = 8
IDLE_SECONDS = 120.0
INFLIGHT_WAIT_SECONDS = 120.0
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_LOCK = ".lock"
ABSENT_FILE = "absent"
"""The negative listing: first line the ``time.time()`` its check started, then one name per line."""
FRESH_SECONDS = 2.0
"""How old a negative listing may be and still answer "absent" (see the module docstring)."""
REFRESH_SECONDS = 1.0
CLOCK_SLACK_SECONDS = 0.5
MAX_TIMELINES_AHEAD = 8
POLL_SECONDS = 0.02
WORKERS = 2
LINGER_SECONDS = 5.0
END_WAIT_SECONDS = 0.5


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
    return lock_held(spool / _LOCK)


def lock_held(lock: Path) -> bool:
    """True while a process holds an ``flock`` on ``lock`` (a spool's lock file: the prefetcher's, or the
    archive-ahead pusher's). Local files only; never raises."""
    try:
        fd = os.open(lock, os.O_RDONLY)
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
    return _take(name, destination, wait)[0]


def _take(name: str, destination: Path, wait: float) -> tuple[bool, bool]:
    """``(taken, it was in flight)``: see :func:`take`."""
    if not _SEGMENT.match(name):
        return False, False
    spool = spool_for(destination)
    ready, inflight = spool / name, spool / f"{name}.inflight"
    until = time.monotonic() + wait
    waited = False
    while True:
        try:
            os.replace(ready, destination)
        except FileNotFoundError:
            pass
        except OSError:
            return False, waited
        else:
            return True, waited
        if not inflight.exists() or not _prefetcher_running(spool) or time.monotonic() > until:
            return False, waited
        waited = True
        time.sleep(0.01)


def answer(name: str, destination: Path, *, wait: float = INFLIGHT_WAIT_SECONDS) -> int | None:
    """The read-ahead's answer to ``wal fetch NAME DESTINATION``: 0 when the segment was taken from the
    spool, 1 when the archive does not hold it (:func:`known_absent`), None when only the archive can
    tell (the caller fetches it itself).

    A segment the prefetcher was fetching right now and did not find is the end of the archive: the
    prefetcher lists it at once, so this waits up to ``END_WAIT_SECONDS`` for that listing rather than
    starting the whole CLI to learn the same. Local files only; never raises."""
    taken, was_in_flight = _take(name, destination, wait)
    if taken:
        return 0
    if known_absent(name, destination):
        return 1
    if was_in_flight:
        spool = spool_for(destination)
        until = time.monotonic() + END_WAIT_SECONDS
        while time.monotonic() < until and _prefetcher_running(spool):
            time.sleep(0.01)
            if known_absent(name, destination):
                return 1
    return None


def _waiting(spool: Path) -> int:
    return sum(1 for entry in os.listdir(spool) if _SEGMENT.match(entry))


# ---------------------------------------------------------------------------------------------------------
# Negative answers: "the archive does not hold NAME", checked at most FRESH_SECONDS ago
# ---------------------------------------------------------------------------------------------------------


def write_absent(spool: Path, names: list[str], checked_at: float) -> None:
    """Record that no store held any of ``names`` when a check started at ``checked_at`` (``time.time()``).

    Written to a temp file and renamed: a reader sees the old listing or the new one, never half."""
    tmp = spool / f".{ABSENT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(f"{checked_at!r}\n" + "".join(f"{name}\n" for name in names), encoding="ascii")
    os.replace(tmp, spool / ABSENT_FILE)


def known_absent(name: str, destination: Path, *, now: float | None = None) -> bool:
    """True when the running prefetcher checked, at most ``FRESH_SECONDS`` ago, that the archive does not
    hold ``name`` (so ``wal fetch`` may answer "absent" without starting the CLI).

    False whenever in doubt: no listing, an old one (a crashed prefetcher's), a clock that went back, or no
    prefetcher holding the spool. Local files only; never raises."""
    spool = spool_for(destination)
    try:
        lines = (spool / ABSENT_FILE).read_text(encoding="ascii").splitlines()
        checked_at = float(lines[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return False
    age = (time.time() if now is None else now) - checked_at
    if not -CLOCK_SLACK_SECONDS <= age <= FRESH_SECONDS or name not in lines[1:]:
        return False
    return _prefetcher_running(spool)


def _timeline(name: str) -> int:
    return int(name[:8], 16)


def history_name(timeline: int) -> str:
    """The name of timeline ``timeline``'s history file (``00000002.history``)."""
    return f"{timeline:08X}.history"


def _check_absent(
    spool: Path, timeline: int, end: str | None, absent: Callable[[list[str]], list[str]]
) -> None:
    """One refresh of the negative listing: the history files PostgreSQL probes for ``timeline`` (its own,
    and the next ones up to the first that does not exist) and ``end``, the segment after the last one
    archived (None while the archive still has segments ahead)."""
    checked_at = time.time()
    missing = absent([history_name(timeline)])
    for later in range(timeline + 1, timeline + 1 + MAX_TIMELINES_AHEAD):
        found = absent([history_name(later)])
        missing += found
        if found:
            break
    if end is not None:
        missing += absent([end])
    write_absent(spool, missing, checked_at)


class _Recovery:
    """Whether PostgreSQL's recovery is over: ``recovery.signal`` existed and has been gone for
    ``LINGER_SECONDS`` (PostgreSQL removes it when it promotes, and probes for the parent timeline's history
    file just after). A signal file never seen (not written yet, or no path given) means not over."""

    def __init__(self, signal_file: Path | None) -> None:
        self.signal_file, self.seen, self.gone_at = signal_file, False, float("inf")

    def over(self) -> bool:
        if self.signal_file is None:
            return False
        if self.signal_file.exists():
            self.seen, self.gone_at = True, float("inf")
            return False
        if self.seen and self.gone_at == float("inf"):
            self.gone_at = time.monotonic()
        return time.monotonic() - self.gone_at > LINGER_SECONDS


def _clean_spool(spool: Path) -> None:
    for entry in os.listdir(spool):
        if entry != _LOCK:
            with contextlib.suppress(OSError):
                (spool / entry).unlink()


def run_prefetcher(
    spool: Path,
    first: str,
    fetch_one: Callable[[str, Path], bool],
    *,
    segment_size: int,
    ahead: int,
    idle_seconds: float = IDLE_SECONDS,
    absent: Callable[[list[str]], list[str]] | None = None,
    recovery_signal: Path | None = None,
    workers: int = WORKERS,
) -> int:
    """Fetch ``first`` and the segments after it into ``spool``, keeping at most ``ahead`` waiting and
    ``workers`` fetches running at once (threads: decompression, decryption and fsync release the GIL).

    ``fetch_one(name, path)`` writes one authenticated segment to ``path`` and returns False when the
    archive does not hold it. Returns the number of segments fetched; returns at once when another
    prefetcher holds the spool. An exception of ``fetch_one`` is swallowed (the foreground fetch of that
    segment reports it) and stops the prefetcher. It also stops quietly when the spool is removed.

    Without ``absent`` it stops at the first missing segment. With ``absent(names)`` (the names no store
    holds, as ``wal fetch`` would answer) it also keeps a negative listing in the spool, refreshed every
    ``REFRESH_SECONDS`` (:func:`known_absent`), and at the end of the archive it stays: it puts the last
    segment back once (PostgreSQL reads it again when recovery ends), keeps checking for the next segment
    (an archive still growing continues the read-ahead) and exits ``LINGER_SECONDS`` after PostgreSQL
    removed ``recovery_signal`` (emptying the spool) or when no one took a segment for ``idle_seconds``.
    Local files, plus whatever the callables call."""
    from concurrent.futures import ThreadPoolExecutor

    spool.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(spool / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prefetch") as pool:
            run = _Run(spool, first, fetch_one, pool, segment_size, ahead, absent, recovery_signal)
            with contextlib.suppress(FileNotFoundError):  # the spool (the restored cluster) was removed
                run.loop(idle_seconds, max(1, workers))
            return run.fetched
    finally:
        os.close(fd)


class _Run:
    """The state of one prefetcher (see :func:`run_prefetcher`)."""

    def __init__(  # noqa: PLR0917 - the arguments of run_prefetcher
        self,
        spool: Path,
        first: str,
        fetch_one: Callable[[str, Path], bool],
        pool: Any,
        segment_size: int,
        ahead: int,
        absent: Callable[[list[str]], list[str]] | None,
        recovery_signal: Path | None,
    ) -> None:
        self.spool, self.fetch_one, self.pool = spool, fetch_one, pool
        self.segment_size, self.ahead, self.absent = segment_size, ahead, absent
        self.recovery = _Recovery(recovery_signal)
        self.next_name = first
        self.submitted: list[str] = []  # in order, to know the segment before the end
        self.pending: dict[str, Any] = {}
        self.end: str | None = None  # the first segment found missing
        self.put_back = False
        self.failed = False
        self.fetched = 0

    def loop(self, idle_seconds: float, workers: int) -> None:
        last_progress = time.monotonic()
        last_check = last_try = float("-inf")
        waiting = 0
        while True:
            now = time.monotonic()
            if self.recovery.over():
                _clean_spool(self.spool)
                return
            count = _waiting(self.spool)
            if count < waiting:
                last_progress = now  # someone took a segment
            waiting = count
            if self.collect():
                last_progress = now
                if self.end is not None and self.absent is not None:
                    last_check = float("-inf")  # list the end as absent right away
            if self.failed or (self.end is not None and self.absent is None):
                if not self.pending:
                    return
            elif now - last_progress > idle_seconds:
                return
            if self.absent is not None and now - last_check >= REFRESH_SECONDS:
                try:
                    _check_absent(self.spool, _timeline(self.next_name), self.end, self.absent)
                except Exception:  # noqa: BLE001 - no listing: the foreground asks the archive
                    (self.spool / ABSENT_FILE).unlink(missing_ok=True)
                last_check = now
            end = self.end
            if not self.failed and end is None:
                self.submit_more(count, workers)
            elif not self.failed and end is not None and self.absent is not None and not self.pending:
                self.put_back_last()
                if now - last_try >= REFRESH_SECONDS:
                    last_try = now
                    self.submit(end)
            time.sleep(POLL_SECONDS)

    def collect(self) -> bool:
        """Handle finished fetches; True when a segment was stored."""
        stored = False
        for name in [name for name, future in self.pending.items() if future.done()]:
            found = self.pending.pop(name).result()
            if found is None:
                self.failed = True
            elif found:
                self.fetched += 1
                stored = True
                if name == self.end:  # the archive grew: read ahead again from there
                    self.end, self.put_back = None, False
                    self.next_name = next_segment(name, self.segment_size)
            elif self.end is None or name < self.end:
                self.end = name
        return stored

    def submit(self, name: str) -> None:
        self.pending[name] = self.pool.submit(_fetch_into, self.spool, name, self.fetch_one)
        if name not in self.submitted:
            self.submitted.append(name)

    def submit_more(self, waiting: int, workers: int) -> None:
        while len(self.pending) < workers and waiting + len(self.pending) < self.ahead:
            name = self.next_name
            self.next_name = next_segment(name, self.segment_size)
            if (self.spool / name).exists() or name in self.pending:  # left by an earlier prefetcher
                continue
            self.submit(name)

    def put_back_last(self) -> None:
        """Once PostgreSQL took the segment before the end, fetch it again into the spool: at the end of
        recovery PostgreSQL reads the last segment once more."""
        if self.put_back or self.end not in self.submitted:
            return
        index = self.submitted.index(self.end)
        if index == 0:
            return
        last = self.submitted[index - 1]
        if not (self.spool / last).exists() and not (self.spool / f"{last}.inflight").exists():
            self.put_back = True
            self.submit(last)


def _fetch_into(spool: Path, name: str, fetch_one: Callable[[str, Path], bool]) -> bool | None:
    """Fetch ``name`` into the spool (temp file, renamed); True when stored, False when the archive does
    not hold it, None when ``fetch_one`` raised (the foreground fetch of the segment will report it)."""
    inflight = spool / f"{name}.inflight"
    tmp = spool / f".{name}.{os.getpid()}.tmp"
    inflight.touch()
    try:
        found = fetch_one(name, tmp)
        if found:
            os.replace(tmp, spool / name)
        return found
    except Exception:  # noqa: BLE001 - the foreground fetch of this segment reports it
        return None
    finally:
        inflight.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            tmp.unlink()


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
