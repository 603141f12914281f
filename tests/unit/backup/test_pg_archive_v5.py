"""Table checksums v5 (``pg-copy-xxh3-framed128/v5``): XXH3-128 over each row framed as pg_dump's custom
format frames it (a zero byte, the line's length as 4 bytes little-endian, the line with its newline).

The scanner hashes the archive's bytes in place where pg_dump wrote one chunk per row (the fast path) and
builds the framed form itself otherwise (the slow path); both must give the digest of the DEFINITION, which
is written out independently here (:func:`v5`), whatever the chunking, the piece size, or where a piece cuts
a chunk header. Archives are built byte by byte by ``test_pg_archive.build`` (pure: no server); the real
pg_dump output is covered by tests/integration/test_pg_copy_checksums.py.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import xxhash

from envsteward.adapters import pg_checksums
from envsteward.adapters.pg_checksums import FRAMED_ALGORITHM, FramedSum, frame_lines
from envsteward.backup.sources import pg_archive
from envsteward.backup.sources.pg_archive import ArchiveScanner
from envsteward.errors import IntegrityError
from tests.unit.backup.test_pg_archive import AWKWARD, INT_SIZE, ROWS, _int, _pieces, build, irregular_cuts


def v5(rows: Iterable[bytes]) -> str:
    """The definition, row by row in plain Python: no numpy, no scanner."""
    digest = xxhash.xxh3_128()
    for row in rows:
        line = row + b"\n"
        digest.update(b"\x00" + len(line).to_bytes(4, "little") + line)
    return digest.hexdigest()


def scan(pieces: Iterable[bytes], **kwargs: object) -> list[tuple[str, int, str]]:
    scanner = ArchiveScanner(**kwargs)  # type: ignore[arg-type]
    for piece in pieces:
        scanner.feed(piece)
    return [(t.name, t.rows, t.checksum) for t in scanner.finish()]


TABLES = {
    (b"public", b"awkward"): AWKWARD,
    (b"public", b"t"): [*ROWS, b"\\\\.", b"\\.x", b""],  # an escaped "\." and an empty line are rows
    (b"public", b"empty"): [],
}
WANT = sorted((f"{ns.decode()}.{tag.decode()}", len(rows), v5(rows)) for (ns, tag), rows in TABLES.items())


SMALL = {(b"public", b"t"): TABLES[b"public", b"t"], (b"public", b"wide"): AWKWARD[3900:4002]}
"""For byte-sized pieces (a megabyte fed byte by byte is slow and no more telling)."""


class _SlowRows:
    """Counts the rows the scanner framed itself (the slow path) instead of hashing in place."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        original = pg_archive.frame_lines

        def spy(text: bytes, scratch: object = None) -> tuple[object, int]:
            framed, count = original(text, scratch)  # type: ignore[arg-type]
            self.rows += count
            return framed, count

        monkeypatch.setattr(pg_archive, "frame_lines", spy)


def test_the_default_stream_hash_is_v5() -> None:
    assert scan([build(TABLES)]) == WANT
    from envsteward.backup.sources import postgres

    assert postgres.DUMP_CHECKSUM_FAMILY == FRAMED_ALGORITHM


def test_the_v5_digest_of_a_fixed_table_is_pinned() -> None:
    # stored v5 backups must keep verifying: the definition may never drift
    assert v5(AWKWARD) == "08e408293911b6691ef9b9fec56ceb55"
    assert scan([build({(b"public", b"awkward"): AWKWARD})]) == [
        ("public.awkward", len(AWKWARD), "08e408293911b6691ef9b9fec56ceb55")
    ]


@pytest.mark.parametrize("piece", [1, 7, 4093, 65537, 1 << 20])
def test_one_chunk_per_row_is_hashed_in_place_and_gives_the_definition(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = _SlowRows(monkeypatch)
    data = build(TABLES, chunking="row")
    if piece < 100:  # byte-sized pieces: everything but the 655 kB row (read one by one anyway)
        data = build(SMALL, chunking="row")
        want = sorted((f"public.{tag.decode()}", len(rows), v5(rows)) for (_ns, tag), rows in SMALL.items())
        assert scan(data[i : i + piece] for i in range(0, len(data), piece)) == want
        return
    assert scan(data[i : i + piece] for i in range(0, len(data), piece)) == WANT
    total = sum(len(rows) for rows in TABLES.values())
    if piece >= 65537:
        # the fast path took (nearly) everything: only the first rows of each piece are read one by one
        assert slow.rows < total // 4, slow.rows


@pytest.mark.parametrize("chunking", ["one", "tiny"])
@pytest.mark.parametrize("piece", [1, 7, 4093, 1 << 20])
def test_any_other_chunking_is_framed_by_the_scanner_and_gives_the_same_digest(
    chunking: str, piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = SMALL if piece < 100 else TABLES
    want = sorted(
        (f"{ns.decode()}.{tag.decode()}", len(rows), v5(rows)) for (ns, tag), rows in tables.items()
    )
    slow = _SlowRows(monkeypatch)
    data = build(tables, chunking=chunking)
    assert scan(data[i : i + piece] for i in range(0, len(data), piece)) == want
    assert slow.rows == sum(len(rows) for rows in tables.values())  # no chunk was a row: all framed here


def test_8_byte_integers_take_the_slow_path_and_give_the_same_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(INT_SIZE, "bytes", 8)
    slow = _SlowRows(monkeypatch)
    data = build(TABLES)
    assert scan([data]) == WANT
    assert scan(_pieces(data, list(range(0, len(data), 65537)))) == WANT
    assert slow.rows == 2 * sum(len(rows) for rows in TABLES.values())


def test_chunk_headers_split_at_every_offset_across_pieces() -> None:
    data = build(TABLES)
    first_block = data.index(b"\x01" + _int(10))
    for cut in range(first_block, first_block + 80):
        assert scan(_pieces(data, [cut])) == WANT, cut
    # every header of a run of rows past the one-by-one reader's budget, cut at each of its 5 bytes
    late = data.index(b"%d\tafter\t" % 100) - 5
    for offset in range(6):
        assert scan(_pieces(data, [late + offset, late + offset + 3])) == WANT, offset
    irregular = irregular_cuts(first_block, len(data))
    assert scan(_pieces(data, irregular)) == WANT


def test_the_end_of_data_line_alone_in_a_chunk_is_not_hashed_as_a_row() -> None:
    rows = [b"%d\tr" % i for i in range(500)]
    data = build({(b"public", b"t"): rows})
    split = data.replace(_int(5) + b"\\.\n\n\n", _int(3) + b"\\.\n" + _int(2) + b"\n\n")
    assert split != data
    assert scan([split]) == scan([data]) == [("public.t", 500, v5(rows))]


def _corrupt_row_chunk(data: bytes, row: bytes, delta: int) -> bytes:
    """``data`` with the chunk length of ``row`` (one chunk per row) changed by ``delta``."""
    payload = row + b"\n"
    at = data.index(_int(len(payload)) + payload)
    return data[:at] + _int(len(payload) + delta) + data[at + 5 :]


@pytest.mark.parametrize("row_index", [3, 1000, 3900])
@pytest.mark.parametrize("delta", [-1, 1, 5, -4])
def test_a_broken_chunk_chain_raises_naming_the_table(row_index: int, delta: int) -> None:
    data = _corrupt_row_chunk(build({(b"public", b"awkward"): AWKWARD}), AWKWARD[row_index], delta)
    for pieces in ([data], _pieces(data, list(range(0, len(data), 4093)))):
        with pytest.raises(IntegrityError, match=r"public\.awkward"):
            scan(pieces)


def test_two_chunks_merged_into_one_are_a_nul_byte_naming_the_table() -> None:
    # the chain stays intact, but the second chunk's header is now payload: NUL bytes in COPY text
    data = build({(b"public", b"awkward"): AWKWARD})
    first, second = AWKWARD[2000] + b"\n", AWKWARD[2001] + b"\n"
    at = data.index(_int(len(first)) + first + _int(len(second)) + second)
    merged = data[:at] + _int(len(first) + 5 + len(second)) + data[at + 5 :]
    with pytest.raises(IntegrityError, match=r"NUL byte .*public\.awkward"):
        scan([merged])


@pytest.mark.parametrize("chunking", ["row", "tiny"])
def test_a_nul_byte_in_row_text_raises_naming_the_table(chunking: str) -> None:
    rows = [b"%d\tok" % i for i in range(2000)]
    rows[1500] = b"1500\tn\x00l"
    with pytest.raises(IntegrityError, match=r"NUL byte .*public\.nul"):
        scan([build({(b"public", b"nul"): rows}, chunking=chunking)])


@pytest.mark.parametrize("chunking", ["row", "one", "tiny"])
def test_a_missing_end_of_data_line_raises_naming_the_table(chunking: str) -> None:
    rows = [b"%d\tr" % i for i in range(300)]
    data = build({(b"public", b"cut short"): rows}, chunking=chunking)
    if chunking == "row":
        broken = data.replace(_int(5) + b"\\.\n\n\n", _int(5) + b"9\tz\n\n")
    else:
        broken = data.replace(b"\\", b"9")
    assert broken != data
    with pytest.raises(IntegrityError, match=r"public\.cut short.*end-of-data"):
        scan([broken])


def test_rows_after_the_end_of_data_line_raise_naming_the_table() -> None:
    rows = [b"%d\tr" % i for i in range(300)]
    data = build({(b"public", b"t"): rows})
    broken = data.replace(_int(5) + b"\\.\n\n\n", _int(5) + b"\\.\nx\n")
    with pytest.raises(IntegrityError, match=r"after the end-of-data line of table public\.t"):
        scan([broken])


def test_the_row_sums_for_the_recheck_come_with_the_v5_hash() -> None:
    scanner = ArchiveScanner(stream=True, rows=True, only={"public.awkward"})
    data = build(TABLES)
    for piece in _pieces(data, list(range(0, len(data), 65537))):
        scanner.feed(piece)
    assert [(t.name, t.rows, t.checksum) for t in scanner.finish("stream")] == [
        ("public.awkward", len(AWKWARD), v5(AWKWARD))
    ]
    acc = pg_checksums.RowSum()
    acc.add_lines(AWKWARD)
    assert [t.checksum for t in scanner.finish("rows")] == [acc.checksum]


# -- the verifier's side: COPY TO STDOUT text framed with numpy ------------------------------------------


@pytest.mark.parametrize("piece", [1, 3, 100, 4096, 1 << 20])
def test_the_verifier_frames_copy_text_in_any_pieces_to_the_same_digest(piece: int) -> None:
    text = b"".join(row + b"\n" for row in AWKWARD)
    acc = FramedSum()
    for start in range(0, len(text), piece):
        acc.update(text[start : start + piece])
    assert (acc.rows, acc.checksum, acc.pending) == (len(AWKWARD), v5(AWKWARD), b"")


def test_the_verifier_keeps_a_partial_last_line_pending() -> None:
    acc = FramedSum()
    acc.update(b"1\ta\n2\tb")
    assert (acc.rows, acc.pending) == (1, b"2\tb")


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 5000])
def test_frame_lines_is_the_definition_below_and_above_the_numpy_threshold(count: int) -> None:
    rows = AWKWARD[:count]
    framed, rows_seen = frame_lines(b"".join(row + b"\n" for row in rows))
    expected = b"".join(b"\x00" + (len(r) + 1).to_bytes(4, "little") + r + b"\n" for r in rows)
    assert (bytes(framed), rows_seen) == (expected, count)


def test_frame_lines_refuses_text_without_its_last_newline() -> None:
    with pytest.raises(ValueError, match="newline"):
        frame_lines(b"1\ta\n2")


def test_every_client_side_family_is_known_to_the_verifier() -> None:
    text = pg_checksums.copy_algorithm("UTF8", "C", prefix=FRAMED_ALGORITHM)
    assert pg_checksums.algorithm_family(text) == FRAMED_ALGORITHM
    assert pg_checksums.copy_algorithm_settings(text) is not None
    assert pg_checksums.as_family(text, pg_checksums.COPY_ALGORITHM).startswith("pg-copy-xxh3-sum128/v3;")
    assert isinstance(pg_checksums.new_accumulator(FRAMED_ALGORITHM), FramedSum)
    with pytest.raises(ValueError, match="not a copy-text"):
        pg_checksums.new_accumulator("pg-md5-sum128/v2")
