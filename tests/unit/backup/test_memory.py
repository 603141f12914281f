"""Peak memory of the format does not depend on the size of the backup (64 MiB through, < 16 MiB peak)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator

import pytest

from envsteward.backup.format import BackupReader, encrypt_stream

from ._streams import make_header

TOTAL = 64 << 20
PIECE = 64 << 10
LIMIT = 16 << 20


def _generated(kind: str) -> Iterator[bytes]:
    """64 MiB, generated piece by piece (never held whole)."""
    for index in range(TOTAL // PIECE):
        if kind == "zeros":
            yield bytes(PIECE)
        elif kind == "random":
            yield os.urandom(PIECE)
        else:
            yield (f"{index}\tcustomer-{index % 977}\t2024-01-01\n".encode() * 4000)[:PIECE]


@pytest.mark.parametrize("kind", ["zeros", "random", "rows"])
def test_peak_memory_is_bounded(kind: str) -> None:
    key = os.urandom(32)
    source_hash = hashlib.sha256()

    def source() -> Iterator[bytes]:
        for piece in _generated(kind):
            source_hash.update(piece)
            yield piece

    out_hash = hashlib.sha256()
    reader = BackupReader(lambda _header: key, out_hash.update)
    tracemalloc.start()
    try:
        for part in encrypt_stream(key, make_header(chunk_size=1 << 20), source()):
            reader.feed(part)
        stats = reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.plaintext_size == TOTAL
    assert out_hash.hexdigest() == source_hash.hexdigest()
    assert peak < LIMIT, f"peak {peak / 2**20:.1f} MiB for a 64 MiB {kind} stream"
