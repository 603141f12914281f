"""Running PostgreSQL's client tools (pg_dump, pg_restore) as subprocesses, and reading their failures.

* :class:`StderrTail` drains a subprocess's stderr in a thread (so a chatty tool never blocks on a full
  pipe while we read its stdout or write its stdin) and keeps only the last few KiB.
* :class:`Deadline` gives a running tool a deadline of its own: when it passes, the tool's whole process
  group (every tool is started in a new session) is killed with SIGKILL, the server sessions it opened
  (found by their unique ``application_name``) are terminated so no orphaned query or lock wait stays
  behind, and the caller raises :class:`ToolTimeoutError` naming the tool, the target and the limit.
* :func:`tool_error` is the one place that turns a tool's exit code and stderr into an envsteward error:
  TransientError when the server could not be reached, NotFoundError / AuthenticationError /
  PermissionDeniedError / ConflictError when the text says so, PermanentError otherwise. The text shown is
  scrubbed: the password (if one was given) and anything that looks like one is replaced, and the lines
  where PostgreSQL quotes data values (DETAIL, CONTEXT) are dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from pydantic import SecretStr

from envsteward._redact import scrub as scrub_secrets
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)

SYSTEM = "postgres"
STDERR_KEEP = 16 * 1024
_TOOL_VERSION = re.compile(r"\)\s*(\d+(?:\.\d+)*)")

_PATTERNS: tuple[tuple[re.Pattern[str], type[EnvstewardError]], ...] = (
    (
        re.compile(
            r"could not connect|connection refused|timeout expired|server closed the connection|"
            r"could not translate host name|no route to host|network is unreachable|"
            r"the database system is (?:starting up|shutting down|in recovery mode)|"
            r"terminating connection due to administrator command|too many (?:connections|clients)|"
            r"connection to server .* failed",
            re.IGNORECASE,
        ),
        TransientError,
    ),
    (re.compile(r"database \".*\" does not exist", re.IGNORECASE), NotFoundError),
    (
        re.compile(
            r"password authentication failed|no password supplied|no pg_hba\.conf entry|"
            r"role \".*\" does not exist|authentication failed",
            re.IGNORECASE,
        ),
        AuthenticationError,
    ),
    (re.compile(r"permission denied|must be owner|must have CONNECT", re.IGNORECASE), PermissionDeniedError),
    (re.compile(r"already exists", re.IGNORECASE), ConflictError),
)
_PASSWORDISH = (
    re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)"),
)
_DATA_LINE = re.compile(r"^\s*(?:\S+:\s*)?(?:DETAIL|CONTEXT):", re.IGNORECASE)


class ToolTimeoutError(TransientError, TimeoutError):
    """A backup tool ran past its deadline and was stopped (process group killed, server sessions
    terminated). Transient: the same run may finish in time once the lock it waited for is released."""


def application_name(tool: str) -> str:
    """A unique ``application_name`` for one run of ``tool`` (``envsteward-pg_dump-1a2b3c4d``): how its
    server sessions are found again to terminate them."""
    return f"envsteward-{tool}-{secrets.token_hex(4)}"


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``proc`` leads (it was started in its own session), then reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10.0)


class Deadline:
    """A watchdog for one tool run: after ``seconds`` it kills the tool's process group if the tool still
    runs, then calls ``on_expire`` (which terminates its server sessions; errors there are ignored, the
    process is gone either way). :meth:`cancel` once the tool has exited; :attr:`expired` says whether the
    deadline stopped it, and :meth:`error` is the error to raise then.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        seconds: float,
        *,
        tool: str,
        target: str,
        operation: str,
        on_expire: Callable[[], None] | None = None,
    ) -> None:
        self.seconds = seconds
        self.tool = tool
        self.target = target
        self.operation = operation
        self._proc = proc
        self._on_expire = on_expire
        self._expired = threading.Event()
        self._settled = threading.Event()
        self._started = time.monotonic()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.name = f"deadline-{tool}-{proc.pid}"
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def _fire(self) -> None:
        try:
            if self._proc.poll() is not None:
                return  # finished in time (the reader has not cancelled us yet)
            self._expired.set()
            kill_group(self._proc)
            if self._on_expire is not None:
                with contextlib.suppress(Exception):
                    self._on_expire()
        finally:
            self._settled.set()

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when it has passed)."""
        return max(0.0, self.seconds - (time.monotonic() - self._started))

    def cancel(self) -> None:
        """Stop the watchdog; when it already fired, wait (up to 30 s) until its cleanup is done, so the
        caller's error is raised only once the tool and its sessions are gone."""
        self._timer.cancel()
        if self._expired.is_set():
            self._settled.wait(30.0)

    def error(self, what: str | None = None) -> ToolTimeoutError:
        """The error for a run stopped by this deadline; ``what`` names the step when it is not the tool
        itself (``pg_dump's table checksums``)."""
        return ToolTimeoutError(
            f"{what or self.tool} for {self.target} ran past its deadline of {_duration(self.seconds)} "
            "and was stopped (its process group killed, its server sessions terminated); nothing was kept. "
            "Look for a lock held on the database (pg_locks) or a stalled object store, then run again",
            system=SYSTEM,
            operation=self.operation,
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


class StderrTail:
    """Reads a stream to its end in a daemon thread; :meth:`text` is its last ``STDERR_KEEP`` bytes."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if stream is not None:
            self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
            self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        try:
            fd = stream.fileno()
            while piece := os.read(fd, 8192):
                with self._lock:
                    self._buffer += piece
                    if len(self._buffer) > STDERR_KEEP:
                        del self._buffer[: len(self._buffer) - STDERR_KEEP]
        except (OSError, ValueError):
            return

    def text(self, timeout: float = 5.0) -> str:
        """The captured tail, after waiting up to ``timeout`` seconds for the stream to end."""
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            return bytes(self._buffer).decode("utf-8", errors="replace")


def scrub(text: str, password: SecretStr | None) -> str:
    """``text`` without the password, password-like parameters, or the lines that quote data values."""
    text = scrub_secrets(text, [password.get_secret_value() if password is not None else None])
    text = _PASSWORDISH[0].sub(r"\1<redacted>", text)
    text = _PASSWORDISH[1].sub(r"\1<redacted>\3", text)
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not _DATA_LINE.match(line)]
    shown = "\n".join(lines[-12:])
    return shown if len(shown) <= 2000 else "..." + shown[-1997:]


def tool_error(
    tool: str,
    returncode: int | None,
    stderr: str,
    *,
    operation: str,
    password: SecretStr | None,
) -> EnvstewardError:
    """The envsteward error for a failed ``tool`` run (see the module docstring for the mapping)."""
    detail = scrub(stderr, password)
    status = f"exit code {returncode}" if returncode is not None else "no exit code"
    message = f"{tool} failed ({status})" + (f":\n{detail}" if detail else " without a message")
    for pattern, error_type in _PATTERNS:
        if pattern.search(stderr):
            return error_type(message, system=SYSTEM, operation=operation)
    return PermanentError(message, system=SYSTEM, operation=operation)


def tool_environment(password: SecretStr | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: ours, plus ``PGPASSWORD`` when a password is given (never argv).

    Without a password the environment is inherited as it is, so libpq finds the same credentials
    (``PGPASSWORD``, ``~/.pgpass``) for the tool as for the snapshot connection.
    """
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password.get_secret_value()
    env.update(extra or {})
    return env


def start(
    command: Sequence[str], env: Mapping[str, str], *, stdin: bool, operation: str
) -> subprocess.Popen[bytes]:
    """Start ``command`` with piped stdout (or stdin) and stderr. Raises ConfigurationError when the tool
    is not installed."""
    try:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdin else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ConfigurationError(
            f"{command[0]} is not installed or not on PATH (install the PostgreSQL client tools, "
            "e.g. apt-get install postgresql-client)",
            system="postgres",
            operation=operation,
        ) from None
    except OSError as exc:
        raise PermanentError(
            f"cannot start {command[0]}: {exc.strerror}", system="postgres", operation=operation
        ) from None


PIPE_BYTES = 1 << 20
"""Kernel buffer asked for a tool's output pipe (Linux; capped by /proc/sys/fs/pipe-max-size, 1 MiB by
default): the tool writes a whole 1 MiB piece ahead of the reader instead of blocking every 64 KiB."""


def widen_pipe(pipe: IO[bytes] | None, size: int = PIPE_BYTES) -> None:
    """Ask the kernel for a ``size``-byte buffer on ``pipe`` (best effort: unchanged where the platform or
    pipe-max-size refuses; the data is the same either way). Calls fcntl only."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or setter is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), setter, size)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> bool:
    """Terminate ``proc``'s process group if ``proc`` still runs (SIGKILL after ``grace`` seconds) and
    close its pipes. True when it was still running (its server sessions may need terminating)."""
    running = proc.poll() is None
    if running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            kill_group(proc)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    return running


def terminate_sessions(
    connect: Callable[[str], contextlib.AbstractContextManager[Any]], name: str, *, wait: float = 5.0
) -> int:
    """Terminate the server sessions whose ``application_name`` is ``name`` (a killed tool's, which the
    server would otherwise keep, e.g. queued for a lock, until it next writes to the dead client), and
    wait up to ``wait`` seconds for them to end.

    ``connect`` is ``PostgresClient.connect``. Calls PostgreSQL; returns how many were signalled. Raises
    the errors of ``connect``.
    """
    query = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"
    with connect(f"terminate {name}") as conn:
        row = conn.execute(query, (name,)).fetchone()
        signalled = int(row[0]) if row else 0
        until = time.monotonic() + wait
        while signalled and time.monotonic() < until:
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            if not left or not left[0]:
                break
            time.sleep(0.05)
    return signalled


def tool_version(executable: str) -> str:
    """``pg_dump --version`` -> ``15.20``; ``unknown`` when it cannot be run or parsed."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = done.stdout.decode("utf-8", errors="replace").strip()
    match = _TOOL_VERSION.search(text)
    return match.group(1) if match else (text or "unknown")
