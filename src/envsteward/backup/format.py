"""The backup object format: zstd-compressed data, encrypted with AES-256-GCM in authenticated chunks.

This module is pure: it turns plaintext into the bytes of a backup object and back, with no I/O of its own.
:class:`BackupWriter` compresses then encrypts; :class:`BackupReader` authenticates, decrypts and
decompresses. Both work on bounded pieces, so peak memory does not depend on the size of the backup.

Object layout (format version 1; all integers unsigned big-endian)
------------------------------------------------------------------

Header::

    magic        8 bytes   b"\\x89EWBK\\r\\n\\x1a"  (PNG-style: catches text-mode mangling and truncation)
    version      u8        1
    flags        u8        0 (reserved; readers reject anything else)
    chunk_size   u32       size of every non-final chunk's compressed plaintext (default 1 MiB)
    salt         32 bytes  random, fresh for every object
    backup_id    u16 length + UTF-8
    key_id       u16 length + UTF-8   the key provider's key that wrapped the data key
    wrapped_key  u16 length + bytes   the wrapped data key (also in the manifest: the object stands alone)

Then one or more frames, the last one (and only the last one) final::

    type         u8        0x00 = data chunk, 0x01 = final chunk
    length       u32       length of the sealed chunk: chunk_size + 16 for a data chunk, 16..chunk_size + 16
                           for the final chunk (the final chunk may be empty: it then holds only its tag)
    sealed       length    AES-256-GCM ciphertext || 16-byte tag

The plaintext of chunk ``i`` is the ``i``-th ``chunk_size`` slice of one zstd frame (content checksum on).

Keys, nonces and associated data
--------------------------------

* The key provider issues a fresh 256-bit data key per backup. The AES key is not the data key itself but
  ``HKDF-SHA256(data_key, salt=header.salt, info="envsteward backup v1 chunk key")``, and the manifest's
  authenticator uses ``HKDF(..., info="envsteward backup v1 manifest mac")``, so the two uses never share
  a key.
* ``nonce = 0x00000000 || u64(chunk index)``. Counter nonces are safe because the AES key is unique to the
  object: the data key is fresh per backup, *and* the random 256-bit salt makes the derived key unique even
  if a key provider ever handed out the same data key twice. Within one object the index never repeats,
  and a u64 counter of 1 MiB chunks cannot wrap.
* ``AAD = SHA-256(header) || u64(chunk index) || u8(final flag)``. Binding the header digest makes a chunk
  spliced in from another object (or a changed header field) fail; binding the index makes reordered,
  dropped or duplicated chunks fail; binding the final flag makes a truncated object fail (its last
  surviving chunk was sealed as non-final) and trailing frames after the final chunk are rejected.

Every failure raises :class:`envsteward.errors.IntegrityError` naming the chunk index, its byte offset and
what failed. Plaintext leaves :class:`BackupReader` only after the chunk it came from was authenticated.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Final, cast

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from envsteward.backup.hashing import BackgroundSha256
from envsteward.errors import ConfigurationError, IntegrityError

FORMAT_VERSION: Final = 1
MAGIC: Final = b"\x89EWBK\r\n\x1a"
DEFAULT_CHUNK_SIZE: Final = 1 << 20
MIN_CHUNK_SIZE: Final = 16
MAX_CHUNK_SIZE: Final = 64 << 20
DATA_KEY_BYTES: Final = 32
SALT_BYTES: Final = 32
TAG_BYTES: Final = 16
FRAME_DATA: Final = 0x00
FRAME_FINAL: Final = 0x01
DECOMPRESSED_PIECE: Final = 256 << 10
"""Largest piece of plaintext handed to a sink at once (bounds memory for highly compressible data)."""

_FIXED = struct.Struct(">8sBBI")  # magic, version, flags, chunk_size
_FRAME = struct.Struct(">BI")  # type, length
_LEN16 = struct.Struct(">H")
_INDEX = struct.Struct(">Q")
_FEED_SLICE = 1 << 20
_NONCE_PREFIX = b"\x00\x00\x00\x00"
_CHUNK_KEY_INFO = b"envsteward backup v1 chunk key"
_MAC_KEY_INFO = b"envsteward backup v1 manifest mac"
_MAX_FIELD = {"backup_id": 512, "key_id": 1024, "wrapped_key": 8192}


@dataclass(frozen=True, repr=False)
class StreamHeader:
    """The parsed header of a backup object. It holds no secret (the data key in it is wrapped)."""

    chunk_size: int
    salt: bytes
    backup_id: str
    key_id: str
    wrapped_key: bytes
    version: int = FORMAT_VERSION

    @classmethod
    def new(cls, *, backup_id: str, key_id: str, wrapped_key: bytes, chunk_size: int) -> StreamHeader:
        """A header with a fresh random salt. Raises ConfigurationError for out-of-range values."""
        check_chunk_size(chunk_size)
        header = cls(
            chunk_size=chunk_size,
            salt=os.urandom(SALT_BYTES),
            backup_id=backup_id,
            key_id=key_id,
            wrapped_key=wrapped_key,
        )
        header.encode()  # validates field lengths
        return header

    def encode(self) -> bytes:
        """The header's bytes. Raises ConfigurationError when a field is too long for the format."""
        parts = [_FIXED.pack(MAGIC, self.version, 0, self.chunk_size), self.salt]
        for name, value in (
            ("backup_id", self.backup_id.encode("utf-8")),
            ("key_id", self.key_id.encode("utf-8")),
            ("wrapped_key", self.wrapped_key),
        ):
            if len(value) > _MAX_FIELD[name]:
                limit = _MAX_FIELD[name]
                raise ConfigurationError(
                    f"backup format: {name} is {len(value)} bytes, the format allows at most {limit}"
                )
            parts += [_LEN16.pack(len(value)), value]
        return b"".join(parts)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the encoded header, bound into every chunk's associated data."""
        return hashlib.sha256(self.encode()).digest()

    def __repr__(self) -> str:
        return (
            f"StreamHeader(version={self.version}, chunk_size={self.chunk_size}, "
            f"backup_id={self.backup_id!r}, key_id={self.key_id!r})"
        )


def check_chunk_size(chunk_size: int) -> None:
    """Raise ConfigurationError unless ``MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE``."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigurationError(
            f"backup chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, got {chunk_size}"
        )


@dataclass(frozen=True, repr=False)
class StreamKeys:
    """Keys derived from one object's data key and salt. Never logged (the repr hides them)."""

    chunk_key: bytes
    mac_key: bytes

    def __repr__(self) -> str:
        return "StreamKeys(<redacted>)"


def derive_keys(data_key: bytes, salt: bytes) -> StreamKeys:
    """Derive the chunk key and the manifest MAC key. Raises IntegrityError for a key of the wrong size."""
    if len(data_key) != DATA_KEY_BYTES:
        raise IntegrityError(f"backup data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")

    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)

    return StreamKeys(chunk_key=hkdf(_CHUNK_KEY_INFO), mac_key=hkdf(_MAC_KEY_INFO))


def _nonce(index: int) -> bytes:
    return _NONCE_PREFIX + _INDEX.pack(index)


def _aad(header_digest: bytes, index: int, final: bool) -> bytes:
    return header_digest + _INDEX.pack(index) + (b"\x01" if final else b"\x00")


@dataclass
class StreamStats:
    """Running sizes and hashes of one object, filled in while it is written or read."""

    plaintext_size: int = 0
    compressed_size: int = 0
    ciphertext_size: int = 0
    chunks: int = 0
    plaintext_sha256: str = ""
    ciphertext_sha256: str = ""


class BackupWriter:
    """Compress then encrypt, push-style: ``header()``, then ``write(data)`` as often as needed, ``close()``.

    Each call returns the object bytes produced so far (possibly none). Every non-final chunk holds exactly
    ``chunk_size`` bytes of compressed data; one chunk is held back so the last one can be sealed as final.
    Peak memory is about two chunks plus zstd's window, whatever the input size.
    """

    def __init__(
        self,
        data_key: bytes,
        header: StreamHeader,
        *,
        zstd_level: int = 3,
        zstd_threads: int = 0,
    ) -> None:
        """Raises ConfigurationError for a bad zstd level, IntegrityError for a data key of the wrong size."""
        if not 1 <= zstd_level <= 22:
            raise ConfigurationError(f"zstd level must be between 1 and 22, got {zstd_level}")
        self.header = header
        self._header_bytes = header.encode()
        self._header_digest = hashlib.sha256(self._header_bytes).digest()
        self.keys = derive_keys(data_key, header.salt)
        self._aead = AESGCM(self.keys.chunk_key)
        compressor = zstandard.ZstdCompressor(level=zstd_level, threads=zstd_threads, write_checksum=True)
        self._chunker = compressor.chunker(chunk_size=header.chunk_size)
        self._pending: bytes | None = None
        self._plain_hash = BackgroundSha256()  # overlaps zstd on a second core
        self._cipher_hash = hashlib.sha256()
        self._started = False
        self._closed = False
        self.stats = StreamStats()

    def header_bytes(self) -> bytes:
        """The object's first bytes. Call once, before anything else."""
        if self._started:
            raise RuntimeError("BackupWriter.header_bytes() called twice")
        self._started = True
        return self._emit(self._header_bytes)

    def write(self, data: bytes) -> list[bytes]:
        """Add plaintext; returns the sealed frames that became complete (possibly none)."""
        self._check_open()
        if not data:
            return []
        self._plain_hash.update(bytes(data))
        self.stats.plaintext_size += len(data)
        return self._take(self._chunker.compress(data))

    def close(self) -> list[bytes]:
        """Flush zstd and seal the final chunk; fills in :attr:`stats`. Returns the last frames."""
        self._check_open()
        frames = self._take(self._chunker.finish())  # type: ignore[no-untyped-call]
        frames.append(self._seal(self._pending or b"", final=True))
        self._pending = None
        self._closed = True
        self.stats.plaintext_sha256 = self._plain_hash.hexdigest()
        self.stats.ciphertext_sha256 = self._cipher_hash.hexdigest()
        return frames

    @property
    def closed(self) -> bool:
        return self._closed

    def abort(self) -> None:
        """Give up on this object (the caller failed): stops the helper thread. Safe to call twice."""
        self._plain_hash.abort()

    def _check_open(self) -> None:
        if not self._started:
            raise RuntimeError("BackupWriter: call header_bytes() first")
        if self._closed:
            raise RuntimeError("BackupWriter is closed")

    def _take(self, compressed_chunks: Iterable[bytes]) -> list[bytes]:
        frames: list[bytes] = []
        for chunk in compressed_chunks:
            if self._pending is not None:
                frames.append(self._seal(self._pending, final=False))
            self._pending = chunk
        return frames

    def _seal(self, plaintext: bytes, *, final: bool) -> bytes:
        index = self.stats.chunks
        sealed = self._aead.encrypt(_nonce(index), plaintext, _aad(self._header_digest, index, final))
        self.stats.chunks += 1
        self.stats.compressed_size += len(plaintext)
        return self._emit(_FRAME.pack(FRAME_FINAL if final else FRAME_DATA, len(sealed)) + sealed)

    def _emit(self, data: bytes) -> bytes:
        self._cipher_hash.update(data)
        self.stats.ciphertext_size += len(data)
        return data


def encrypt_stream(
    data_key: bytes,
    header: StreamHeader,
    source: Iterable[bytes],
    *,
    zstd_level: int = 3,
    zstd_threads: int = 0,
    on_frame: Callable[[BackupWriter], None] | None = None,
) -> Iterator[bytes]:
    """Yield the bytes of a backup object for ``source`` (generator form of :class:`BackupWriter`).

    ``on_frame`` is called after each yielded piece with the writer (for progress and final stats).
    Exceptions raised by ``source`` propagate unchanged.
    """
    writer = BackupWriter(data_key, header, zstd_level=zstd_level, zstd_threads=zstd_threads)
    yield writer.header_bytes()
    for data in source:
        for frame in writer.write(bytes(data)):
            yield frame
            if on_frame:
                on_frame(writer)
    for frame in writer.close():
        yield frame
        if on_frame:
            on_frame(writer)


class _PlaintextSink:
    """The file-like object zstd's stream_writer writes decompressed pieces to."""

    def __init__(self, reader: BackupReader) -> None:
        self._reader = reader

    def write(self, data: bytes) -> int:
        self._reader._deliver(bytes(data))
        return len(data)


class BackupReader:
    """Authenticate, decrypt and decompress a backup object, push-style: ``feed(data)`` then ``close()``.

    ``check_header`` runs once the header is parsed and returns the plaintext data key (so the caller can
    compare header fields with the manifest and unwrap the key). ``sink`` receives plaintext in pieces of at
    most 256 KiB, only from chunks that authenticated. Raises IntegrityError (see the module docstring).
    """

    def __init__(
        self,
        check_header: Callable[[StreamHeader], bytes],
        sink: Callable[[bytes], None],
    ) -> None:
        self._check_header = check_header
        self._sink = sink
        self._buffer = bytearray()
        self._offset = 0  # absolute offset of the first byte in _buffer
        self.header: StreamHeader | None = None
        self.keys: StreamKeys | None = None
        self._header_digest = b""
        self._aead: AESGCM | None = None
        self._decompressor: zstandard.ZstdDecompressionWriter | None = None
        self._final_seen = False
        self._plain_hash = BackgroundSha256()  # overlaps zstd on a second core
        self._cipher_hash = hashlib.sha256()
        self.stats = StreamStats()

    def feed(self, data: bytes) -> None:
        """Process the next bytes of the object. Raises IntegrityError; the sink's exceptions propagate.
        Whatever it raises, the reader is aborted first (its hashing thread ends now, not at the next
        garbage collection: the exception's traceback keeps the reader alive)."""
        view = memoryview(data)
        try:
            # Large inputs are taken in slices so the buffer (and the cost of trimming it) stays small.
            for start in range(0, len(view), _FEED_SLICE):
                self._feed_slice(view[start : start + _FEED_SLICE])
        except BaseException:
            self.abort()
            raise

    def _feed_slice(self, data: memoryview) -> None:
        self._cipher_hash.update(data)
        self.stats.ciphertext_size += len(data)
        if self._final_seen:
            self._trailing()
        self._buffer += data
        if self.header is None and not self._parse_header():
            return
        while self._next_frame():
            if self._final_seen and self._buffer:
                self._trailing()

    def abort(self) -> None:
        """Give up on this object (the caller failed): stops the helper thread. Safe to call twice."""
        self._plain_hash.abort()
        self._decompressor = None  # see close()

    def close(self) -> StreamStats:
        """Check the object ended right after its final chunk; returns the sizes and hashes. Raises
        IntegrityError (the reader is aborted first)."""
        try:
            return self._close()
        except BaseException:
            self.abort()
            raise

    def _close(self) -> StreamStats:
        if self.header is None:
            raise IntegrityError(
                f"backup object truncated: {self.stats.ciphertext_size} bytes, the header is incomplete"
            )
        if not self._final_seen:
            where = f"after chunk {self.stats.chunks - 1}" if self.stats.chunks else "right after the header"
            partial = f" (plus {len(self._buffer)} bytes of an incomplete frame)" if self._buffer else ""
            raise IntegrityError(
                f"backup object truncated: it ends {where}{partial} without the final chunk "
                f"(byte offset {self._offset + len(self._buffer)})"
            )
        assert self._decompressor is not None
        self._decompressor.flush()  # type: ignore[no-untyped-call]
        # reader -> zstd writer -> sink -> reader is a cycle the garbage collector cannot see through (the
        # C writer does not take part in it): without this every reader leaked with its buffers, ~16 MiB
        # per WAL segment in a process that fetches many (the restore read-ahead)
        self._decompressor = None
        self.stats.plaintext_sha256 = self._plain_hash.hexdigest()
        self.stats.ciphertext_sha256 = self._cipher_hash.hexdigest()
        return self.stats

    # -- parsing --------------------------------------------------------------------------------------------

    def _parse_header(self) -> bool:
        buf = self._buffer
        if len(buf) >= len(MAGIC) and bytes(buf[: len(MAGIC)]) != MAGIC:
            raise IntegrityError("not an envsteward backup object: bad magic bytes at offset 0")
        if len(buf) < _FIXED.size + SALT_BYTES:
            return False
        _, version, flags, chunk_size = _FIXED.unpack_from(buf)
        if version != FORMAT_VERSION:
            raise IntegrityError(
                f"backup object header: unsupported format version {version} (this envsteward reads "
                f"version {FORMAT_VERSION}); the object is corrupt or was written by a newer envsteward"
            )
        if flags != 0:
            raise IntegrityError(f"backup object header: reserved flags byte is {flags:#04x}, expected 0x00")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise IntegrityError(f"backup object header: chunk size {chunk_size} is out of range")
        pos = _FIXED.size
        salt = bytes(buf[pos : pos + SALT_BYTES])
        pos += SALT_BYTES
        fields: list[bytes] = []
        for name in ("backup_id", "key_id", "wrapped_key"):
            if len(buf) < pos + _LEN16.size:
                return False
            (length,) = _LEN16.unpack_from(buf, pos)
            if length > _MAX_FIELD[name]:
                raise IntegrityError(f"backup object header: {name} length {length} is out of range")
            pos += _LEN16.size
            if len(buf) < pos + length:
                return False
            fields.append(bytes(buf[pos : pos + length]))
            pos += length
        try:
            backup_id, key_id = fields[0].decode("utf-8"), fields[1].decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError("backup object header: backup id or key id is not UTF-8") from None
        header = StreamHeader(
            chunk_size=chunk_size, salt=salt, backup_id=backup_id, key_id=key_id, wrapped_key=fields[2]
        )
        header_bytes = bytes(buf[:pos])
        if header.encode() != header_bytes:  # pragma: no cover - encode/parse are exact inverses
            raise IntegrityError("backup object header does not re-encode to the same bytes")
        data_key = self._check_header(header)
        self.keys = derive_keys(data_key, salt)
        self._aead = AESGCM(self.keys.chunk_key)
        self._header_digest = hashlib.sha256(header_bytes).digest()
        self._decompressor = zstandard.ZstdDecompressor().stream_writer(
            cast(IO[bytes], _PlaintextSink(self)), write_size=DECOMPRESSED_PIECE, closefd=False
        )
        self.header = header
        self._consume(pos)
        return True

    def _next_frame(self) -> bool:
        assert self.header is not None
        assert self._aead is not None
        assert self._decompressor is not None
        if self._final_seen or len(self._buffer) < _FRAME.size:
            return False
        index = self.stats.chunks
        where = f"chunk {index} (byte offset {self._offset})"
        kind, length = _FRAME.unpack_from(self._buffer)
        full = self.header.chunk_size + TAG_BYTES
        if kind == FRAME_DATA:
            if length != full:
                raise IntegrityError(f"backup object: {where}: data chunk length {length}, expected {full}")
        elif kind == FRAME_FINAL:
            if not TAG_BYTES <= length <= full:
                raise IntegrityError(
                    f"backup object: {where}: final chunk length {length} is outside {TAG_BYTES}..{full}"
                )
        else:
            raise IntegrityError(f"backup object: {where}: unknown frame type {kind:#04x}")
        end = _FRAME.size + length
        if len(self._buffer) < end:
            return False
        final = kind == FRAME_FINAL
        sealed = bytes(self._buffer[_FRAME.size : end])
        try:
            compressed = self._aead.decrypt(_nonce(index), sealed, _aad(self._header_digest, index, final))
        except InvalidTag:
            raise IntegrityError(
                f"backup object: {where}{' (final)' if final else ''}: authentication failed - the chunk "
                "was altered, reordered or spliced in from another backup, or the data key is wrong"
            ) from None
        self._consume(end)
        self.stats.chunks += 1
        self.stats.compressed_size += len(compressed)
        self._final_seen = final
        try:
            self._decompressor.write(compressed)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"backup object: {where}: zstd decompression failed: {exc}") from None
        return True

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._offset += count

    def _deliver(self, plaintext: bytes) -> None:
        self._plain_hash.update(plaintext)
        self.stats.plaintext_size += len(plaintext)
        self._sink(plaintext)

    def _trailing(self) -> None:
        raise IntegrityError(
            f"backup object: unexpected data after the final chunk (chunk {self.stats.chunks - 1}) "
            f"at byte offset {self._offset}"
        )
