"""Making a rename or a new file in a folder durable: fsync the folder itself."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """fsync ``folder`` so that a file just created, linked or renamed in it survives a crash.

    Best effort: some filesystems cannot fsync a folder, and the data itself was fsynced already.
    """
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
