"""Where audit records are stored: one JSON-lines file (embedded default) or an object store (S3).

Both implement :class:`envsteward.ports.AuditSink` plus ``last_line()`` (the tail without reading the whole
log). ``append_line(n, line)`` stores ``line`` only when record ``n - 1`` is the last one, so two writers
can never both store a record ``n``: the loser gets False, re-reads the tail and tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from envsteward._fsync import fsync_dir
from envsteward.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    TransientError,
    WriteRaceError,
)
from envsteward.ports import ObjectStore

_TAIL_BLOCK = 8192
_SEQ_DIGITS = 12
_FILE_MODE = 0o640


def _check_line(line: str) -> bytes:
    if "\n" in line or "\r" in line:
        raise PermanentError("an audit line must not contain a line break", system="audit")
    return line.encode("utf-8")


def _seq_of(line: bytes | str, where: str) -> int:
    """The ``seq`` of a stored record line. Raises IntegrityError when it cannot be read."""
    try:
        value = json.loads(line)
        seq = value["seq"]
    except (ValueError, TypeError, KeyError):
        seq = None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise IntegrityError(
            f"the last audit record in {where} cannot be read (torn write or edited); "
            "run `envsteward audit verify` and repair the log before appending",
            system="audit",
        )
    return seq


class JsonLinesFileSink:
    """One JSON record per line in one file; writers serialise on an ``flock`` of ``<file>.lock``.

    Appends are flushed and fsynced before ``append_line`` returns. Readers capture the file size under a
    shared lock and read only that many bytes, so they never see a half-written line of a live writer.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"JsonLinesFileSink({str(self.path)!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _os_error(exc, "lock", self.lock_path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append_line(self, expected_sequence: int, line: str) -> bool:
        """Append ``line`` as record ``expected_sequence`` when the last stored record is the one before.

        Returns False (writes nothing) when another writer stored that record first. Raises IntegrityError
        when the file ends with a record that cannot be read, TransientError/PermanentError on I/O errors.
        """
        data = _check_line(line)
        with self._locked(exclusive=True):
            try:
                created = not self.path.exists()
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, _FILE_MODE)
            except OSError as exc:
                raise _os_error(exc, "open", self.path) from None
            try:
                tail, terminated = _read_tail(fd)
                last_seq = 0 if tail is None else _seq_of(tail, str(self.path))
                if last_seq != expected_sequence - 1:
                    return False
                # A crash between the record and its newline leaves a complete record without "\n":
                # it verified above, so finish its line rather than glue the next record onto it.
                prefix = b"" if tail is None or terminated else b"\n"
                _write_all(fd, prefix + data + b"\n")
                os.fsync(fd)
            except OSError as exc:
                raise _os_error(exc, "append", self.path) from None
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
        return True

    def last_line(self) -> str | None:
        """The last stored line (None for an empty or missing log), reading only the end of the file."""
        with self._locked(exclusive=False):
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise _os_error(exc, "read", self.path) from None
            try:
                tail, _terminated = _read_tail(fd)
            except OSError as exc:
                raise _os_error(exc, "read", self.path) from None
            finally:
                os.close(fd)
        return None if tail is None else tail.decode("utf-8", errors="replace")

    def read_lines(self) -> Iterator[str]:
        """Every stored line, in order, without its newline (a final unterminated line is yielded too)."""
        with self._locked(exclusive=False):
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                return
            except OSError as exc:
                raise _os_error(exc, "read", self.path) from None
            size = os.fstat(handle.fileno()).st_size
        with handle:
            remaining = size
            while remaining > 0:
                raw = handle.readline(remaining)
                if not raw:
                    break
                remaining -= len(raw)
                # Split on "\n" only: str.splitlines would also split on U+2028 and friends inside strings.
                yield raw.removesuffix(b"\n").decode("utf-8", errors="replace")


def _read_tail(fd: int) -> tuple[bytes | None, bool]:
    """The last line of the open file (without its newline) and whether it ended with a newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, True
    buf = b""
    pos = size
    while pos > 0:
        start = max(0, pos - _TAIL_BLOCK)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        # A newline before the final byte marks the start of the last line.
        if buf.rfind(b"\n", 0, len(buf) - 1) != -1:
            break
    terminated = buf.endswith(b"\n")
    body = buf[:-1] if terminated else buf
    return body[body.rfind(b"\n") + 1 :], terminated


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _os_error(exc: OSError, operation: str, path: Path) -> PermanentError | TransientError:
    """The one place that maps filesystem errors for the JSONL sink."""
    import errno

    message = f"{operation} {path}: {exc.strerror or exc}"
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ENOSPC, errno.EIO):
        return TransientError(message, system="audit")
    return PermanentError(message, system="audit")


class ObjectStoreSink:
    """One object per record, named ``<prefix><seq, 12 digits>.json``, created with ``put_if_absent``.

    Works on S3 (conditional write with If-None-Match) and on the filesystem object store. ``read_lines``
    lists the prefix in key order and yields every object under it (a stray object fails verification).
    """

    def __init__(self, store: ObjectStore, prefix: str = "audit/") -> None:
        self.store = store
        self.prefix = prefix
        self._key_re = re.compile(re.escape(prefix) + r"(\d{%d})\.json$" % _SEQ_DIGITS)  # noqa: UP031
        self._last_seq_hint: int | None = None

    def __repr__(self) -> str:
        return f"ObjectStoreSink({self.store!r}, prefix={self.prefix!r})"

    @property
    def location(self) -> str:
        return f"{self.store!r} {self.prefix}"

    def key(self, seq: int) -> str:
        return f"{self.prefix}{seq:0{_SEQ_DIGITS}d}.json"

    def append_line(self, expected_sequence: int, line: str) -> bool:
        """Create record ``expected_sequence``'s object when it is absent and record ``n - 1`` exists.

        Returns False when it exists already or is being written by another writer (S3 409), or when the
        previous record is missing. Raises the object store's other errors.
        """
        data = _check_line(line)
        if expected_sequence > 1 and self.store.head(self.key(expected_sequence - 1)) is None:
            return False
        try:
            created = self.store.put_if_absent(self.key(expected_sequence), data)
        except (ConflictError, WriteRaceError):
            # S3's 409 ConditionalRequestConflict (WriteRaceError): another writer's conditional put of the
            # same key is in flight. Treat it as a lost race; the caller re-reads the tail and tries again.
            return False
        if not created:
            return False
        self._last_seq_hint = expected_sequence
        return True

    def last_line(self) -> str | None:
        """The newest record, found by probing forward from the last known one (listing only once)."""
        last = self._find_last_seq(self._last_seq_hint)
        if last is None:
            return None
        try:
            data = self.store.get_bytes(self.key(last))
        except NotFoundError:
            # The remembered tail vanished (someone deleted objects): find the tail from a full listing.
            last = self._find_last_seq(None)
            if last is None:
                return None
            data = self.store.get_bytes(self.key(last))
        self._last_seq_hint = last
        return data.decode("utf-8", errors="replace")

    def _find_last_seq(self, hint: int | None) -> int | None:
        if hint is None:
            seqs = [
                int(match.group(1))
                for info in self.store.list(self.prefix)
                if (match := self._key_re.match(info.key))
            ]
            if not seqs:
                return None
            hint = max(seqs)
        while self.store.head(self.key(hint + 1)) is not None:
            hint += 1
        return hint

    def read_lines(self) -> Iterator[str]:
        """Every record object under the prefix, in key order."""
        for info in self.store.list(self.prefix):
            yield self.store.get_bytes(info.key).decode("utf-8", errors="replace").rstrip("\n")
