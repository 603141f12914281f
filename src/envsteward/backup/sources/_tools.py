"""Running PostgreSQL's client tools (pg_dump, pg_restore) as subprocesses, and reading their failures.

* :class:`StderrTail` drains a subprocess's stderr in a thread (so a chatty tool never blocks on a full
  pipe while we read its stdout or write its stdin) and keeps only the last few KiB.
* :func:`tool_error` is the one place that turns a tool's exit code and stderr into an envsteward error:
  TransientError when the server could not be reached, NotFoundError / AuthenticationError /
  PermissionDeniedError / ConflictError when the text says so, PermanentError otherwise. The text shown is
  scrubbed: the password (if one was given) and anything that looks like one is replaced, and the lines
  where PostgreSQL quotes data values (DETAIL, CONTEXT) are dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import IO

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
            return error_type(message, system="postgres", operation=operation)
    return PermanentError(message, system="postgres", operation=operation)


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


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate ``proc`` if it still runs (kill after ``grace`` seconds) and close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def tool_version(executable: str) -> str:
    """``pg_dump --version`` -> ``15.20``; ``unknown`` when it cannot be run or parsed."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = done.stdout.decode("utf-8", errors="replace").strip()
    match = _TOOL_VERSION.search(text)
    return match.group(1) if match else (text or "unknown")
