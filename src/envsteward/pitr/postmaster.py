"""Find and stop the postmaster of a data directory that envsteward started (a restored or drill cluster).

Used where ``pg_ctl stop`` cannot be: by root (``pg_ctl`` refuses to run as root) and by the sweep of a
killed drill, which must stop a cluster whose starter is gone. The postmaster is found from
``postmaster.pid`` and trusted only when the process is alive AND its working directory is that data
directory (PostgreSQL ``chdir``\\ s into it): a stale pid file whose pid was reused by another process is
never signalled.

External calls: local files, ``/proc`` (Linux), signals to the postmaster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PID_FILE = "postmaster.pid"


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the postmaster running on ``data_dir``, or None (no pid file, a stale one, or a pid now
    used by another process). Reads the pid file and ``/proc``; never raises for a missing file."""
    try:
        first = (data_dir / PID_FILE).read_text(errors="replace").splitlines()[0]
        pid = int(first.strip())
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 1:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's: the cwd check below decides
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None  # cannot prove it is ours: never signal it
    try:
        same = cwd.resolve() == data_dir.resolve()
    except OSError:
        same = False
    return pid if same else None


def stop_postmaster(data_dir: Path, *, timeout: float = 30.0) -> bool:
    """Stop the postmaster of ``data_dir`` (immediate shutdown: SIGQUIT, then SIGKILL after ``timeout``);
    True when none runs there any more. For scratch copies only: an immediate shutdown needs crash
    recovery on the next start. Signals the process; raises nothing for a process that is already gone."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return True
    for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        until = time.monotonic() + wait
        while time.monotonic() < until:
            if not _alive(pid):
                return True
            time.sleep(0.1)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our child (it never is via pg_ctl; harmless)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"
