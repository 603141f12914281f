"""The custom-format scanner behind table checksums v4 (stream hash) and v3 (per-row sum), on archives built
here byte by byte (pure: no server).

The builder writes what pg_dump 15 writes (archive 1.14, 4-byte integers, 8-byte offsets, offsets not set
as when writing to a pipe); the real pg_dump output is covered by tests/integration/test_pg_copy_checksums.py.
"""

from __future__ import annotations

import itertools

import pytest
import xxhash

from envsteward.adapters.pg_checksums import STREAM_ALGORITHM, RowSum
from envsteward.backup.sources.pg_archive import ArchiveScanner, UnsupportedArchive
from envsteward.errors import IntegrityError

INT_SIZE = {"bytes": 4}
"""The archive's integer size (pg_dump writes ``sizeof(int)``: 4 on every common platform)."""


def _int(value: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(INT_SIZE["bytes"], "little")


def _str(value: bytes | None) -> bytes:
    return _int(-1) if value is None else _int(len(value)) + value


def _entry(
    dump_id: int, desc: bytes, namespace: bytes, tag: bytes, copy: bytes | None, *, defn: bytes = b""
) -> bytes:
    return b"".join(
        [
            _int(dump_id),
            _int(1),
            _str(b"0"),
            _str(b"0"),
            _str(tag),
            _str(desc),
            _int(3),
            _str(defn or None),
            _str(None),
            _str(copy),
            _str(namespace),
            _str(None),
            _str(b"heap"),
            _str(b"postgres"),
            _str(b"false"),
            _str(b"1"),
            _str(None),
            b"\x01" + bytes(8),
        ]
    )


def build(
    tables: dict[tuple[bytes, bytes], list[bytes]],
    *,
    chunking: str = "row",
    version: tuple[int, int] = (1, 14),
    compression: int = 0,
    copy: bytes | None = b"COPY t (a) FROM stdin;\n",
    blob: bool = False,
) -> bytes:
    """An archive with one TABLE DATA entry per table (rows without newline), chunked per row, in one
    chunk, or in 3-byte chunks that split rows anywhere."""
    head = b"PGDMP" + bytes([version[0], version[1], 0, INT_SIZE["bytes"], 8, 1])
    head += bytes([compression]) if version[1] >= 15 else _int(compression)
    head += b"".join(_int(0) for _ in range(7)) + _str(b"db") + _str(b"15.20") + _str(b"15.20")
    entries = [_entry(1, b"ENCODING", b"", b"ENCODING", None, defn=b"SET client_encoding = 'UTF8';\n")]
    blocks = []
    for number, ((namespace, tag), rows) in enumerate(tables.items(), start=10):
        entries.append(_entry(number, b"TABLE DATA", namespace, tag, copy))
        payloads = [row + b"\n" for row in rows] + [b"\\.\n\n\n"]
        if chunking == "one":
            payloads = [b"".join(payloads)]
        elif chunking == "tiny":
            text = b"".join(payloads)
            payloads = [text[i : i + 3] for i in range(0, len(text), 3)]
        blocks.append(b"\x01" + _int(number) + b"".join(_int(len(p)) + p for p in payloads) + _int(0))
    if blob:
        entries.append(_entry(99, b"BLOBS", b"", b"BLOBS", None))
        blocks.insert(0, b"\x03" + _int(99) + _int(16401) + _int(4) + b"\x00\n\\." + _int(0) + _int(0))
    return head + _int(len(entries)) + b"".join(entries) + b"".join(blocks)


def scan(
    data: bytes, piece: int = 1 << 20, kind: str = "rows", **kwargs: object
) -> list[tuple[str, int, str]]:
    kwargs.setdefault("family", STREAM_ALGORITHM)
    scanner = ArchiveScanner(stream=True, rows=True, **kwargs)  # type: ignore[arg-type]
    for start in range(0, len(data), piece):
        scanner.feed(data[start : start + piece])
    return [(t.name, t.rows, t.checksum) for t in scanner.finish(kind)]


def expected(rows: list[bytes]) -> str:
    acc = RowSum()
    acc.add_lines(rows)
    return acc.checksum


def stream(rows: list[bytes]) -> str:
    """v4: XXH3-128 of the COPY text, every line with its newline, in order."""
    return xxhash.xxh3_128(b"".join(row + b"\n" for row in rows)).hexdigest()


ROWS = [b"1\tplain", b"2\t\\N", b"3\ttab\\there\\nnewline", b"", b"1\tplain", b"4\t\\\\."] + [
    b"%d\tx" % i for i in range(5, 300)
]
TABLES = {(b"public", b"t"): ROWS, (b"Odd Schema", b"Mixed.Case"): [b"a"], (b"public", b"empty"): []}


@pytest.mark.parametrize("chunking", ["row", "one", "tiny"])
@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_checksums_do_not_depend_on_chunking_or_piece_size(chunking: str, piece: int) -> None:
    result = scan(build(TABLES, chunking=chunking, blob=True), piece)
    assert result == [
        ("Odd Schema.Mixed.Case", 1, expected([b"a"])),
        ("public.empty", 0, expected([])),
        ("public.t", len(ROWS), expected(ROWS)),
    ]


# rows whose chunk length has a newline byte (10, 0x010a, 0x0a0a) in its length field, and widths that vary
WIDE = [b"x" * 9, b"y" * 265, b"z" * 2569, b"w" * 9] + [b"%d\t" % i + b"v" * (i % 700) for i in range(3000)]


@pytest.mark.parametrize("chunking", ["row", "one", "tiny"])
@pytest.mark.parametrize("piece", [1, 7, 4096, 65536, 1 << 20])
def test_stream_hashes_are_the_copy_text_whatever_the_chunking_or_piece_size(
    chunking: str, piece: int
) -> None:
    tables = {**TABLES, (b"public", b"wide"): WIDE}
    if piece < 4096:
        tables = TABLES  # tiny pieces over 3000 wide rows are slow and prove nothing more
    result = scan(build(tables, chunking=chunking, blob=True), piece, "stream")
    assert result == [
        ("Odd Schema.Mixed.Case", 1, stream([b"a"])),
        ("public.empty", 0, stream([])),
        ("public.t", len(ROWS), stream(ROWS)),
        *([("public.wide", len(WIDE), stream(WIDE))] if (b"public", b"wide") in tables else []),
    ]


def test_a_table_without_columns_is_one_empty_line_per_row() -> None:
    rows = [b""] * 200
    assert scan(build({(b"public", b"t"): rows}), kind="stream") == [("public.t", 200, stream(rows))]
    assert scan(build({(b"public", b"t"): rows})) == [("public.t", 200, expected(rows))]


def test_the_stream_hash_depends_on_order_the_row_sum_does_not() -> None:
    shuffled = {(b"public", b"wide"): list(reversed(WIDE))}
    ordered = {(b"public", b"wide"): WIDE}
    assert scan(build(shuffled), kind="stream") != scan(build(ordered), kind="stream")
    assert scan(build(shuffled)) == scan(build(ordered))


def test_one_changed_byte_changes_both_sums() -> None:
    changed = [*WIDE[:1500], WIDE[1500][:-1] + b"u", *WIDE[1501:]]
    for kind in ("stream", "rows"):
        assert scan(build({(b"public", b"t"): changed}), kind=kind) != scan(
            build({(b"public", b"t"): WIDE}), kind=kind
        )


def test_only_scans_the_tables_asked_for() -> None:
    data = build({**TABLES, (b"public", b"wide"): WIDE})
    assert scan(data, 4096, "stream", only={"public.wide"}) == [("public.wide", len(WIDE), stream(WIDE))]
    assert scan(data, 4096, "rows", only={"public.t"}) == [("public.t", len(ROWS), expected(ROWS))]


def test_a_nul_byte_in_row_text_is_hashed_not_dropped() -> None:
    # COPY text never holds one; if it did, the fast path's NUL trick must not lose it
    rows = [b"%d\x00nul" % i for i in range(500)]
    assert scan(build({(b"public", b"t"): rows}), kind="stream") == [("public.t", 500, stream(rows))]


def test_the_sum_is_order_independent_and_counts_duplicates() -> None:
    shuffled = {(b"public", b"t"): list(reversed(ROWS))}
    assert scan(build(shuffled)) == scan(build({(b"public", b"t"): ROWS}))
    assert expected([b"a", b"a"]) != expected([b"a"])
    assert expected([b"a", b"b"]) != expected([b"a", b"c"])


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"version": (1, 16)}, "archive version 1.16"),
        ({"compression": 6}, "compressed"),
        ({"version": (1, 15), "compression": 1}, "compressed"),
        ({"copy": None}, "INSERT statements"),
    ],
)
def test_archives_it_cannot_read_are_unsupported_not_wrong(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(UnsupportedArchive, match=reason):
        scan(build(TABLES, **kwargs))  # type: ignore[arg-type]


def test_archive_1_15_without_compression_is_read() -> None:
    assert scan(build(TABLES, version=(1, 15))) == scan(build(TABLES))


def test_a_truncated_archive_raises() -> None:
    data = build(TABLES)
    for cut in (len(data) - 1, len(data) - 5, len(data) // 2, 40):
        with pytest.raises(IntegrityError):
            scan(data[:cut])


def test_data_without_the_end_of_data_line_raises() -> None:
    data = build({(b"public", b"t"): [b"1"]}).replace(b"\\.\n\n\n", b"2\n\n\n\n")
    with pytest.raises(IntegrityError, match="end-of-data"):
        scan(data)


def test_not_a_custom_archive_raises() -> None:
    with pytest.raises(IntegrityError, match="PGDMP"):
        scan(b"-- plain SQL dump\n")


# Row widths whose chunk lengths need 1, 2 and 3 bytes, with newline bytes (0x0a) in every length byte
# position, and a run long enough that the vectorised reader (after _LOOP_CHUNKS rows) does the work.
AWKWARD = [b"%d\t" % i + b"r" * ((i * 37) % 300) for i in range(4000)] + [
    b"a" * 10,
    b"b" * 0x0A0A,
    b"c" * 0x0A000A,
    b"d" * 0x010A0A,
    *(b"%d\tafter\t" % i + b"s" * (i % 90) for i in range(2000)),
]


def irregular_cuts(start: int, end: int) -> list[int]:
    """Cut positions from ``start`` to ``end`` in steps of 1-7 bytes and two odd large sizes, repeated: a
    5-byte chunk header is split at every offset somewhere."""
    cuts, at = [], start
    for step in itertools.cycle((1, 2, 3, 4, 5, 6, 7, 8191, 131071)):
        at += step
        if at >= end:
            return cuts
        cuts.append(at)
    raise AssertionError("unreachable")


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _stream_of(pieces: list[bytes]) -> list[tuple[str, int, str]]:
    scanner = ArchiveScanner(stream=True, family=STREAM_ALGORITHM)
    for piece in pieces:
        scanner.feed(piece)
    return [(t.name, t.rows, t.checksum) for t in scanner.finish()]


def test_the_v4_stream_hash_of_stored_backups_is_unchanged() -> None:
    # The digest below was computed by the scanner before issue 16's fourth pass (commit 321229e, which
    # made v4 backups already stored): the faster reader must give the same bytes to XXH3 in the same order.
    data = build({(b"public", b"awkward"): AWKWARD})
    assert _stream_of([data]) == [("public.awkward", len(AWKWARD), "9de1351da9e8a100200132276e069065")]
    assert _stream_of([data])[0][2] == stream(AWKWARD)


def test_the_v4_stream_hash_does_not_depend_on_where_pieces_split_headers() -> None:
    data = build({(b"public", b"awkward"): AWKWARD, (b"public", b"t"): ROWS})
    want = _stream_of([data])
    first_block = data.index(b"\x01" + _int(10))
    # a cut at every byte of the first rows' chunk headers and payloads (headers split across reads),
    # then the rest in pieces of irregular sizes (5-byte headers split at every offset somewhere)
    for cut in range(first_block, first_block + 64):
        assert _stream_of(_pieces(data, [cut])) == want, cut
    for size in (4093, 65537, 1 << 20, 262147):
        cuts = list(range(first_block + 3, len(data), size))
        assert _stream_of(_pieces(data, cuts)) == want, size
    irregular = irregular_cuts(first_block, len(data))
    assert _stream_of(_pieces(data, irregular)) == want
    assert want[0] == ("public.awkward", len(AWKWARD), stream(AWKWARD))


def test_an_archive_with_8_byte_integers_gives_the_same_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = {(b"public", b"awkward"): AWKWARD, (b"public", b"t"): ROWS}
    want = _stream_of([build(tables)])
    monkeypatch.setitem(INT_SIZE, "bytes", 8)
    data = build(tables)
    assert _stream_of([data]) == want
    assert _stream_of(_pieces(data, list(range(0, len(data), 65537)))) == want
