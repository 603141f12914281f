"""Table checksums read off a pg_dump custom-format archive as it streams by: no extra scan of the database.

``pg_dump --format=custom --compress=0`` writes, to a pipe: a header (``PGDMP``, archive version, integer
size, compression), the table of contents (one entry per object: dump id, description such as ``TABLE
DATA``, schema, name, the ``COPY ... FROM stdin;`` statement, ...), then one data block per entry that has
data (``1`` + dump id, then chunks ``<int length><bytes>`` ending with a zero length; large objects: ``3``
+ dump id, then ``<oid>`` + chunks per object, ending with oid 0). Integers are a sign byte plus
``intSize`` little-endian bytes; strings an integer length (-1: NULL) plus the bytes. With compression off,
the chunks of a ``TABLE DATA`` block ARE the text ``COPY ... TO STDOUT`` produced: one line per row, then the
end-of-data line ``\\.`` (PostgreSQL 15's pg_dump writes one chunk per row, but rows are re-assembled from
the chunk payloads, so any chunking works).

:class:`ArchiveScanner` is fed the archive piece by piece (what the backup pipeline reads anyway) and
hashes every row line with :class:`envsteward.adapters.pg_checksums.RowSum` (algorithm ``pg-copy-xxh3-
sum128/v3``), in constant memory: a partial chunk and one partial line are carried between pieces. What
it cannot read — a compressed archive, an archive version other than 1.12-1.15 (pg_dump 11-16), table data
written as INSERT statements — raises :class:`UnsupportedArchive` (the caller falls back to the server-side
checksums); a malformed or truncated archive raises IntegrityError.

Pure (no external system).
"""

from __future__ import annotations

import codecs
import re
import struct
from dataclasses import dataclass, field

from envsteward.adapters.pg_checksums import RowSum, TableSum
from envsteward.errors import IntegrityError

MAGIC = b"PGDMP"
SUPPORTED_VERSIONS = ((1, 12), (1, 13), (1, 14), (1, 15))
"""Archive versions written by pg_dump 11 to 16 (whose TOC entries this module knows)."""

_ARCH_CUSTOM = 1
_BLK_DATA = 1
_BLK_BLOBS = 3
_END_OF_DATA = b"\\."
_HELD_LINES = 4
_ENCODING = re.compile(rb"SET client_encoding = '([^']*)'")
_SYSTEM = "postgres"
_OPERATION = "table checksums from the pg_dump archive"


class UnsupportedArchive(Exception):  # noqa: N818 - a condition, not a failure: the caller falls back
    """The archive is well-formed but its table data cannot be read here (compression, version, INSERTs)."""


class _NeedMore(Exception):  # noqa: N818 - internal signal
    """The buffer ends before what is being read; ``pos``: how far it was consumed."""

    def __init__(self, pos: int = 0) -> None:
        super().__init__(pos)
        self.pos = pos


@dataclass
class _Entry:
    namespace: bytes
    tag: bytes
    rows: RowSum = field(default_factory=RowSum)
    seen: bool = False


class _Reader:
    """Reads header / TOC values from ``data`` at ``pos``; raises _NeedMore at the end of the buffer."""

    def __init__(self, data: bytes, int_size: int = 4) -> None:
        self.data = data
        self.pos = 0
        self.int_size = int_size

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise _NeedMore
        piece = self.data[self.pos : end]
        self.pos = end
        return piece

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> bytes | None:
        length = self.int()
        if length < 0:
            return None
        return self.take(length)


def _integrity(message: str) -> IntegrityError:
    return IntegrityError(message, system=_SYSTEM, operation=_OPERATION)


class ArchiveScanner:
    """Feed it the archive (:meth:`feed`), then :meth:`finish` for one :class:`TableSum` per ``TABLE DATA``.

    Raises UnsupportedArchive (from :meth:`feed`) for an archive it cannot read, IntegrityError for a
    malformed or truncated one. Not thread-safe.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._state = "head"
        self._entries: dict[int, _Entry] = {}
        self._tables: dict[int, _Entry] = {}
        self._encoding = "UTF8"
        self._int_size = 4
        self._chunk = struct.Struct("<BI")
        self._current: _Entry | None = None
        self._carry = b""
        self._held: list[bytes] = []
        self.version: tuple[int, int] | None = None

    @property
    def client_encoding(self) -> str:
        """The dump's client encoding (its ``ENCODING`` entry; ``UTF8`` until the TOC is read)."""
        return self._encoding

    # -- input -------------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Scan the next piece of the archive. Raises UnsupportedArchive, IntegrityError."""
        buf = self._buf + data if self._buf else data
        pos = 0
        try:
            while pos < len(buf):
                if self._state == "head":
                    pos = self._read_head(buf)
                elif self._state == "block":
                    pos = self._read_block_start(buf, pos)
                elif self._state == "chunks":
                    pos = self._read_chunks(buf, pos)
                elif self._state == "blob":
                    pos = self._read_blob_oid(buf, pos)
                elif self._state == "blob_chunks":
                    pos = self._skip_chunks(buf, pos, then="blob")
                else:  # pragma: no cover - no other state
                    raise AssertionError(self._state)
        except _NeedMore as stall:
            pos = max(pos, stall.pos)
        self._buf = buf[pos:]

    def finish(self) -> list[TableSum]:
        """The tables, in ``schema.table`` byte order. Raises IntegrityError when the archive was cut short
        (inside a block, or before the data of a table)."""
        if self._state != "block" or self._buf:
            raise _integrity("the pg_dump archive ended in the middle of an entry")
        missing = [entry for entry in self._tables.values() if not entry.seen]
        if missing:
            raise _integrity(f"the pg_dump archive ended before the data of {len(missing)} table(s)")
        codec = _python_codec(self._encoding)
        ordered = sorted(self._tables.values(), key=lambda entry: (entry.namespace, entry.tag))
        return [
            TableSum(
                f"{entry.namespace.decode(codec, 'replace')}.{entry.tag.decode(codec, 'replace')}",
                entry.rows.rows,
                entry.rows.checksum,
            )
            for entry in ordered
        ]

    # -- header and table of contents --------------------------------------------------------------------

    def _read_head(self, buf: bytes) -> int:
        reader = _Reader(buf)
        if len(buf) >= len(MAGIC) and not buf.startswith(MAGIC):
            raise _integrity("the dump does not start with the custom-format signature (PGDMP)")
        reader.take(len(MAGIC))
        major, minor = reader.byte(), reader.byte()
        reader.byte()  # revision
        self.version = (major, minor)
        if (major, minor) not in SUPPORTED_VERSIONS:
            raise UnsupportedArchive(f"archive version {major}.{minor}")
        int_size, off_size, fmt = reader.byte(), reader.byte(), reader.byte()
        if fmt != _ARCH_CUSTOM:
            raise UnsupportedArchive(f"archive format {fmt} (not custom)")
        if int_size not in (4, 8):
            raise UnsupportedArchive(f"integer size {int_size}")
        reader.int_size = int_size
        compression = reader.byte() if minor >= 15 else reader.int()
        if compression != 0:
            raise UnsupportedArchive("the archive is compressed (pg_dump --compress is not 0)")
        for _ in range(7):  # creation time
            reader.int()
        reader.str()  # database name
        reader.str()  # server version
        reader.str()  # pg_dump version
        count = reader.int()
        for _ in range(count):
            self._read_entry(reader, minor, off_size)
        self._int_size = int_size
        self._chunk = struct.Struct("<BI" if int_size == 4 else "<BQ")
        self._state = "block"
        return reader.pos

    def _read_entry(self, reader: _Reader, minor: int, off_size: int) -> None:
        dump_id = reader.int()
        reader.int()  # has a data dumper
        reader.str()  # table oid
        reader.str()  # oid
        tag = reader.str() or b""
        desc = reader.str() or b""
        reader.int()  # section
        defn = reader.str()
        reader.str()  # drop statement
        copy_stmt = reader.str()
        namespace = reader.str() or b""
        reader.str()  # tablespace
        if minor >= 14:
            reader.str()  # table access method
        reader.str()  # owner
        reader.str()  # "false": WITH OIDS
        while reader.str() is not None:  # dependencies
            pass
        reader.byte()  # data offset flag
        reader.take(off_size)
        entry = _Entry(namespace, tag)
        self._entries[dump_id] = entry
        if desc == b"ENCODING" and defn:
            match = _ENCODING.search(defn)
            if match:
                self._encoding = match.group(1).decode("ascii", "replace")
        if desc == b"TABLE DATA":
            if not copy_stmt:
                raise UnsupportedArchive("table data dumped as INSERT statements")
            self._tables[dump_id] = entry

    # -- data blocks -------------------------------------------------------------------------------------

    def _read_block_start(self, buf: bytes, pos: int) -> int:
        reader = _Reader(buf, self._int_size)
        reader.pos = pos
        kind = reader.byte()
        dump_id = reader.int()
        if kind == _BLK_BLOBS:
            self._state = "blob"
            return reader.pos
        if kind != _BLK_DATA:
            raise _integrity(f"unknown block type {kind} in the pg_dump archive")
        entry = self._tables.get(dump_id)
        if entry is None and dump_id not in self._entries:
            raise _integrity(f"data block for dump id {dump_id}, which the archive's TOC does not list")
        if entry is not None:
            if entry.seen:
                raise _integrity(f"two data blocks for dump id {dump_id}")
            entry.seen = True
        self._current = entry
        self._carry = b""
        self._held = []
        self._state = "chunks"
        return reader.pos

    def _read_chunks(self, buf: bytes, pos: int) -> int:
        # the hot loop: one iteration per chunk (per row with PostgreSQL 15's pg_dump)
        unpack = self._chunk.unpack_from
        head = self._chunk.size
        end = len(buf)
        payloads: list[bytes] = []
        append = payloads.append
        finished = False
        while pos + head <= end:
            sign, length = unpack(buf, pos)
            if length == 0:
                pos += head
                finished = True
                break
            if sign:
                raise _integrity("negative chunk length in the pg_dump archive")
            stop = pos + head + length
            if stop > end:
                break
            append(buf[pos + head : stop])
            pos = stop
        if self._current is not None and payloads:
            self._lines(b"".join(payloads))
        if finished:
            self._end_of_block()
        else:
            raise _NeedMore(pos)
        return pos

    def _lines(self, text: bytes) -> None:
        """Hash every complete row line of ``text``; hold back the last few (the end-of-data line and the
        empty lines after it must not be hashed)."""
        assert self._current is not None
        lines = (self._carry + text).split(b"\n") if self._carry else text.split(b"\n")
        self._carry = lines.pop()
        if self._held:
            lines[:0] = self._held
        if len(lines) > _HELD_LINES:
            self._held = lines[-_HELD_LINES:]
            del lines[-_HELD_LINES:]
            self._current.rows.add_lines(lines)
        else:
            self._held = lines

    def _end_of_block(self) -> None:
        entry = self._current
        self._state = "block"
        self._current = None
        if entry is None:
            return
        tail = [*self._held, self._carry]
        if _END_OF_DATA not in tail or any(tail[tail.index(_END_OF_DATA) + 1 :]):
            raise _integrity(
                f"the COPY data of {entry.tag.decode('utf-8', 'replace')} does not end with the end-of-data "
                "line"
            )
        entry.rows.add_lines(tail[: tail.index(_END_OF_DATA)])
        self._held = []
        self._carry = b""

    def _read_blob_oid(self, buf: bytes, pos: int) -> int:
        reader = _Reader(buf, self._int_size)
        reader.pos = pos
        oid = reader.int()
        self._state = "block" if oid == 0 else "blob_chunks"
        return reader.pos

    def _skip_chunks(self, buf: bytes, pos: int, *, then: str) -> int:
        reader = _Reader(buf, self._int_size)
        reader.pos = pos
        try:
            while True:
                length = reader.int()
                if length == 0:
                    self._state = then
                    return reader.pos
                reader.take(length)
                pos = reader.pos
        except _NeedMore:
            raise _NeedMore(pos) from None


def _python_codec(pg_encoding: str) -> str:
    """Python's codec for a PostgreSQL encoding name (UTF-8 when Python has none)."""
    aliases = {"SQL_ASCII": "utf-8", "UTF8": "utf-8", "LATIN1": "latin-1", "WIN1252": "cp1252"}
    name = aliases.get(pg_encoding.upper(), pg_encoding)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


__all__ = ["ArchiveScanner", "UnsupportedArchive"]
