"""Reading an environment's live state from its sources, and assembling it into one tree.

The live tree holds real values, secrets included: it lives in memory only, is compared right away and is
never logged, returned from a task that persists its result, or put in a report. :class:`LiveTree` keeps
it out of reprs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from envsteward.errors import EnvstewardError, PermanentError, is_transient
from envsteward.scan.model import SourceState
from envsteward.sources import mount

if TYPE_CHECKING:
    from envsteward.catalog.models import SourceSpec
    from envsteward.ports import ConfigSource

T = TypeVar("T")

READ_RETRIES = 3
READ_BACKOFF_SECONDS = 0.5
READ_JITTER = 0.5


class ConfigSources(Protocol):
    """Where live configuration is read from: :class:`envsteward.services.Services` satisfies it."""

    def config_source(self, environment: str, source_name: str) -> ConfigSource: ...


def read_source(services: ConfigSources, environment: str, source_name: str) -> Mapping[str, Any]:
    """The live subtree one catalog source holds. Calls the source's system (Vault, SSM, Secrets Manager,
    a file, HTTP).

    Raises TransientError (worth retrying), NotFoundError, PermissionDeniedError, ConfigurationError...
    """
    return services.config_source(environment, source_name).read()


def describe_failure(exc: BaseException) -> str:
    """A safe one-line reason for a failed read: envsteward errors carry safe messages; anything else is
    named by its type only (a vendor message might quote a value)."""
    if isinstance(exc, EnvstewardError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"unexpected {type(exc).__name__}"


class DeadlineExceededError(PermanentError):
    """A write loop reached its deadline: the writes after it were not made."""


class Deadline:
    """A moment (monotonic clock) after which a write loop makes no further write.

    A Prefect task timeout around ``asyncio.to_thread`` (or a sync task in a worker thread) cannot stop
    the thread: without this check, a timed-out heal or apply would keep writing after its task was
    reported failed. Loops call :meth:`check` right before each write.
    """

    def __init__(self, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = None if seconds is None else clock() + seconds

    @classmethod
    def never(cls) -> Deadline:
        return cls(None)

    @property
    def passed(self) -> bool:
        return self.at is not None and self._clock() >= self.at

    def left(self) -> float | None:
        """Seconds left (None: no deadline)."""
        return None if self.at is None else max(0.0, self.at - self._clock())

    def check(self, what: str) -> None:
        """Raise DeadlineExceededError naming ``what`` (the write about to be made) when time is up."""
        if self.passed:
            raise DeadlineExceededError(f"the deadline passed before {what}: not written")


def call_with_retries(
    fn: Callable[[], T],
    *,
    retries: int = READ_RETRIES,
    backoff_seconds: float = READ_BACKOFF_SECONDS,
    jitter: float = READ_JITTER,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> T:
    """Call ``fn``; on a transient envsteward error wait ``backoff * 2**attempt`` (times a random factor in
    ``[1 - jitter, 1 + jitter]``) and try again, at most ``retries`` more times. Anything else is raised at
    once, and so is the last error when the wait would end past ``deadline``.

    The core's one retry loop, for work that runs outside Prefect (the CLI) or inside one task per item
    (a write of an apply); Prefect tasks use the same policy through ``tasks/common.py``."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            delay = backoff_seconds * 2**attempt * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311
            left = deadline.left() if deadline is not None else None
            if left is not None and delay >= left:
                raise
            sleep(delay)
            attempt += 1


@dataclass(frozen=True)
class LiveTree:
    """The assembled live configuration of one environment (values real: keep in memory only)."""

    data: dict[str, Any] = field(repr=False)
    sources: tuple[SourceState, ...]

    @property
    def unreachable(self) -> tuple[SourceState, ...]:
        return tuple(state for state in self.sources if not state.ok)

    @property
    def readable_mounts(self) -> tuple[str, ...]:
        return tuple(state.mount_at for state in self.sources if state.ok)


def assemble_live(sources: Sequence[SourceSpec], outcomes: Mapping[str, Any]) -> LiveTree:
    """Mount each source's subtree at its ``mount_at``. ``outcomes`` maps source name to what reading it
    returned: a mapping, or the exception it raised (a source missing from ``outcomes`` counts as not
    read). Raises ConfigurationError when a source mounted at the root holds something else than a mapping.
    """
    data: dict[str, Any] = {}
    states: list[SourceState] = []
    for spec in sources:
        outcome = outcomes.get(spec.name, _NOT_READ)
        base = {"name": spec.name, "kind": spec.kind, "mount_at": spec.mount_at, "writable": spec.writable}
        if outcome is _NOT_READ:
            states.append(SourceState(**base, ok=False, error="not read"))
        elif isinstance(outcome, BaseException):
            states.append(SourceState(**base, ok=False, error=describe_failure(outcome)))
        elif not isinstance(outcome, Mapping):
            states.append(
                SourceState(
                    **base, ok=False, error=f"read returned a {type(outcome).__name__}, not a mapping"
                )
            )
        else:
            mount(data, spec.mount_at, _plain(outcome))
            states.append(SourceState(**base, ok=True))
    return LiveTree(data=data, sources=tuple(states))


_NOT_READ: Any = object()


def _plain(value: Any) -> Any:
    """A plain dict/list copy (sources may hand back read-only mappings; mounting must not share them)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
