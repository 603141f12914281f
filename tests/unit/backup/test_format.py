"""The backup object format: round trips, and every kind of tampering fails loudly with a clear message."""

from __future__ import annotations

import hashlib
import itertools
import os
import random

import pytest
import zstandard

from envsteward.backup.format import (
    MAGIC,
    BackupWriter,
    StreamHeader,
    check_chunk_size,
    derive_keys,
)
from envsteward.errors import ConfigurationError, IntegrityError

from ._streams import build_object, make_header, pieces, read_object, split_object

CHUNK = 1024


def _one_chunk_plaintext(chunk_size: int) -> bytes:
    """Incompressible bytes whose zstd frame is exactly ``chunk_size`` bytes (a single, full final chunk)."""
    rng = random.Random(7)
    length = chunk_size
    for _ in range(50):
        data = rng.randbytes(length)
        size = len(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data))
        if size == chunk_size:
            return data
        length -= size - chunk_size
    raise AssertionError("could not size the input")


@pytest.mark.parametrize(
    ("name", "plaintext", "expected_chunks"),
    [
        ("empty", b"", 1),
        ("one byte", b"x", 1),
        ("exactly one chunk", _one_chunk_plaintext(CHUNK), 1),
        ("many chunks", random.Random(1).randbytes(50 * CHUNK + 17), 51),
        ("compressible", b"INSERT INTO t VALUES (1, 'hello');\n" * 20000, None),
    ],
)
def test_round_trip(name: str, plaintext: bytes, expected_chunks: int | None) -> None:
    blob, key, header = build_object(plaintext, header=make_header(chunk_size=CHUNK))
    restored, stats = read_object(blob, key)
    assert restored == plaintext, name
    assert stats.plaintext_size == len(plaintext)
    assert stats.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert stats.ciphertext_size == len(blob)
    assert stats.ciphertext_sha256 == hashlib.sha256(blob).hexdigest()
    frames = split_object(blob, header).frames
    assert stats.chunks == len(frames)
    if expected_chunks is not None:
        assert len(frames) == expected_chunks
    # every data chunk is full, and only the last frame is final
    assert [frame[0] for frame in frames] == [0] * (len(frames) - 1) + [1]
    assert all(len(frame) == 5 + CHUNK + 16 for frame in frames[:-1])


def test_writer_stats_match_reader_stats() -> None:
    data = random.Random(3).randbytes(10_000) + b"a" * 100_000
    key = os.urandom(32)
    writer = BackupWriter(key, make_header(chunk_size=CHUNK))
    parts = [writer.header_bytes(), *writer.write(data[:5000]), *writer.write(data[5000:]), *writer.close()]
    assert writer.closed
    assert read_object(b"".join(parts), key)[1] == writer.stats
    assert writer.stats.plaintext_size == len(data)
    assert writer.stats.ciphertext_size == sum(map(len, parts))
    assert writer.stats.ciphertext_sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(b"more")


def test_reader_accepts_any_split_of_the_object() -> None:
    data = random.Random(5).randbytes(20 * CHUNK)
    blob, key, _ = build_object(data, header=make_header(chunk_size=CHUNK))
    rng = random.Random(11)
    for sizes in ([1], [7, 3, 4096], [len(blob)]):
        assert read_object(pieces(blob, itertools.cycle(sizes)), key)[0] == data
    assert read_object(pieces(blob, iter(lambda: rng.randint(1, 3000), None)), key)[0] == data


def test_highly_compressible_data_is_delivered_in_bounded_pieces() -> None:
    data = bytes(32 << 20)  # 32 MiB of zeros: one tiny compressed chunk expanding hugely
    blob, key, _ = build_object(data, piece=1 << 20)
    assert len(blob) < 64 << 10
    sizes: list[int] = []
    from envsteward.backup.format import BackupReader

    reader = BackupReader(lambda _h: key, lambda b: sizes.append(len(b)))
    reader.feed(blob)
    reader.close()
    assert sum(sizes) == len(data)
    assert max(sizes) <= 256 << 10


# -- tampering -------------------------------------------------------------------------------------


@pytest.fixture
def sample() -> tuple[bytes, bytes, StreamHeader, bytes]:
    data = random.Random(9).randbytes(6 * CHUNK + 100)
    blob, key, header = build_object(data, header=make_header(chunk_size=CHUNK))
    assert len(split_object(blob, header).frames) == 7
    return blob, key, header, data


def _flip(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ mask]) + blob[offset + 1 :]


def _expect(blob: bytes, key: bytes, pattern: str) -> list[bytes]:
    delivered: list[bytes] = []
    with pytest.raises(IntegrityError, match=pattern):
        read_object(blob, key, delivered)
    return delivered


def test_flipped_byte_anywhere_fails(sample: tuple[bytes, bytes, StreamHeader, bytes]) -> None:
    blob, key, header, _ = sample
    head_len = len(header.encode())
    frame_len = 5 + CHUNK + 16
    cases = {
        0: "bad magic",
        8: "unsupported format version",
        9: "reserved flags",
        20: "chunk 0 .*authentication failed",  # salt: derived key changes
        head_len - 3: "chunk 0 .*authentication failed",  # wrapped key bytes: header digest changes
        head_len: r"chunk 0 \(byte offset \d+\) \(final\): authentication failed",  # data -> final
        head_len + 3: "chunk 0 .*length",
        head_len + 5 + 100: r"chunk 0 \(byte offset \d+\): authentication failed",
        head_len + 2 * frame_len + 5 + CHUNK + 3: r"chunk 2 .*authentication failed",  # inside the tag
        len(blob) - 1: r"chunk 6 .*\(final\): authentication failed",
    }
    for offset, pattern in cases.items():
        _expect(_flip(blob, offset), key, pattern)
    _expect(_flip(blob, head_len, 0x80), key, "chunk 0 .*unknown frame type 0x80")


def test_frame_type_flip_between_data_and_final_fails(
    sample: tuple[bytes, bytes, StreamHeader, bytes],
) -> None:
    blob, key, header, _ = sample
    split = split_object(blob, header)
    as_final = [bytes([1]) + split.frames[0][1:], *split.frames[1:]]
    _expect(split.join(as_final), key, r"chunk 0 .*\(final\): authentication failed")
    last = split.frames[-1]
    padded_last = [*split.frames[:-1], bytes([0]) + last[1:]]
    _expect(split.join(padded_last), key, r"chunk 6 .*data chunk length")


def test_truncation_at_every_boundary_fails(sample: tuple[bytes, bytes, StreamHeader, bytes]) -> None:
    blob, key, header, _ = sample
    split = split_object(blob, header)
    for keep in range(len(split.frames)):
        _expect(split.join(split.frames[:keep]), key, "truncated.*without the final chunk")
    _expect(blob[:-1], key, "truncated.*incomplete frame")
    _expect(blob[:20], key, "truncated.*header is incomplete")
    _expect(b"", key, "truncated")


def test_reordered_duplicated_and_dropped_chunks_fail(
    sample: tuple[bytes, bytes, StreamHeader, bytes],
) -> None:
    blob, key, header, _ = sample
    f = split_object(blob, header).frames
    head = split_object(blob, header)
    _expect(head.join([f[1], f[0], *f[2:]]), key, "chunk 0 .*authentication failed")
    _expect(head.join([f[0], f[2], f[1], *f[3:]]), key, "chunk 1 .*authentication failed")
    _expect(head.join([f[0], f[0], *f[1:]]), key, "chunk 1 .*authentication failed")
    _expect(head.join([f[0], *f[2:]]), key, "chunk 1 .*authentication failed")
    _expect(head.join(f[:-1]), key, "without the final chunk")


def test_chunk_spliced_from_another_object_fails_even_under_the_same_data_key() -> None:
    key = os.urandom(32)
    data = random.Random(2).randbytes(4 * CHUNK)
    a, _, header_a = build_object(data, key=key, header=make_header("dev/db/a", CHUNK))
    b, _, header_b = build_object(data, key=key, header=make_header("dev/db/b", CHUNK))
    fa, fb = split_object(a, header_a), split_object(b, header_b)
    spliced = fa.join([fa.frames[0], fb.frames[1], *fa.frames[2:]])
    _expect(spliced, key, "chunk 1 .*authentication failed")
    # the whole frame list of b under a's header, and a header swapped in front of b's frames
    _expect(fa.join(fb.frames), key, "chunk 0 .*authentication failed")
    _expect(fb.join(fa.frames), key, "chunk 0 .*authentication failed")


def test_trailing_garbage_fails(sample: tuple[bytes, bytes, StreamHeader, bytes]) -> None:
    blob, key, header, _ = sample
    _expect(blob + b"\x00", key, "unexpected data after the final chunk")
    last = split_object(blob, header).frames[-1]
    _expect(blob + last, key, "unexpected data after the final chunk")
    # garbage arriving in a later piece is caught too
    delivered: list[bytes] = []
    with pytest.raises(IntegrityError, match="after the final chunk"):
        read_object([blob, b"junk"], key, delivered)


def test_wrong_key_fails_before_any_plaintext(sample: tuple[bytes, bytes, StreamHeader, bytes]) -> None:
    blob, _, _, _ = sample
    delivered = _expect(blob, os.urandom(32), "chunk 0 .*authentication failed.*key is wrong")
    assert delivered == []


def test_plaintext_only_from_authenticated_chunks(sample: tuple[bytes, bytes, StreamHeader, bytes]) -> None:
    blob, key, header, data = sample
    split = split_object(blob, header)
    frames = list(split.frames)
    frames[3] = _flip(frames[3], 50)
    delivered = _expect(split.join(frames), key, "chunk 3")
    # incompressible data: chunks 0..2 hold about 3 chunks of plaintext, nothing from chunk 3 on
    assert data.startswith(b"".join(delivered))
    assert len(b"".join(delivered)) <= 3 * CHUNK


def test_known_plaintext_is_not_visible_in_the_object() -> None:
    row = b"4242\tcustomer-SECRET-ROW@example.com\t1999-12-31\n"
    data = b"".join(row.replace(b"4242", str(i).encode()) for i in range(5000)) + row * 500
    blob, _, _ = build_object(data)
    assert b"SECRET-ROW" not in blob
    compressed = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    for start in range(0, len(compressed) - 24, max(1, len(compressed) // 50)):
        assert compressed[start : start + 24] not in blob


# -- keys and header -------------------------------------------------------------------------------


def test_keys_are_derived_per_salt_and_purpose() -> None:
    key = os.urandom(32)
    a, b = derive_keys(key, b"\x00" * 32), derive_keys(key, b"\x01" * 32)
    assert len({a.chunk_key, a.mac_key, b.chunk_key, b.mac_key, key}) == 5
    assert key.hex() not in repr(a)
    assert "redacted" in repr(a)
    with pytest.raises(IntegrityError, match="32 bytes"):
        derive_keys(b"short", b"\x00" * 32)


def test_every_header_gets_a_fresh_salt() -> None:
    assert make_header().salt != make_header().salt


def test_header_repr_and_limits() -> None:
    header = make_header()
    assert "wrapped" not in repr(header)
    with pytest.raises(ConfigurationError, match="key_id is 2000 bytes"):
        StreamHeader.new(backup_id="x", key_id="k" * 2000, wrapped_key=b"w", chunk_size=CHUNK)
    with pytest.raises(ConfigurationError, match="chunk_size must be between"):
        check_chunk_size(0)
    with pytest.raises(ConfigurationError, match="zstd level"):
        BackupWriter(os.urandom(32), header, zstd_level=0)
    assert header.encode().startswith(MAGIC)


def test_not_a_backup_object() -> None:
    _expect(b"PK\x03\x04 a zip file, not a backup", os.urandom(32), "not an envsteward backup object")
