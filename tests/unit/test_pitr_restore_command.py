"""The ``restore_command`` a point-in-time restore writes (envsteward.pitr.restore.restore_command): a POSIX
``sh`` line that takes a read-ahead segment with ``mv`` and otherwise runs ``envsteward wal fetch``. Run here
through the real ``/bin/sh``, the way PostgreSQL runs it (``%f``/``%p`` substituted, in the data directory),
with every path the command names full of characters a shell would trip on."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from envsteward.pitr import prefetch
from envsteward.pitr.restore import restore_command

SEG = "000000010000000000000042"
WEIRD = 'it\'s a "dir" $(touch PWNED) `touch PWNED2` ;& *'


def as_postgresql_runs_it(command: str, name: str, cwd: Path, path: str = "pg_wal/RECOVERYXLOG") -> int:
    """PostgreSQL 15 substitutes %f and %p (and %% / %r) and hands the line to ``/bin/sh -c``."""
    assert set(re.findall(r"%.", command)) <= {"%f", "%p"}  # no other % escape: PostgreSQL 16 rejects them
    line = command.replace("%f", name).replace("%p", path)
    return subprocess.run(["/bin/sh", "-c", line], cwd=cwd, check=False, timeout=30).returncode


@pytest.fixture
def weird(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    root = tmp_path / WEIRD
    home, catalog, data_dir = root / "home dir", root / "cata'log", root / "data dir"
    fake = root / "bin $x" / "envsteward"
    for folder in (home, catalog, data_dir / "pg_wal" / prefetch.SPOOL_NAME, fake.parent):
        folder.mkdir(parents=True)
    calls = root / "calls"
    # a stand-in for envsteward: records its arguments and settings, exits 126 like a failed fetch
    fake.write_text(
        "#!/bin/sh\n"
        f'for arg in "$@"; do printf \'%s\\n\' "$arg"; done > {shlex.quote(str(calls))}\n'
        f'printf \'%s\\n\' "$ENVSTEWARD_HOME" "$ENVSTEWARD_CATALOG" >> {shlex.quote(str(calls))}\n'
        "exit 126\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("ENVSTEWARD_EXECUTABLE", str(fake))
    monkeypatch.delenv("ENVSTEWARD_WAL_PREFETCH", raising=False)
    return {"root": root, "home": home, "catalog": catalog, "data_dir": data_dir, "calls": calls}


def test_a_spooled_segment_is_moved_without_starting_envsteward(weird: dict[str, Path]) -> None:
    command = restore_command(weird["home"], weird["catalog"], "dev/db", "dr")
    data_dir = weird["data_dir"]
    (data_dir / "pg_wal" / prefetch.SPOOL_NAME / SEG).write_bytes(b"authenticated segment")
    assert as_postgresql_runs_it(command, SEG, data_dir) == 0
    assert (data_dir / "pg_wal" / "RECOVERYXLOG").read_bytes() == b"authenticated segment"
    assert not (data_dir / "pg_wal" / prefetch.SPOOL_NAME / SEG).exists()
    assert not weird["calls"].exists()  # envsteward never started
    assert not list(weird["root"].rglob("PWNED*"))


def test_anything_else_goes_to_envsteward_with_exact_arguments_and_its_exit_code(
    weird: dict[str, Path],
) -> None:
    command = restore_command(weird["home"], weird["catalog"], "dev/db", "dr")
    for name in ("00000002.history", SEG):  # a probe, and a segment the spool does not hold
        assert as_postgresql_runs_it(command, name, weird["data_dir"], "pg_wal/RECOVERYHISTORY") == 126
        assert weird["calls"].read_text().splitlines() == [
            "wal",
            "fetch",
            "--target",
            "dev/db",
            "--from",
            "dr",
            name,
            "pg_wal/RECOVERYHISTORY",
            str(weird["home"].resolve()),
            str(weird["catalog"].resolve()),
        ]
        weird["calls"].unlink()
    assert not list(weird["root"].rglob("PWNED*"))
    assert not list(Path.cwd().glob("PWNED*"))


def test_read_ahead_off_writes_the_plain_command(
    weird: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVSTEWARD_WAL_PREFETCH", "0")
    command = restore_command(weird["home"], weird["catalog"], "dev/db", "any")
    assert "mv " not in command
    assert "exec" not in command
    data_dir = weird["data_dir"]
    (data_dir / "pg_wal" / prefetch.SPOOL_NAME / SEG).write_bytes(b"left over")
    assert as_postgresql_runs_it(command, SEG, data_dir) == 126  # the spool is not used
    assert weird["calls"].read_text().splitlines()[6] == SEG
    assert os.path.exists(data_dir / "pg_wal" / prefetch.SPOOL_NAME / SEG)
