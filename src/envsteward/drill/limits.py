"""How long a drill may run: the timeout of each of the drill flow's tasks, and their total.

The drill flow's tasks (``tasks/drill.py``) take their timeouts from here, and the sweep of abandoned
drills (:mod:`.abandoned`) takes :data:`DRILL_TIMEOUT_SECONDS` as the age past which a drill that has not
ended, and the scratch target it created, are certainly abandoned: no attempt of any phase can still be
running. A test checks that the tasks' timeouts and retries agree with these numbers.
"""

from __future__ import annotations

MINUTE = 60.0
HOUR = 3600.0

START_TIMEOUT_SECONDS = 15 * MINUTE
"""Sweeping abandoned drills (a few DROP DATABASE), checking the request, auditing ``drill.started``."""
SHORT_PHASE_TIMEOUT_SECONDS = 15 * MINUTE
"""Resolving, choosing, tearing down, reporting: catalog reads, listings, one DROP."""
DATA_PHASE_TIMEOUT_SECONDS = 6 * HOUR
"""Reading a large backup, or restoring it: hours, but never into the next month's drill."""
CHECK_PHASE_TIMEOUT_SECONDS = 2 * HOUR
"""Checksumming every table of the restored data; health checks and smoke queries."""

PHASE_TIMEOUTS: dict[str, float] = {
    "prepare": SHORT_PHASE_TIMEOUT_SECONDS,
    "choose": SHORT_PHASE_TIMEOUT_SECONDS,
    "fetch_verify": DATA_PHASE_TIMEOUT_SECONDS,
    "restore": DATA_PHASE_TIMEOUT_SECONDS,
    "verify_data": CHECK_PHASE_TIMEOUT_SECONDS,
    "health": CHECK_PHASE_TIMEOUT_SECONDS,
    "teardown": SHORT_PHASE_TIMEOUT_SECONDS,
}
"""The phases retried on transient errors, by name, and the timeout of one attempt."""
UNRETRIED_TIMEOUTS: dict[str, float] = {
    "start": START_TIMEOUT_SECONDS,
    "report": SHORT_PHASE_TIMEOUT_SECONDS,
}
"""The tasks that run once (each attempt would audit again)."""
MAX_ATTEMPTS = 4
"""The first attempt and up to three retries (``tasks.common.TRANSIENT_RETRIES``)."""
RETRY_WAITS_SECONDS = 60.0
"""An upper bound of one phase's waits between attempts (1 + 2 + 4 s, plus jitter)."""

DRILL_TIMEOUT_SECONDS = sum(UNRETRIED_TIMEOUTS.values()) + sum(
    timeout * MAX_ATTEMPTS + RETRY_WAITS_SECONDS for timeout in PHASE_TIMEOUTS.values()
)
"""The longest a drill run by the flow can last (every attempt of every phase timing out): 67.6 hours.
A drill that started longer ago and has not ended was killed; its scratch target is abandoned."""

__all__ = [
    "CHECK_PHASE_TIMEOUT_SECONDS",
    "DATA_PHASE_TIMEOUT_SECONDS",
    "DRILL_TIMEOUT_SECONDS",
    "MAX_ATTEMPTS",
    "PHASE_TIMEOUTS",
    "SHORT_PHASE_TIMEOUT_SECONDS",
    "START_TIMEOUT_SECONDS",
    "UNRETRIED_TIMEOUTS",
]
