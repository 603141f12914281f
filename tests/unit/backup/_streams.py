"""Helpers for backup tests: build objects in memory, split them into header and frames, and read them."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from envsteward.backup.format import BackupReader, StreamHeader, StreamStats, encrypt_stream

FRAME_HEAD = struct.Struct(">BI")


def make_header(backup_id: str = "dev/db/b1", chunk_size: int = 1024) -> StreamHeader:
    return StreamHeader.new(
        backup_id=backup_id,
        key_id="test-key",
        wrapped_key=b"wrapped-" + backup_id.encode(),
        chunk_size=chunk_size,
    )


def build_object(
    plaintext: bytes | Iterable[bytes],
    *,
    key: bytes | None = None,
    header: StreamHeader | None = None,
    piece: int = 65536,
) -> tuple[bytes, bytes, StreamHeader]:
    """(object bytes, data key, header) for ``plaintext``."""
    key = key if key is not None else os.urandom(32)
    header = header or make_header()
    if isinstance(plaintext, bytes):
        source: Iterable[bytes] = [plaintext[i : i + piece] for i in range(0, len(plaintext), piece)]
    else:
        source = plaintext
    return b"".join(encrypt_stream(key, header, source)), key, header


@dataclass
class Split:
    header: bytes
    frames: list[bytes]

    def join(self, frames: list[bytes] | None = None) -> bytes:
        return self.header + b"".join(self.frames if frames is None else frames)


def split_object(blob: bytes, header: StreamHeader) -> Split:
    """Cut an object into its header bytes and whole frames (type + length + sealed)."""
    head = header.encode()
    assert blob.startswith(head)
    frames: list[bytes] = []
    pos = len(head)
    while pos < len(blob):
        _, length = FRAME_HEAD.unpack_from(blob, pos)
        frames.append(blob[pos : pos + FRAME_HEAD.size + length])
        pos += FRAME_HEAD.size + length
    assert pos == len(blob)
    return Split(head, frames)


def read_object(
    blob: bytes | Iterable[bytes], key: bytes, sink: list[bytes] | None = None
) -> tuple[bytes, StreamStats]:
    """Decrypt an object (given whole or in pieces); returns (plaintext, stats). Raises IntegrityError."""
    out: list[bytes] = [] if sink is None else sink
    reader = BackupReader(lambda _header: key, out.append)
    for piece in [blob] if isinstance(blob, bytes) else blob:
        reader.feed(piece)
    stats = reader.close()
    return b"".join(out), stats


def pieces(blob: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    pos = 0
    while pos < len(blob):
        size = next(sizes)
        yield blob[pos : pos + size]
        pos += size
