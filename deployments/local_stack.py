"""Start the local stand-ins of a platform's real systems for the demo, and stop them again.

Real servers only: a Prefect server on SQLite, an OpenBao dev server (the Vault API), a moto server (the AWS
API). Slack, PagerDuty, SMTP and the example platform's own API cannot run here, so the demo serves small
loopback stand-ins for them that print what they receive (see :mod:`demo_standins`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class StackError(RuntimeError):
    """A local service could not be started; the message says which, why, and where its log is."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL we built
                return bool(200 <= response.status < 500)
        except OSError:
            return False

    return probe


def executable(name: str) -> str:
    """A console script of this virtualenv, else one on PATH. Raises StackError naming the package."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} is not installed; run `make demo` (it installs the dev dependencies)")
    return found


@dataclass
class LocalStack:
    """The processes the demo started, stopped in reverse order by :meth:`stop`."""

    workdir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    log_copiers: list[threading.Thread] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str],
        ready: Callable[[], bool],
        *,
        port: int,
        env: dict[str, str] | None = None,
        timeout: float = 90.0,
        redact: Sequence[str] = (),
    ) -> None:
        """Start ``command`` and wait until ``ready()``. Raises StackError (port taken, exited, not ready).

        Secrets go to the process through ``env`` (``ps`` shows the command line to every local user); a
        process that prints one back (OpenBao's dev banner prints its root token) is logged with each string
        in ``redact`` replaced by ``<redacted>``.
        """
        if not port_is_free(port):
            raise StackError(
                f"{name}: port {port} on 127.0.0.1 is already in use; stop what uses it and retry"
            )
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        secrets = [value.encode() for value in redact if value]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(command),
                stdout=subprocess.PIPE if secrets else log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        if secrets:
            assert proc.stdout is not None
            copier = threading.Thread(
                target=_copy_redacted, args=(proc.stdout, log_path, secrets), name=f"{name}-log", daemon=True
            )
            copier.start()
            self.log_copiers.append(copier)
        self.processes.append((name, proc))
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} was not ready after {timeout:.0f}s; see {log_path}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Terminate every started process (kill those that do not stop within 10 s)."""
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.processes):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()
        # a process prints its last lines (OpenBao: the dev banner) on exit; let them reach the log
        for copier in self.log_copiers:
            copier.join(timeout=5)
        self.log_copiers.clear()


def _copy_redacted(source: IO[bytes], log_path: Path, secrets: Iterable[bytes]) -> None:
    """Copy ``source`` line by line to ``log_path`` with every secret replaced, until the process exits."""
    with source, log_path.open("ab") as log:
        for raw in source:
            line = raw
            for secret in secrets:
                line = line.replace(secret, b"<redacted>")
            log.write(line)
            log.flush()
