"""``wal stream``: WAL streamed with ``pg_receivewal`` for an RPO of seconds instead of ``archive_timeout``.

``pg_receivewal`` connects over the replication protocol with a replication slot (created with
``--create-slot --if-not-exists``; the server keeps WAL until the slot received it, so a streamer that
was down loses nothing, but ``pg_wal`` grows meanwhile: :mod:`envsteward.pitr.slot_watch` alerts) and
writes into a spool folder: the segment being written as ``<segment>.partial`` (flushed at every write:
``--synchronous``), renamed to ``<segment>`` when complete.
:class:`WalStreamer` pumps that folder:

* every completed segment (and timeline ``.history`` file) goes through :func:`push_wal`, the very path of
  ``archive_command`` with the same rules (identity check, primary + DR before it counts, the same content
  twice is fine, different content is a ConflictError); only then is it removed from the spool, and the
  partial objects up to it are dropped;
* every ``partial_interval`` seconds the current ``.partial`` file, when it changed, is stored as the
  segment's partial object (:func:`push_partial`, ``<prefix>stream/<segment>.partial``, replaced each
  time). ``wal fetch`` serves it only for the newest segment (:func:`fetch_partial`), so a restore to
  latest loses at most about ``partial_interval`` seconds of commits.

A push that fails (a store down) leaves the file in the spool and is retried at the next tick; the
failure is reported through ``on_event``. ``archive_command`` can stay on beside streaming: both push the
same segments and the idempotency rules reconcile them.

External calls: ``pg_receivewal`` (subprocess; a replication connection), the object stores and the key
provider (through :mod:`envsteward.pitr.archive`), local files in the spool.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from envsteward.backup.sources._tools import tool_environment
from envsteward.errors import ConfigurationError, EnvstewardError, PermanentError
from envsteward.pitr.archive import WalArchive, drop_partials, push_partial, push_wal
from envsteward.pitr.walnames import wal_kind

if TYPE_CHECKING:
    from envsteward.catalog.models import PostgresBackup

_COMPLETE = re.compile(r"^([0-9A-F]{24}|[0-9A-F]{8}\.history)$")
_PARTIAL = re.compile(r"^([0-9A-F]{24})\.partial$")
DEFAULT_PARTIAL_INTERVAL = 5.0


def slot_name(environment: str, target: str) -> str:
    """The replication slot of a target: ``envsteward_<env>_<target>`` in the characters PostgreSQL allows
    (lower-case letters, digits, underscore; at most 63). Pure."""
    body = re.sub(r"[^a-z0-9_]", "_", f"{environment}_{target}".lower())
    return f"envsteward_{body}"[:63]


def target_slot(environment: str, spec: PostgresBackup) -> str:
    """The replication slot of a catalog target: ``pitr.slot_name``, else :func:`slot_name`. Pure."""
    return spec.pitr.slot_name or slot_name(environment, spec.name)


@dataclass(frozen=True)
class StreamConfig:
    """How to reach the server and where to spool."""

    dsn: str
    slot: str
    spool: Path
    pg_receivewal: str
    password: SecretStr | None = None
    partial_interval: float = DEFAULT_PARTIAL_INTERVAL

    def receive_command(self) -> list[str]:
        return [
            self.pg_receivewal,
            f"--dbname={self.dsn}",
            f"--directory={self.spool}",
            f"--slot={self.slot}",
            "--synchronous",
            "--no-password",
            "--status-interval=1",
        ]

    def create_slot_command(self) -> list[str]:
        return [
            self.pg_receivewal,
            f"--dbname={self.dsn}",
            f"--slot={self.slot}",
            "--create-slot",
            "--if-not-exists",
            "--no-password",
        ]


def create_slot(config: StreamConfig) -> None:
    """Create the replication slot unless it exists (``pg_receivewal --create-slot --if-not-exists``).

    Calls pg_receivewal. Raises PermanentError with the tool's message (no replication permission,
    ``max_replication_slots`` reached, server unreachable)."""
    done = subprocess.run(
        config.create_slot_command(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=tool_environment(config.password),
    )
    if done.returncode != 0:
        raise PermanentError(
            f"pg_receivewal could not create the replication slot {config.slot}: {done.stderr.strip()[-500:]}"
        )


@dataclass
class StreamTick:
    """What one pump did."""

    pushed: list[str] = field(default_factory=list)
    partial: str | None = None
    errors: list[str] = field(default_factory=list)


class WalStreamer:
    """Pumps ``pg_receivewal``'s spool into the archive (see the module docstring)."""

    def __init__(
        self,
        archive: WalArchive,
        config: StreamConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.archive = archive
        self.config = config
        self.clock = clock
        self.on_event = on_event
        self._last_partial_at = float("-inf")
        self._last_partial_digest: tuple[str, bytes] | None = None

    def pump(self, *, force_partial: bool = False) -> StreamTick:
        """Push completed files, then (when due or ``force_partial``) the current partial segment.

        Calls the stores and the key provider; reads and removes spool files. Never raises for a failed
        push: the file stays and the error is in the result (and ``on_event``)."""
        tick = StreamTick()
        entries = sorted(p.name for p in self.config.spool.iterdir())
        for name in entries:
            if not _COMPLETE.match(name):
                continue
            path = self.config.spool / name
            try:
                push_wal(self.archive, path)
                if wal_kind(name) == "segment":
                    drop_partials(self.archive, name)
            except EnvstewardError as exc:
                tick.errors.append(f"{name}: {exc}")
                self.on_event(f"error: {name}: {exc}")
                break  # in order: never leave a gap behind a later segment
            path.unlink(missing_ok=True)
            tick.pushed.append(name)
        due = force_partial or self.clock() - self._last_partial_at >= self.config.partial_interval
        partials = sorted(name for name in entries if _PARTIAL.match(name))
        if due and partials and not tick.errors:
            self._push_partial(partials[-1], tick)
        return tick

    def _push_partial(self, file_name: str, tick: StreamTick) -> None:
        segment = file_name.removesuffix(".partial")
        path = self.config.spool / file_name
        try:
            digest = hashlib.sha256(path.read_bytes()).digest()
        except FileNotFoundError:  # completed and renamed meanwhile: the next pump pushes it whole
            return
        self._last_partial_at = self.clock()
        if self._last_partial_digest == (segment, digest):
            return
        try:
            push_partial(self.archive, path, segment)
        except EnvstewardError as exc:
            tick.errors.append(f"{file_name}: {exc}")
            self.on_event(f"error: {file_name}: {exc}")
            return
        self._last_partial_digest = (segment, digest)
        tick.partial = segment

    def run(self, should_stop: Callable[[], bool], *, tick_seconds: float = 0.5) -> None:
        """Create the slot, run ``pg_receivewal`` and pump until ``should_stop()``; restarts the receiver
        when it exits. A final pump (partial included) runs after the receiver stopped.

        Calls pg_receivewal, the stores and the key provider. Raises ConfigurationError (spool is not a
        folder) and PermanentError (the slot cannot be created)."""
        spool = self.config.spool
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not spool.is_dir():
            raise ConfigurationError(f"{spool} is not a directory")
        create_slot(self.config)
        receiver: subprocess.Popen[bytes] | None = None
        try:
            while not should_stop():
                if receiver is None or receiver.poll() is not None:
                    if receiver is not None:
                        self.on_event(f"pg_receivewal exited with {receiver.returncode}; restarting")
                        time.sleep(1)
                    receiver = subprocess.Popen(
                        self.config.receive_command(),
                        env=tool_environment(self.config.password),
                        stdin=subprocess.DEVNULL,
                    )
                tick = self.pump()
                for name in tick.pushed:
                    self.on_event(f"{name}: archived")
                time.sleep(tick_seconds)
        finally:
            if receiver is not None and receiver.poll() is None:
                receiver.terminate()
                try:
                    receiver.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    receiver.kill()
                    receiver.wait()
            self.pump(force_partial=True)
