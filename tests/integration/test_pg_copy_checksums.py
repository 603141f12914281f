"""Table checksums over pg_dump's COPY text (v5 ``pg-copy-xxh3-framed128/v5``, the default, and v4
``pg-copy-xxh3-stream128/v4``, which stored backups use: every test runs for both; v3's per-row sums are
what the order-independent re-check uses): derived from pg_dump's COPY stream at backup time, recomputed
client-side from ``COPY ... TO STDOUT`` of the restored copy, against the machine's PostgreSQL.

The two sides must see byte-identical row text on every type whose text form depends on session settings
(floats, timestamps with time zone, intervals, bytea, money, regclass) or on escaping (backslashes, tabs,
newlines, arrays, NULLs) even when the source, the restore and the verifier sessions have different
defaults; and a single changed byte or row must show.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envsteward.adapters import pg_checksums
from envsteward.adapters.postgres import PostgresClient
from envsteward.backup.manifest import TableChecksum
from envsteward.backup.sources import pg_archive
from envsteward.backup.sources import postgres as pg_source
from envsteward.backup.sources.postgres import (
    PostgresBackupSource,
    PostgresRestoreTarget,
    compare_tables,
    database_table_summaries,
    order_suspects,
    reorder_check,
)
from envsteward.errors import EnvstewardError
from tests.fixtures.databases import postgres_dsn

SENSITIVE_SCHEMA = r"""
CREATE SCHEMA "Odd Schema";
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.kinds (
    id int PRIMARY KEY,
    gone text,
    f4 real, f8 double precision, num numeric, cash money,
    tstz timestamptz, ts timestamp, d date, tm time, tmtz timetz, iv interval,
    raw bytea, words text[], grid int[][], body text, js jsonb, u uuid, addr inet, m public.mood,
    rc regclass,
    twice numeric GENERATED ALWAYS AS (num * 2) STORED
);
ALTER TABLE public.kinds DROP COLUMN gone;
CREATE TABLE "Odd Schema"."Mixed.Case Table" (id int, "tab	col" text);
INSERT INTO public.kinds (id, f4, f8, num, cash, tstz, ts, d, tm, tmtz, iv, raw, words, grid, body, js, u,
                          addr, m, rc) VALUES
    (1, 0.1, 0.1, 0.1, 12.34, '2024-02-29 23:59:59.123456+05:30', '2024-02-29 23:59:59.5', '2024-02-29',
     '23:59:59.999999', '10:00:00-03', '1 year 2 mons -3 days 04:05:06.789', '\x00ff5c0a09'::bytea,
     ARRAY['a b', 'quote"d', 'back\slash', NULL, ''], '{{1,2},{3,NULL}}',
     E'tab\there\nnewline\r\nback\\slash \\N not null', '{"k": [1, 2.5, null], "s": "\u00e9"}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', 'happy', 'public.kinds'),
    (2, 'NaN', '-Infinity', 'NaN', -0.01, '1970-01-01 00:00:00+00', '0001-01-01 00:00:00 BC', 'infinity',
     '00:00', '00:00+14', '-178000000 years', ''::bytea, '{}', '{}', '', 'null', NULL, '::1', 'sad',
     '"Odd Schema"."Mixed.Case Table"'),
    (3, 3.4028235e38, 1e-300, 123456789012345678901234567890.123456789, 0, '2262-04-11 23:47:16.854775+00',
     NULL, NULL, NULL, NULL, '1 mon 0.000001 sec', '\x5c5c'::bytea, ARRAY[E'multi\nline'], NULL,
     E'\\.', NULL, NULL, NULL, NULL, NULL),
    (4, -0, -0.0, -0.000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL),
    (5, -0, -0.0, -0.000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL);
INSERT INTO "Odd Schema"."Mixed.Case Table" VALUES (1, 'x'), (1, 'x'), (2, E'\\');
CREATE TABLE public.empty_one (id int);
CREATE TABLE public.no_columns ();
INSERT INTO public.no_columns DEFAULT VALUES;
INSERT INTO public.no_columns DEFAULT VALUES;
"""

HOSTILE_DEFAULTS = (
    ("TimeZone", "Pacific/Chatham"),
    ("DateStyle", "SQL, DMY"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "-15"),
    ("bytea_output", "escape"),
    ("search_path", '"Odd Schema", public'),
)
"""Per-database defaults that would change the text of every sensitive value above if not pinned."""


@pytest.fixture(autouse=True, params=[pg_checksums.FRAMED_ALGORITHM, pg_checksums.STREAM_ALGORITHM])
def family(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The order-dependent family the dumps record: v5 (the default) and v4 (stored backups)."""
    family = str(request.param)
    monkeypatch.setattr(pg_source, "DUMP_CHECKSUM_FAMILY", family)
    return family


@pytest.fixture
def databases(postgres_dsn_base: str) -> Iterator[tuple[str, str]]:
    """A seeded source database and an empty restore target, both with hostile session defaults."""
    names = [f"envsteward_v3_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("src", "dst")]
    with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            for setting, value in HOSTILE_DEFAULTS:
                # search_path is a list: its value goes in as written, the others as one literal
                rendered = sql.SQL(value) if setting == "search_path" else sql.Literal(value)
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(name), sql.Identifier(setting), rendered
                    )
                )
    try:
        with psycopg.connect(postgres_dsn(names[0]), autocommit=True) as conn:
            conn.execute(SENSITIVE_SCHEMA)
        yield postgres_dsn(names[0]), postgres_dsn(names[1])
    finally:
        with psycopg.connect(postgres_dsn_base, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def dump(dsn: str) -> tuple[bytes, tuple[TableChecksum, ...]]:
    with PostgresBackupSource("v3", dsn).dump() as stream:
        data = b"".join(stream)
    assert stream.complete
    assert stream.facts["checksum_source"] == "dump stream"
    assert stream.tables is not None
    return data, stream.tables


VIA = pytest.mark.parametrize("psql_min_pages", [0, 10**9], ids=["via-psql", "via-driver"])
"""The verifier reads big tables through psql and small ones over the driver: both must give the same."""


@VIA
def test_dump_side_and_verify_side_agree_on_every_sensitive_type(
    databases: tuple[str, str], psql_min_pages: int, family: str
) -> None:
    source, target = databases
    data, tables = dump(source)
    by_name = {table.name: table for table in tables}
    assert set(by_name) == {
        "public.kinds",
        "Odd Schema.Mixed.Case Table",
        "public.empty_one",
        "public.no_columns",
    }
    assert [by_name[name].rows for name in sorted(by_name)] == [3, 0, 5, 2]
    algorithm = tables[0].algorithm
    assert algorithm is not None
    assert algorithm.startswith(family + ";")

    # the source itself, read back through COPY TO STDOUT by a session with hostile defaults
    read = database_table_summaries(PostgresClient(source), tables, psql_min_pages=psql_min_pages)
    assert compare_tables(tables, read) == []

    # restored by pg_restore into a database with hostile defaults, then verified
    restore = PostgresRestoreTarget(target)
    restore.expected_tables = tables
    report = restore.restore(iter([data]))
    assert report.tables == tables
    read = database_table_summaries(PostgresClient(target), tables, psql_min_pages=psql_min_pages)
    assert compare_tables(tables, read) == []


def test_the_pinned_settings_are_what_makes_the_text_identical(
    databases: tuple[str, str], family: str
) -> None:
    """Without the pinned settings (hostile defaults in force), the same table hashes differently: the
    settings are load-bearing, and the test above would catch a missing one."""
    source, _target = databases
    _data, tables = dump(source)
    kinds = next(table for table in tables if table.name == "public.kinds")
    with psycopg.connect(source, autocommit=True) as conn:
        unpinned = pg_checksums.copy_table_sum(conn, "public", "kinds", family=family)
    assert unpinned.rows == kinds.rows
    assert unpinned.checksum != kinds.checksum


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE public.kinds SET body = body || 'x' WHERE id = 1",  # one byte more
        "UPDATE public.kinds SET raw = '\\x00ff5c0a08'::bytea WHERE id = 1",  # one bit of one byte
        "UPDATE public.kinds SET f8 = 0.1000000000000001 WHERE id = 1",  # the last float digit
        "UPDATE public.kinds SET tstz = tstz + interval '1 microsecond' WHERE id = 1",
        'DELETE FROM "Odd Schema"."Mixed.Case Table" WHERE id = 1 AND ctid = '
        '(SELECT min(ctid) FROM "Odd Schema"."Mixed.Case Table" WHERE id = 1)',  # one of two duplicates
        "UPDATE public.kinds SET id = 6 WHERE id = 5",  # one row replaced by another, same count
    ],
)
@VIA
def test_one_changed_byte_or_row_of_the_restored_copy_is_detected(
    databases: tuple[str, str], change: str, psql_min_pages: int
) -> None:
    source, target = databases
    data, tables = dump(source)
    PostgresRestoreTarget(target, summarize=False).restore(iter([data]))
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(change)
    read = database_table_summaries(PostgresClient(target), tables, psql_min_pages=psql_min_pages)
    problems = compare_tables(tables, read)
    assert len(problems) == 1, problems
    assert "content checksum" in problems[0] or "rows restored" in problems[0]


def test_a_psql_failure_is_an_error_not_a_mismatch(databases: tuple[str, str]) -> None:
    source, _target = databases
    _data, tables = dump(source)
    with pytest.raises(EnvstewardError, match="psql failed"):
        database_table_summaries(PostgresClient(source), tables, psql="false", psql_min_pages=0)


def test_a_table_missing_from_the_restored_copy_is_reported(databases: tuple[str, str]) -> None:
    source, target = databases
    data, tables = dump(source)
    PostgresRestoreTarget(target, summarize=False).restore(iter([data]))
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("DROP TABLE public.empty_one")
    problems = compare_tables(tables, database_table_summaries(PostgresClient(target), tables))
    assert problems == ["table public.empty_one is missing from the restored data"]


# ---------------------------------------------------------------------------------------------------------
# v4 is order-dependent: a reordered but equal table is re-checked order-independently, never a false failure
# ---------------------------------------------------------------------------------------------------------

REORDER = (
    "UPDATE public.kinds SET id = id WHERE id = 1"  # a new row version: row 1 now comes after the others
)


def _restored(databases: tuple[str, str], change: str | None) -> tuple[str, bytes, tuple[TableChecksum, ...]]:
    source, target = databases
    data, tables = dump(source)
    PostgresRestoreTarget(target, summarize=False, single_transaction=True).restore(iter([data]))
    if change is not None:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(change)
    return target, data, tables


@VIA
def test_a_single_transaction_restore_keeps_the_dump_order(
    databases: tuple[str, str], psql_min_pages: int
) -> None:
    target, _data, tables = _restored(databases, None)
    read = database_table_summaries(PostgresClient(target), tables, psql_min_pages=psql_min_pages)
    assert compare_tables(tables, read) == []
    assert order_suspects(tables, read) == []


@VIA
def test_a_reordered_but_equal_table_mismatches_then_passes_the_order_independent_recheck(
    databases: tuple[str, str], psql_min_pages: int
) -> None:
    target, data, tables = _restored(databases, REORDER)
    read = database_table_summaries(PostgresClient(target), tables, psql_min_pages=psql_min_pages)
    assert compare_tables(tables, read) == [
        "table public.kinds: same row count (5) but different content checksum"
    ]
    assert order_suspects(tables, read) == ["public.kinds"]
    reads: list[int] = []

    def read_dump(sink: Callable[[bytes], None]) -> None:
        reads.append(1)
        for start in range(0, len(data), 4096):
            sink(data[start : start + 4096])

    assert reorder_check(PostgresClient(target), tables, ["public.kinds"], read_dump) == {
        "public.kinds": None
    }
    assert reads == [1]


@pytest.mark.parametrize(
    "change",
    [
        # reordered AND one byte more
        "UPDATE public.kinds SET id = id WHERE id = 1;"
        " UPDATE public.kinds SET body = body || 'x' WHERE id = 2",
        "UPDATE public.kinds SET id = 6 WHERE id = 5",  # one row replaced by another, same count
    ],
)
def test_the_order_independent_recheck_still_fails_a_changed_row(
    databases: tuple[str, str], change: str
) -> None:
    target, data, tables = _restored(databases, change)
    read = database_table_summaries(PostgresClient(target), tables)
    assert order_suspects(tables, read) == ["public.kinds"]
    verdict = reorder_check(PostgresClient(target), tables, ["public.kinds"], lambda sink: sink(data))
    assert verdict == {"public.kinds": "different rows (an order-independent re-check of every row agrees)"}


def test_the_recheck_fails_when_the_dump_does_not_match_the_manifest(databases: tuple[str, str]) -> None:
    target, data, tables = _restored(databases, REORDER)
    lying = tuple(
        t.model_copy(update={"checksum": "f" * 32}) if t.name == "public.kinds" else t for t in tables
    )
    verdict = reorder_check(PostgresClient(target), lying, ["public.kinds"], lambda sink: sink(data))
    assert verdict == {"public.kinds": "the backup's data does not match its own manifest"}


def test_the_drill_scratch_passes_a_reordered_table_with_a_note_and_fails_a_changed_one(
    databases: tuple[str, str],
) -> None:
    from types import SimpleNamespace

    from envsteward.drill.scratch import PostgresScratch

    source, target = databases
    data, tables = dump(source)

    database = psycopg.conninfo.conninfo_to_dict(target)["dbname"]
    scratch = PostgresScratch(
        psycopg.conninfo.make_conninfo(target, dbname="postgres"), str(database), password=None
    )

    scratch.restore_target().restore(iter([data]))
    manifest: Any = SimpleNamespace(tables=tables)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(REORDER)
    scratch.read_dump = lambda sink: sink(data)
    rows = {row.name: row for row in scratch.verify(manifest, None)}  # type: ignore[arg-type]
    assert all(row.ok for row in rows.values()), rows
    assert "another physical order" in rows["public.kinds"].actual
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("UPDATE public.kinds SET body = body || 'x' WHERE id = 2")
    rows = {row.name: row for row in scratch.verify(manifest, None)}  # type: ignore[arg-type]
    assert not rows["public.kinds"].ok
    assert "different rows" in rows["public.kinds"].actual
    assert all(row.ok for name, row in rows.items() if name != "public.kinds")


# ---------------------------------------------------------------------------------------------------------
# a table big enough for the scanner's fast path (v5: one chunk per row, hashed in place)
# ---------------------------------------------------------------------------------------------------------

BIG_ROWS = 30_000
BIG_SCHEMA = """
CREATE TABLE public.big (id int PRIMARY KEY, body text, n numeric);
INSERT INTO public.big
SELECT g, repeat(chr(97 + g % 26), (g * 37) % 700) || E'\\t\\n', g / 7.0
FROM generate_series(1, 30000) AS g;
INSERT INTO public.big VALUES (30001, repeat('w', 70000), NULL);
"""
"""BIG_ROWS rows of 5 to ~720 bytes (chunk lengths whose low byte is 0x0a included), escapes, and one wide
row."""


@pytest.mark.parametrize(
    "change",
    [
        None,
        "UPDATE public.big SET body = body || 'x' WHERE id = 20000",  # one byte more
        "UPDATE public.big SET n = 0 WHERE id = 25000",  # one value, same width
        "DELETE FROM public.big WHERE id = 15000",  # one row fewer
        "UPDATE public.big SET id = 0 WHERE id = 29999",  # one row replaced by another, same count
    ],
)
def test_a_big_table_hashed_in_place_agrees_with_the_verifier_and_one_change_shows(
    databases: tuple[str, str], change: str | None, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = databases
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(BIG_SCHEMA)
    framed_here: list[int] = []
    original = pg_archive.frame_lines

    def spy(text: Any, scratch: Any = None) -> Any:
        framed, count = original(text, scratch)
        framed_here.append(count)
        return framed, count

    monkeypatch.setattr(pg_archive, "frame_lines", spy)
    data, tables = dump(source)
    big = next(table for table in tables if table.name == "public.big")
    assert big.rows == BIG_ROWS + 1
    if family == pg_checksums.FRAMED_ALGORITHM:
        # pg_dump wrote one chunk per row: nearly every row was hashed in place, not framed by the scanner
        assert 0 < sum(framed_here) < BIG_ROWS // 10, sum(framed_here)
    PostgresRestoreTarget(target, summarize=False, single_transaction=True).restore(iter([data]))
    if change is not None:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(change)
    for psql_min_pages in (0, 10**9):
        read = database_table_summaries(PostgresClient(target), tables, psql_min_pages=psql_min_pages)
        problems = compare_tables(tables, read)
        if change is None:
            assert problems == []
        else:
            assert len(problems) == 1, problems
            assert problems[0].startswith("table public.big:"), problems
    if change is not None and "rows restored" not in problems[0]:
        # the order-independent re-check does not excuse a changed row
        verdict = reorder_check(PostgresClient(target), tables, ["public.big"], lambda sink: sink(data))
        assert verdict == {"public.big": "different rows (an order-independent re-check of every row agrees)"}
