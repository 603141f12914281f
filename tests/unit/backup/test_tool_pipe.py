"""The pipe a dump tool writes into gets a 1 MiB kernel buffer (``_tools.widen_pipe``), best effort."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from envsteward.backup.sources import _tools

F_GETPIPE_SZ: int = getattr(fcntl, "F_GETPIPE_SZ", 0)


@pytest.mark.skipif(not F_GETPIPE_SZ, reason="Linux only (F_GETPIPE_SZ)")
def test_the_output_pipe_is_widened_to_what_the_kernel_allows() -> None:
    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text(encoding="ascii"))
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb"):
        before = fcntl.fcntl(reader.fileno(), F_GETPIPE_SZ)
        _tools.widen_pipe(reader)
        after = fcntl.fcntl(reader.fileno(), F_GETPIPE_SZ)
    assert after == max(before, min(_tools.PIPE_BYTES, allowed))


def test_a_refused_or_missing_pipe_changes_nothing() -> None:
    _tools.widen_pipe(None)
    with open(os.devnull, "rb") as not_a_pipe:  # F_SETPIPE_SZ on a non-pipe fails: ignored
        _tools.widen_pipe(not_a_pipe)
