"""Streamed partial segments (``wal stream``): served for the newest segment only, never by read-ahead,
dropped once the segment is archived whole. Filesystem stores and the local key provider (no mocks)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.adapters.objectstore_fs import FilesystemObjectStore
from envsteward.pitr.archive import (
    WalArchive,
    WalNotFoundError,
    drop_partials,
    fetch_wal,
    partial_object_key,
    push_partial,
    push_wal,
)
from envsteward.pitr.stream import slot_name

SIZE = 16 << 20


def segment(path: Path, number: int, fill: bytes = b"") -> Path:
    name = f"{1:08X}{0:08X}{number:08X}"
    header = struct.pack("<HHIQI4xQII", 0xD110, 0x0002, 1, number * SIZE, 0, 42, SIZE, 8192)
    data = header + fill + bytes(SIZE - len(header) - len(fill))
    target = path / name
    target.write_bytes(data)
    return target


@pytest.fixture
def archive(tmp_path: Path) -> WalArchive:
    return WalArchive(
        primary=FilesystemObjectStore(tmp_path / "primary"),
        dr=FilesystemObjectStore(tmp_path / "dr"),
        keys=LocalKeyProvider(tmp_path / "key"),
        prefix="dev/db.pitr/",
    )


def test_the_newest_partial_is_served_and_replaced(archive: WalArchive, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    first = segment(spool, 5, b"first")
    push_partial(archive, first, first.name)
    second = segment(spool, 5, b"second")
    push_partial(archive, second, second.name)  # the open segment grew: the object is replaced
    out = tmp_path / "RECOVERYXLOG"
    result = fetch_wal(archive, first.name, out, "dr")
    assert result.partial
    assert out.read_bytes() == second.read_bytes()
    with pytest.raises(WalNotFoundError):  # read-ahead never takes a partial
        fetch_wal(archive, first.name, out, allow_partial=False)


def test_a_partial_is_refused_when_a_later_segment_exists(archive: WalArchive, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    five = segment(spool, 5, b"x")
    push_partial(archive, five, five.name)
    six = segment(spool, 6, b"y")
    push_partial(archive, six, six.name)
    with pytest.raises(WalNotFoundError):  # a newer partial: five's cut-off copy would hide a gap
        fetch_wal(archive, five.name, tmp_path / "out")
    assert fetch_wal(archive, six.name, tmp_path / "out").partial
    seven = segment(spool, 7)
    push_wal(archive, seven)
    with pytest.raises(WalNotFoundError):  # seven is archived whole: six can't be the newest
        fetch_wal(archive, six.name, tmp_path / "out")


def test_whole_segments_win_and_drop_their_partials(archive: WalArchive, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    five = segment(spool, 5, b"partly")
    push_partial(archive, five, five.name)
    whole = segment(tmp_path, 5, b"whole")
    push_wal(archive, whole)
    assert not fetch_wal(archive, five.name, tmp_path / "out").partial
    assert (tmp_path / "out").read_bytes() == whole.read_bytes()
    assert drop_partials(archive, five.name) == 2  # primary and DR
    assert archive.primary.head(partial_object_key(archive.prefix, five.name)) is None


def test_slot_names_are_valid_postgresql_identifiers() -> None:
    assert slot_name("prod-eu", "Orders.DB") == "envsteward_prod_eu_orders_db"
    assert len(slot_name("e" * 80, "t")) == 63
