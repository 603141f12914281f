"""Table checksums read off a pg_dump custom-format archive as it streams by: no extra scan of the database.

``pg_dump --format=custom --compress=0`` writes, to a pipe: a header (``PGDMP``, archive version, integer
size, compression), the table of contents (one entry per object: dump id, description such as ``TABLE
DATA``, schema, name, the ``COPY ... FROM stdin;`` statement, ...), then one data block per entry that has
data (``1`` + dump id, then chunks ``<int length><bytes>`` ending with a zero length; large objects: ``3``
+ dump id, then ``<oid>`` + chunks per object, ending with oid 0). Integers are a sign byte plus
``intSize`` little-endian bytes; strings an integer length (-1: NULL) plus the bytes. With compression off,
the chunks of a ``TABLE DATA`` block ARE the text ``COPY ... TO STDOUT`` produced: one line per row, then the
end-of-data line ``\\.`` (pg_dump writes one chunk per row and one for the end-of-data line; any chunking
is read correctly).

:class:`ArchiveScanner` is fed the archive piece by piece (what the backup pipeline reads anyway) and
computes, per table, an order-dependent hash: by default v5 (``pg-copy-xxh3-framed128/v5``,
:class:`~envsteward.adapters.pg_checksums.FramedSum`: each row framed by the 5 bytes pg_dump's chunk header
is made of, so where a run of chunks is proven to be one row each the archive's bytes are hashed IN PLACE,
no copy and no deletion; elsewhere the scanner frames the rows itself with numpy), or v4
(``pg-copy-xxh3-stream128/v4``, :class:`~envsteward.adapters.pg_checksums.StreamSum`, the COPY text: the
chunk headers are found and deleted with numpy; kept for stored backups' re-checks); no Python work per row
either way; and/or the per-row multiset sum (:class:`~envsteward.adapters.pg_checksums.RowSum`,
``pg-copy-xxh3-sum128/v3``: what a drill falls back to when the restored order differs), in constant
memory: a partial chunk, one partial line and a few held-back bytes are carried between pieces. What
it cannot read — a compressed archive, an archive version other than 1.12-1.15 (pg_dump 11-16), table data
written as INSERT statements — raises :class:`UnsupportedArchive` (the caller falls back to the server-side
checksums); a malformed or truncated archive raises IntegrityError (naming the table where it is in one:
a broken chunk chain, a NUL byte in v5's COPY text, a missing end-of-data line).

Pure (no external system).
"""

from __future__ import annotations

import codecs
import itertools
import re
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from envsteward.adapters.pg_checksums import (
    FRAMED_ALGORITHM,
    STREAM_ALGORITHM,
    FramedSum,
    FrameScratch,
    RowSum,
    StreamSum,
    TableSum,
    frame_lines,
)
from envsteward.errors import IntegrityError

MAGIC = b"PGDMP"
SUPPORTED_VERSIONS = ((1, 12), (1, 13), (1, 14), (1, 15))
"""Archive versions written by pg_dump 11 to 16 (whose TOC entries this module knows)."""

_ARCH_CUSTOM = 1
_BLK_DATA = 1
_BLK_BLOBS = 3
_END_OF_DATA = b"\\."
_HELD_LINES = 4
_TAIL_BYTES = 64
"""Stream hash: bytes held back unhashed until the block ends (the end-of-data line and the empty lines
pg_dump writes after it are in there, and are not hashed)."""
_LOOP_CHUNKS = 64
"""Chunks read one by one before the vectorised reader takes over (small tables never pay numpy)."""
_NEWLINE = 10
_BACKSLASH = 0x5C
_DOT = 0x2E
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
    stream: StreamSum | FramedSum | None = None
    rows: RowSum | None = None
    seen: bool = False


@dataclass(frozen=True, slots=True)
class _Batch:
    """Complete chunks the vectorised reader found: ``buf[pos:pos+data_end]``, chunk headers at
    ``headers`` (relative to ``pos``; ``data`` is ``buf`` from ``pos`` as uint8), payload ``sizes``,
    ``lines`` newlines in the payloads, ``used`` length bytes that are not always zero."""

    buf: bytes
    pos: int
    data: np.ndarray[Any, Any]
    data_end: int
    headers: np.ndarray[Any, Any]
    sizes: np.ndarray[Any, Any]
    lines: int
    used: int


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

    def __init__(
        self,
        *,
        stream: bool = True,
        rows: bool = False,
        only: Collection[str] | None = None,
        family: str = FRAMED_ALGORITHM,
    ) -> None:
        if not (stream or rows):
            raise ValueError("ArchiveScanner: compute the stream hash, the row sums or both")
        if family not in (FRAMED_ALGORITHM, STREAM_ALGORITHM):
            raise ValueError(f"ArchiveScanner: no stream hash {family!r}")
        self._stream = stream
        self._framed = stream and family == FRAMED_ALGORITHM
        self._marker = False
        self._fast_rows = 0
        self._frame_parts: list[bytes] = []
        self._scratch = FrameScratch()
        self._rows = rows
        self._only = frozenset(only) if only is not None else None
        self._tail = b""
        self._hashed = 0
        self._newlines = 0
        self._buf = b""
        self._state = "head"
        self._entries: dict[int, _Entry] = {}
        self._tables: dict[int, _Entry] = {}
        self._encoding = "UTF8"
        self._int_size = 4
        self._chunk = struct.Struct("<BI")
        self._length_dtype = np.dtype("<u4")
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
        pos = 0
        if self._buf and self._state == "chunks":
            # the partial chunk carried over is completed from the piece's first bytes: the piece itself
            # is then read in place (no copy of it behind the carried bytes)
            need = self._to_complete(data)
            if need is not None:
                carried, self._buf = self._buf + data[:need], b""
                self._run(carried, 0)
                if self._buf:  # pragma: no cover - a whole chunk is always consumed
                    carried, self._buf = self._buf + data[need:], b""
                    self._run(carried, 0)
                    return
                pos = need
        if self._buf:
            self._run(self._buf + data, 0)
        else:
            self._run(data, pos)

    def _to_complete(self, data: bytes) -> int | None:
        """How many bytes of ``data`` complete the partial chunk in ``self._buf`` (its header, its payload);
        None when ``data`` does not hold them all."""
        head = self._chunk.size
        missing = max(0, head - len(self._buf))
        if missing > len(data):
            return None
        _sign, length = self._chunk.unpack_from(self._buf + data[:missing], 0)
        need = missing + max(0, head + length - max(len(self._buf), head))
        return need if need <= len(data) else None

    def _run(self, buf: bytes, pos: int) -> None:
        """Read ``buf`` from ``pos`` on; keep what is left of an incomplete value for the next piece."""
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

    def finish(self, kind: str = "") -> list[TableSum]:
        """The tables, in ``schema.table`` byte order: the order-dependent hashes (v5 or v4, as ``family``
        said; ``kind="stream"``) or the
        per-row sums (v3, ``kind="rows"``); by default the stream hashes when computed. Tables left out by
        ``only`` are left out here too. Raises IntegrityError when the archive was cut short (inside a
        block, or before the data of a table), ValueError for a ``kind`` not computed."""
        kind = kind or ("stream" if self._stream else "rows")
        if (kind == "stream" and not self._stream) or (kind == "rows" and not self._rows):
            raise ValueError(f"ArchiveScanner: {kind!r} sums were not computed")
        if self._state != "block" or self._buf:
            raise _integrity("the pg_dump archive ended in the middle of an entry")
        missing = [entry for entry in self._tables.values() if not entry.seen]
        if missing:
            raise _integrity(f"the pg_dump archive ended before the data of {len(missing)} table(s)")
        ordered = sorted(self._tables.values(), key=lambda entry: (entry.namespace, entry.tag))
        sums: list[TableSum] = []
        for entry in ordered:
            name = self._name(entry)
            if self._only is not None and name not in self._only:
                continue
            acc = entry.stream if kind == "stream" else entry.rows
            assert acc is not None
            sums.append(TableSum(name, acc.rows, acc.checksum))
        return sums

    def _name(self, entry: _Entry) -> str:
        codec = _python_codec(self._encoding)
        return f"{entry.namespace.decode(codec, 'replace')}.{entry.tag.decode(codec, 'replace')}"

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
        self._length_dtype = np.dtype("<u4" if int_size == 4 else "<u8")
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
        acc: StreamSum | FramedSum | None = None
        if self._stream:
            acc = FramedSum() if self._framed else StreamSum()
        entry = _Entry(namespace, tag, acc, RowSum() if self._rows else None)
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
            if self._only is not None and self._name(entry) not in self._only:
                entry = None  # not asked for: skipped (cheaply), not hashed
        self._current = entry
        self._carry = b""
        self._held = []
        self._tail = b""
        self._hashed = 0
        self._newlines = 0
        self._marker = False
        self._fast_rows = 0
        self._frame_parts = []
        self._state = "chunks"
        return reader.pos

    def _read_chunks(self, buf: bytes, pos: int) -> int:
        """Alternate a few chunks read one by one (a small table ends there, no numpy set-up) with the
        vectorised reader, which takes the rest of the piece in one go."""
        while True:
            pos, state = self._loop_chunks(buf, pos, _LOOP_CHUNKS)
            if state == "more":
                raise _NeedMore(pos)
            if state == "end":
                return pos
            pos, state = self._vector_chunks(buf, pos)
            if state == "more":
                raise _NeedMore(pos)
            if state == "end":
                return pos
            # "stuck": the vectorised reader could not prove the next chunk boundary; read it one by one

    def _loop_chunks(self, buf: bytes, pos: int, budget: int) -> tuple[int, str]:
        """Read up to ``budget`` chunks one by one. Returns the new position and ``end`` (the block's
        zero-length chunk was read), ``more`` (the buffer ends inside a chunk) or ``budget``."""
        unpack = self._chunk.unpack_from
        head = self._chunk.size
        end = len(buf)
        first = pos
        payloads: list[bytes] = []
        append = payloads.append
        state = "more"
        for _ in range(budget):
            if pos + head > end:
                break
            sign, length = unpack(buf, pos)
            if length == 0:
                if sign:
                    raise _integrity(f"negative chunk length in the pg_dump archive{self._where()}")
                pos += head
                state = "end"
                break
            if sign:
                raise _integrity(f"negative chunk length in the pg_dump archive{self._where()}")
            stop = pos + head + length
            if stop > end:
                break
            append(buf[pos + head : stop])
            pos = stop
        else:
            state = "budget"
        if self._current is not None and payloads:
            text = b"".join(payloads)
            if self._framed and self._rows_in_place(buf, first, payloads, text):
                if self._rows:
                    self._lines(text)
            else:
                self._text(text)
        if state == "end":
            self._end_of_block()
        return pos, state

    def _vector_chunks(self, buf: bytes, pos: int) -> tuple[int, str]:
        """Read every complete chunk from ``pos`` on with numpy: no Python work per row.

        Every COPY row line ends with its only raw newline (COPY escapes the others), so a chunk header
        follows a newline: the candidates are ``pos`` and every byte after a newline; a header's length
        says where the next one is. Candidates that no other candidate points to are dropped (a newline
        byte inside a length field), and what is kept must form an unbroken chain from ``pos`` (each
        header points exactly at the next): that is precisely what reading the chunks one by one would
        find. Where the chain breaks before the end of the buffer, stop ("stuck"); the one-by-one reader
        takes over. Returns the new position and ``end`` / ``more`` / ``stuck``.
        """
        head = self._chunk.size
        data = np.frombuffer(buf, dtype=np.uint8)[pos:]
        size = int(data.size)
        newlines = np.flatnonzero(data == _NEWLINE)
        every: np.ndarray[Any, np.dtype[np.int64]] = np.empty(newlines.size + 1, dtype=np.int64)
        every[0] = 0
        np.add(newlines, 1, out=every[1:])
        # sorted: the candidates whose whole header is in the buffer are a prefix
        cand = every[: int(np.searchsorted(every, size - head, side="right"))]
        if cand.size == 0:
            return pos, "more"
        # every header's length field at once: an unaligned little-endian view, one element per byte offset
        fields: np.ndarray[Any, Any] = np.ndarray(
            (size - head + 1,), dtype=self._length_dtype, buffer=buf, offset=pos + 1, strides=(1,)
        )
        length = fields[cand].astype(np.int64)
        following = cand + head + length
        index = np.minimum(np.searchsorted(cand, following), cand.size - 1)
        found = cand[index] == following
        keep = np.zeros(cand.size, dtype=bool)
        keep[0] = True
        keep[index[found]] = True
        starts, nexts, lengths = cand[keep], following[keep], length[keep]
        broken = np.flatnonzero(nexts[:-1] != starts[1:])
        last = int(broken[0]) if broken.size else int(starts.size) - 1
        zero = np.flatnonzero(lengths[: last + 1] == 0)
        if zero.size:
            last, state = int(zero[0]), "end"
            data_end, done = int(starts[last]), int(starts[last]) + head
            count = last
            checked = starts[: last + 1]
        else:
            if int(nexts[last]) > size:
                last -= 1  # the buffer ends inside this chunk
                state = "more"
            elif int(nexts[last]) + head > size:
                state = "more"  # the next header is not complete yet
            else:
                state = "stuck"  # the next header is there but was no candidate: read one by one
            data_end = done = int(nexts[last]) if last >= 0 else 0
            count = last + 1
            checked = starts[:count]
        if np.any(data[checked] != 0):
            raise _integrity(f"negative chunk length in the pg_dump archive{self._where()}")
        if self._current is not None and count:
            batch = _batch(buf, pos, data, newlines, data_end, headers=starts[:count], sizes=lengths[:count])
            if self._framed:
                self._framed_batch(batch)
            else:
                self._text(self._payloads(buf, pos, data_end, batch.headers, batch.used), batch.lines)
        if state == "end":
            self._end_of_block()
        return pos + done, state

    def _payloads(
        self, buf: bytes, pos: int, data_end: int, headers: np.ndarray[Any, Any], used: int
    ) -> bytes | bytearray:
        """The chunk payloads of ``buf[pos:pos+data_end]`` (chunk headers at ``headers``, sign byte zero,
        length bytes beyond ``used`` zero), concatenated: the header bytes are zeroed and every NUL byte
        deleted (a bytearray; ``bytes`` when the per-row sums split it). COPY text never holds a NUL
        byte; if it did, the length check sends it the slow way."""
        head = self._chunk.size
        region = bytearray(memoryview(buf)[pos : pos + data_end])
        view = np.frombuffer(region, dtype=np.uint8)
        for k in range(1, used + 1):
            view[headers + k] = 0
        del view
        text = region.translate(None, b"\x00")
        if len(text) == data_end - head * int(headers.size):
            return bytes(text) if self._rows else text
        bounds = [*headers.tolist(), data_end]
        return b"".join(buf[pos + start + head : pos + stop] for start, stop in itertools.pairwise(bounds))

    def _rows_in_place(self, buf: bytes, first: int, payloads: list[bytes], text: bytes) -> bool:
        """v5, chunks read one by one from ``first`` (their ``payloads``, joined: ``text``): when each is
        exactly one row (see :meth:`_fast_prefix`), hash the archive's bytes in place and say True."""
        if self._int_size != 4 or self._marker or self._frame_parts:
            return False
        if text.count(b"\n") != len(payloads) or b"\x00" in text or _END_OF_DATA + b"\n" in payloads:
            return False
        if not all(payload.endswith(b"\n") for payload in payloads):
            return False
        entry = self._current
        assert entry is not None
        assert entry.stream is not None
        with memoryview(buf) as view, view[first : first + len(text) + 5 * len(payloads)] as framed:
            entry.stream.feed(framed)
        self._fast_rows += len(payloads)
        return True

    def _framed_batch(self, batch: _Batch) -> None:
        """v5 (and the row sums, when computed) of a batch of chunks. The prefix of chunks that are exactly
        one row each IS the framed form: hashed in place (a memoryview of the piece, no copy); the rest is
        framed here (:meth:`_frame_text`). Raises IntegrityError naming the table for a NUL byte."""
        entry = self._current
        assert entry is not None
        assert entry.stream is not None
        buf, pos, headers = batch.buf, batch.pos, batch.headers
        count = int(headers.size)
        fast = self._fast_prefix(batch)
        stop = int(headers[fast]) if fast < count else batch.data_end
        if fast:
            # COPY text never holds a NUL byte: every zero byte of the region is in a chunk header
            if int(np.count_nonzero(batch.data[:stop] == 0)) != _header_zeros(batch.sizes[:fast]):
                raise self._nul()
            with memoryview(buf) as view, view[pos : pos + stop] as framed:
                entry.stream.feed(framed)
            self._fast_rows += fast
        text: Any = None
        if fast < count:
            text = self._payloads(buf, pos + stop, batch.data_end - stop, headers[fast:] - stop, batch.used)
            self._frame_text(text)
        if self._rows:
            if fast:  # the row sums need the payloads of the fast chunks too
                text = self._payloads(buf, pos, batch.data_end, headers, batch.used)
            self._lines(bytes(text))

    def _fast_prefix(self, batch: _Batch) -> int:
        """How many of the batch's chunks, from the first, are each exactly one row (the payload ends with
        its only newline and is not the end-of-data line) with pg_dump's 5-byte header: all of them, all
        but the last (the end-of-data chunk), or none (8-byte integers, a partial row or the end-of-data
        line before them). Proven from what the vectorised reader computed: every payload's last byte is
        a newline and the payloads hold as many newlines as there are chunks."""
        if self._int_size != 4 or self._marker or self._frame_parts:
            return 0
        head = self._chunk.size
        data, headers, sizes, lines = batch.data, batch.headers, batch.sizes, batch.lines
        count = int(headers.size)
        ends = data[headers + (head - 1) + sizes] == _NEWLINE
        for fast in (count, count - 1):
            if fast <= 0:
                return 0
            if fast < count:  # the newlines of the last chunk's payload are not in the prefix
                start = batch.pos + int(headers[fast]) + head
                lines -= batch.buf.count(b"\n", start, start + int(sizes[fast]))
            if lines != fast or not bool(ends[:fast].all()):
                continue
            short = headers[:fast][sizes[:fast] == len(_END_OF_DATA) + 1] + head
            if short.size and bool(np.any((data[short] == _BACKSLASH) & (data[short + 1] == _DOT))):
                continue  # an end-of-data line alone in its chunk: the slow path ends the table
            return fast
        return 0

    def _frame_text(self, text: Any) -> None:
        """v5 slow path: COPY text of the current table (any cut) framed here and hashed; finds the
        end-of-data line (rows after it are an error). Raises IntegrityError naming the table for a NUL
        byte (COPY text never holds one) or data after the end-of-data line."""
        entry = self._current
        assert entry is not None
        assert isinstance(entry.stream, FramedSum)
        if b"\x00" in text:
            raise self._nul()
        if not self._marker and b"\n" not in text:  # a row goes on: kept until its newline (no re-copying)
            self._frame_parts.append(bytes(text))
            return
        whole = b"".join([*self._frame_parts, text]) if self._frame_parts else bytes(text)
        self._frame_parts = []
        if self._marker:
            if whole.strip(b"\n"):
                raise self._after_end(entry)
            return
        if whole.startswith(_END_OF_DATA + b"\n"):
            at = 0
        else:
            found = whole.find(b"\n" + _END_OF_DATA + b"\n")
            at = found + 1 if found >= 0 else -1
        if at >= 0:
            if whole[at + len(_END_OF_DATA) :].strip(b"\n"):
                raise self._after_end(entry)
            rows, self._marker = whole[:at], True
        else:
            cut = whole.rfind(b"\n") + 1
            rows = whole[:cut]
            if cut < len(whole):
                self._frame_parts.append(whole[cut:])
        framed, count = frame_lines(rows, self._scratch)
        entry.stream.feed(framed)
        self._fast_rows += count

    def _where(self) -> str:
        entry = self._current
        return f" (in the data of table {self._name(entry)})" if entry is not None else ""

    def _nul(self) -> IntegrityError:
        return _integrity(
            f"a NUL byte in the COPY data of table {self._name(self._current) if self._current else '?'}: "
            "COPY text never holds one; the archive is damaged"
        )

    def _after_end(self, entry: _Entry) -> IntegrityError:
        return _integrity(
            f"data after the end-of-data line of table {self._name(entry)} in the pg_dump archive"
        )

    def _text(self, text: Any, lines: int | None = None) -> None:
        """COPY text of the current table (any buffer; rows may be cut anywhere; ``lines``: its newlines,
        when known): into the stream hash and/or the per-row sum. The stream hash holds back the last
        bytes (the end-of-data line is not hashed)."""
        assert self._current is not None
        stream = self._current.stream
        if isinstance(stream, FramedSum):
            self._frame_text(text)
        elif stream is not None:
            self._newlines += text.count(b"\n") if lines is None else lines
            size = len(text)
            if size >= _TAIL_BYTES:
                # hash the held-back tail, then all of text but its last bytes: no copy of the piece
                if self._tail:
                    stream.feed(self._tail)
                    self._hashed += len(self._tail)
                cut = size - _TAIL_BYTES
                view = memoryview(text)
                stream.feed(view[:cut])
                self._hashed += cut
                self._tail = bytes(view[cut:])
                view.release()
            else:
                joined = self._tail + bytes(text)
                if len(joined) > _TAIL_BYTES:
                    cut = len(joined) - _TAIL_BYTES
                    stream.feed(joined[:cut])
                    self._hashed += cut
                    self._tail = joined[cut:]
                else:
                    self._tail = joined
        if self._current.rows is not None:
            self._lines(text)

    def _lines(self, text: bytes) -> None:
        """Hash every complete row line of ``text``; hold back the last few (the end-of-data line and the
        empty lines after it must not be hashed)."""
        assert self._current is not None
        assert self._current.rows is not None
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
        if isinstance(entry.stream, FramedSum):
            if not self._marker and b"".join(self._frame_parts) != _END_OF_DATA:
                raise self._no_end(entry)
            entry.stream.rows = self._fast_rows
            self._frame_parts = []
        elif entry.stream is not None:
            body = self._tail.rstrip(b"\n")
            if not body.endswith(_END_OF_DATA) or (
                body[:-2][-1:] != b"\n" and (len(body) > 2 or self._hashed)
            ):
                raise self._no_end(entry)
            entry.stream.feed(body[:-2])
            # every newline is a row but those of the end-of-data line and the empty lines after it
            entry.stream.rows = self._newlines - (len(self._tail) - len(body))
            self._tail = b""
        if entry.rows is not None:
            tail = [*self._held, self._carry]
            if _END_OF_DATA not in tail or any(tail[tail.index(_END_OF_DATA) + 1 :]):
                raise self._no_end(entry)
            entry.rows.add_lines(tail[: tail.index(_END_OF_DATA)])
            self._held = []
            self._carry = b""

    def _no_end(self, entry: _Entry) -> IntegrityError:
        return _integrity(
            f"the COPY data of table {self._name(entry)} does not end with the end-of-data line"
        )

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


def _batch(
    buf: bytes,
    pos: int,
    data: np.ndarray[Any, Any],
    newlines: np.ndarray[Any, Any],
    data_end: int,
    *,
    headers: np.ndarray[Any, Any],
    sizes: np.ndarray[Any, Any],
) -> _Batch:
    """The :class:`_Batch` of these chunks (``newlines``: positions of every newline byte of ``data``)."""
    # the length fields' bytes above the largest length's are all zero: neither newline nor data
    used = (int(sizes.max()).bit_length() + 7) // 8
    # newlines of the payloads: all those before data_end but the ones inside length fields
    inside = sum(int(np.count_nonzero((sizes >> (8 * k)) & 0xFF == _NEWLINE)) for k in range(used))
    lines = int(np.searchsorted(newlines, data_end)) - inside
    return _Batch(buf, pos, data, data_end, headers, sizes, lines, used)


def _header_zeros(sizes: np.ndarray[Any, Any]) -> int:
    """Zero bytes in the 5-byte headers of chunks of these ``sizes`` (sign byte, zero length bytes)."""
    zeros = int(sizes.size)
    for k in range(4):
        zeros += int(np.count_nonzero((sizes >> (8 * k)) & 0xFF == 0))
    return zeros


def _python_codec(pg_encoding: str) -> str:
    """Python's codec for a PostgreSQL encoding name (UTF-8 when Python has none)."""
    aliases = {"SQL_ASCII": "utf-8", "UTF8": "utf-8", "LATIN1": "latin-1", "WIN1252": "cp1252"}
    name = aliases.get(pg_encoding.upper(), pg_encoding)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


__all__ = ["ArchiveScanner", "UnsupportedArchive"]
