"""Turn the pipeline's :class:`ProgressEvent` stream into a percentage, for progress displays that need one
(a Prefect progress artifact). No UI and no Prefect here.

A backup is written (phase ``backup``: the total is unknown while the source streams) and then read back
and verified (phase ``verify``: the total is known). The first half of the scale follows the bytes read
from the source against the previous backup's size of the same target, when there is one (capped below
50 %, since the dump may have grown); the second half follows the verification exactly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from envsteward.backup.pipeline import list_backups
from envsteward.backup.progress import ProgressEvent
from envsteward.errors import EnvstewardError
from envsteward.ports import ObjectStore


def previous_plaintext_size(store: ObjectStore, environment: str, target: str) -> int | None:
    """The plaintext size of the target's newest complete backup, or None (no backup, or unreadable).

    Calls the object store (list, get of the target's manifests)."""
    try:
        manifests = list_backups(store, f"{environment}/{target}/")
    except EnvstewardError:
        return None
    if not manifests:
        return None
    return max(manifests, key=lambda manifest: manifest.completed_at).sizes.plaintext


class PercentTracker:
    """A ProgressCallback that calls ``emit(percent, description)`` when the percentage moved by ``step``
    points or ``interval`` seconds passed, and always at the end. Never raises from ``emit``'s errors:
    progress display must not fail a backup."""

    def __init__(
        self,
        emit: Callable[[float, str], None],
        expected_plaintext: int | None = None,
        *,
        step: float = 5.0,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.expected = expected_plaintext
        self.step = step
        self.interval = interval
        self.clock = clock
        self.last_percent = -1.0
        self.last_time = float("-inf")
        self.percent = 0.0

    def percent_of(self, event: ProgressEvent) -> float:
        if event.phase == "backup":
            if event.done:
                return 50.0
            if self.expected:
                return min(49.0, 50.0 * event.plaintext_bytes / self.expected)
            return 0.0
        fraction = event.fraction or 0.0
        return 100.0 if event.done else 50.0 + 50.0 * fraction

    def __call__(self, event: ProgressEvent) -> None:
        percent = max(self.percent, self.percent_of(event))
        self.percent = percent
        now = self.clock()
        final = event.done and event.phase != "backup"
        if not final and percent - self.last_percent < self.step and now - self.last_time < self.interval:
            return
        self.last_percent, self.last_time = percent, now
        description = f"{event.phase}: {event.plaintext_bytes} bytes of data, {event.stored_bytes} stored"
        with contextlib.suppress(Exception):  # a display failure must not fail the backup
            self.emit(round(percent, 1), description)
