"""A process that opens WAL object after WAL object (the restore read-ahead) must not keep them: every
reader is freed as soon as :func:`envsteward.pitr.archive.open_wal` returns, without waiting for (or
relying on) the garbage collector. Before the fix each reader leaked with its buffers (~16 MiB a segment:
828 MiB of RSS for the read-ahead of a 0.6 GiB restore)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from envsteward.adapters.local_keys import LocalKeyProvider
from envsteward.backup.format import BackupReader
from envsteward.errors import IntegrityError
from envsteward.pitr.archive import open_wal, seal_wal


def readers() -> int:
    return sum(1 for item in gc.get_objects() if isinstance(item, BackupReader))


def test_open_wal_leaves_no_reader_behind(tmp_path: Path) -> None:
    keys = LocalKeyProvider(tmp_path / "keys" / "backup.key")
    segment = os.urandom(1 << 20) + bytes(3 << 20)
    sealed = [seal_wal(keys, f"dev/db.pitr/wal/{index:024X}", segment, zstd_level=1) for index in range(3)]
    gc.collect()
    before = readers()
    gc.disable()
    try:
        for index, stored in enumerate(sealed):
            assert open_wal(keys, f"dev/db.pitr/wal/{index:024X}", stored) == segment
        with pytest.raises(IntegrityError):
            open_wal(keys, "dev/db.pitr/wal/000000000000000000000001", sealed[0][:-100])  # truncated
        assert readers() <= before + 1  # at most the failed one, held by the exception's traceback
        for index, stored in enumerate(sealed):
            open_wal(keys, f"dev/db.pitr/wal/{index:024X}", stored)
        assert readers() <= before + 1
    finally:
        gc.enable()
