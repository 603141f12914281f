"""The backup-source interface: stream a consistent dump of one system out, restore such a dump into a target.

A :class:`BackupSource` produces a plain byte stream; the backup pipeline (:mod:`envsteward.backup.pipeline`)
compresses and encrypts it. A :class:`RestoreTarget` consumes the same bytes after the pipeline decrypted
and verified them. Neither side knows about compression, encryption or object storage.

Typical use (the pipeline's ``write_backup`` reads the stream; ``tables`` is read after the stream ended)::

    with source.dump() as stream:                      # the dump starts here: consistent_at is known
        manifest = write_backup(
            store, keys, backup_id, stream,
            environment=env, source=stream.source_info(),
            started_at=stream.started_at, consistent_at=stream.consistent_at,
            tables=lambda: stream.tables or (), tools=stream.tools,
        )
    # leaving the block always ends the dump (kills a subprocess, closes connections, removes temp files)

A stream that cannot finish (the dump tool failed, the server went away) RAISES from its iterator, after
having yielded some chunks: the consumer must treat the data as unusable (the pipeline aborts the upload).
Only when iteration ended normally is :attr:`DumpStream.complete` true and :attr:`DumpStream.facts` final.

Restoring is available pull-style (``target.restore(chunks)``) and push-style (``with target.begin() as w:
w.write(piece)``) so it plugs into the pipeline's ``restore_backup(..., sink=writer.write)`` without a thread.

Secret values (Vault KV data, SSM SecureStrings) travel only inside the byte stream; facts, reports,
descriptions, reprs and exception messages never hold them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from envsteward.backup.manifest import BackupSourceInfo, TableChecksum
from envsteward.errors import PermanentError

CHUNK_SIZE = 1 << 20
"""Size of the pieces a dump yields (1 MiB); the last piece may be shorter."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class DumpStream(ABC):
    """One running dump: a context manager and a single-use iterable of ``bytes`` chunks.

    * :attr:`started_at` / :attr:`consistent_at` (UTC) are set when the context is entered (the dump has
      started; ``consistent_at`` is the point in time the data represents).
    * :attr:`facts` (JSON-able, never secret), :attr:`tools` and :attr:`tables` are complete once the
      iterator is exhausted (:attr:`complete` is then True). ``facts`` and ``tools`` are updated IN PLACE,
      so a reference taken before reading (``write_backup(..., tools=stream.tools)``) sees the final
      content; ``tables`` is replaced, so pass ``tables=lambda: stream.tables or ()``.
    * Leaving the context always releases everything (subprocess, connection, temporary files), also when
      the stream was not read to its end.

    Subclasses implement :meth:`_open`, :meth:`_chunks` and :meth:`_close`.
    """

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self._started_at: datetime | None = None
        self._consistent_at: datetime | None = None
        self.facts: dict[str, Any] = {}
        self.tools: dict[str, str] = {}
        self.tables: tuple[TableChecksum, ...] | None = None
        self.complete = False
        self._entered = False
        self._iterated = False
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, name={self.name!r}, complete={self.complete})"

    # -- public -----------------------------------------------------------------------------------------

    @property
    def started_at(self) -> datetime:
        """When the dump was started (UTC). Raises PermanentError before the context was entered."""
        if self._started_at is None:
            raise self._not_started()
        return self._started_at

    def _not_started(self) -> PermanentError:
        return PermanentError(
            "the dump has not started: enter the context (with source.dump() as stream) first",
            system=self.kind,
            operation=f"dump {self.name}",
        )

    @property
    def consistent_at(self) -> datetime:
        """The point in time the dump represents (UTC). Raises PermanentError before the dump started."""
        if self._consistent_at is None:
            raise self._not_started()
        return self._consistent_at

    def source_info(self) -> BackupSourceInfo:
        """``kind`` and ``name`` for the backup manifest."""
        return BackupSourceInfo(kind=self.kind, name=self.name)

    def __enter__(self) -> DumpStream:
        if self._entered:
            raise PermanentError("a dump stream can be entered only once", system=self.kind)
        self._entered = True
        self._started_at = utcnow()
        try:
            self._open()
        except BaseException:
            self._safe_close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._safe_close()

    def __iter__(self) -> Iterator[bytes]:
        if not self._entered or self._closed:
            raise PermanentError(
                "read the dump inside its context (with source.dump() as stream: ...)",
                system=self.kind,
                operation=f"dump {self.name}",
            )
        if self._iterated:
            raise PermanentError("a dump stream can be read only once", system=self.kind)
        self._iterated = True
        return self._run()

    # -- for subclasses ---------------------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Start the dump; set ``self._consistent_at``. Raise envsteward errors."""

    @abstractmethod
    def _chunks(self) -> Iterator[bytes]:
        """Yield the dump's bytes; fill facts/tools/tables; raise when the dump failed."""

    @abstractmethod
    def _close(self) -> None:
        """Release everything (idempotent); called on every exit path."""

    # -- internals --------------------------------------------------------------------------------------

    def _run(self) -> Iterator[bytes]:
        for chunk in self._chunks():
            if chunk:
                yield chunk
        self.complete = True

    def _safe_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close()


def rechunk(pieces: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Gather small pieces (JSON lines) into chunks of about ``size`` bytes (at most ``size`` + one piece)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


@runtime_checkable
class BackupSource(Protocol):
    """A system that can be dumped: PostgreSQL, SQLite, a Vault KV tree, SSM parameters, a config snapshot."""

    kind: str
    name: str

    def describe(self) -> dict[str, str]:
        """Non-secret identification (host, database, path, prefix...), for logs, manifests and reports."""
        ...

    def dump(self) -> DumpStream:
        """A not-yet-started dump; enter it as a context manager and iterate it for the bytes."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did. Never holds a secret value (counts, names and checksums only)."""

    kind: str
    target: str
    """Non-secret description of where the data went (``host:port/db``, a file, ``mount/prefix``...)."""
    bytes_read: int
    items: int
    """Entries restored: secrets, parameters, tables, 1 for a file or a document."""
    started_at: datetime
    finished_at: datetime
    tables: tuple[TableChecksum, ...] | None = None
    """Row counts and checksums of the restored data (PostgreSQL, SQLite), to compare with the dump's."""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class RestoreWriter(ABC):
    """One restore in progress, push-style: :meth:`write` pieces, then :meth:`finish`.

    As a context manager it aborts the restore when the block raises (and re-raises), and calls
    :meth:`finish` when the block ended normally and :meth:`finish` was not called yet; the report is then
    in :attr:`report`.
    """

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target
        self.started_at = utcnow()
        self.bytes_read = 0
        self.report: RestoreReport | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, bytes_read={self.bytes_read})"

    def write(self, data: bytes) -> None:
        """Hand the next piece of the dump to the target. Raises the target's errors."""
        if self._done:
            raise PermanentError("this restore has already finished", system=self.kind)
        if data:
            self.bytes_read += len(data)
            self._write(bytes(data))

    def finish(self) -> RestoreReport:
        """End of the dump: complete the restore and return its report. Raises when the restore failed."""
        if self.report is not None:
            return self.report
        if self._done:
            raise PermanentError("this restore was aborted", system=self.kind)
        self._done = True
        try:
            self.report = self._finish()
        except BaseException:
            with contextlib.suppress(Exception):
                self._abort()
            raise
        return self.report

    def abort(self) -> None:
        """Give up: stop the tool, remove temporary files. The target may hold partial data: discard it."""
        if self._done:
            return
        self._done = True
        self._abort()

    def __enter__(self) -> RestoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.abort()
        elif not self._done:
            self.finish()

    def _make_report(
        self,
        items: int,
        *,
        tables: tuple[TableChecksum, ...] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> RestoreReport:
        return RestoreReport(
            kind=self.kind,
            target=self.target,
            bytes_read=self.bytes_read,
            items=items,
            started_at=self.started_at,
            finished_at=utcnow(),
            tables=tables,
            facts=dict(facts or {}),
        )

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _finish(self) -> RestoreReport: ...

    @abstractmethod
    def _abort(self) -> None: ...


class RestoreTarget(ABC):
    """Where a dump of one kind can be restored. Restore into a scratch target and discard it on failure."""

    kind: str

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """Non-secret identification of the target."""

    @abstractmethod
    def begin(self) -> RestoreWriter:
        """Start a restore (push-style). Raises the target's errors (e.g. the tool cannot start)."""

    def restore(self, chunks: Iterable[bytes]) -> RestoreReport:
        """Stream ``chunks`` into the target and return the report. Raises on any failure (after aborting);
        an exception raised by ``chunks`` itself aborts the restore and propagates unchanged."""
        with self.begin() as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish()
