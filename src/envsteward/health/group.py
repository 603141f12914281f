"""Run one environment's checks together, as one orchestrator task (the flow's grouped mode).

Above ``health.per_check_tasks_up_to`` checks a run, the ``health-check`` flow makes one task run per
environment instead of one per check: a task run costs the flow process about 45 ms of CPU (created,
three state changes, their events, a thread), a probe about 1 ms. This module holds what that task does
and decides, without Prefect:

* :func:`run_checks_watched` probes the checks concurrently (a bounded number at a time), each with a
  watchdog at its own ``timeout_seconds`` plus :data:`WATCHDOG_GRACE_SECONDS`: a probe that hangs past it
  counts as ``down`` ("timed out") and is abandoned (its daemon thread is left to end on its own; a late
  result is dropped), so it holds neither the other checks nor the task.
* :func:`group_finding` names the task's outcome (``Down`` / ``Degraded`` and a message listing the
  failing checks) and :class:`GroupProbeError` is what the task raises when a probe could not run.
* :func:`results_from_group_outcome` turns whatever the task run ended with into one result per check.

Every check is still run by :func:`~envsteward.health.checks.run_check` and reported as its own
:class:`~envsteward.health.result.CheckResult`; everything downstream stays per check.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from envsteward.errors import PermanentError
from envsteward.health.checks import AnyCheck, CheckContext, result_from_error, run_check
from envsteward.health.result import CheckResult, CheckStatus

MAX_PARALLEL_PER_GROUP = 16
"""Probes of one environment running at once (a probe that overran its watchdog no longer counts)."""

MAX_PROBES_IN_FLIGHT = 32
"""Probes running at once in the whole process, over every environment's task: 50 environment tasks
starting 500 probes together would measure the GIL and the scheduler, not the services (a burst of false
``degraded`` latencies under load)."""

_IN_FLIGHT = threading.BoundedSemaphore(MAX_PROBES_IN_FLIGHT)
_SLOT_POLL_SECONDS = 0.05

WATCHDOG_GRACE_SECONDS = 2.0
"""How long past its own ``timeout_seconds`` a probe may take before it is abandoned as ``timed out``
(the probe's client enforces the timeout itself; the watchdog is for a probe that does not)."""

MESSAGE_MAX = 1000
"""A group's state message is cut to this many characters, whole entries only, with a count of the rest."""


def run_checks_watched(
    specs: Sequence[AnyCheck],
    ctx: CheckContext,
    *,
    max_parallel: int = MAX_PARALLEL_PER_GROUP,
    grace_seconds: float = WATCHDOG_GRACE_SECONDS,
    slots: threading.Semaphore | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[CheckResult]:
    """Run every check of ``specs`` (one environment: ``ctx``) concurrently; one result per check, in order.

    At most ``max_parallel`` probes of this call run at once, each in its own daemon thread, and each holds
    one of ``slots`` (default: the process's :data:`MAX_PROBES_IN_FLIGHT`, shared with every other call) while
    it runs. A probe still running ``timeout_seconds + grace_seconds`` after it started is ``down`` with the
    detail "timed out" and is abandoned: its slots go to the next check. Never raises for a failing check
    (see :func:`~envsteward.health.checks.run_check`); raises ValueError for ``max_parallel`` below 1.
    Calls the systems the checks name.
    """
    if max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    shared = _IN_FLIGHT if slots is None else slots
    results: list[CheckResult | None] = [None] * len(specs)
    finished: queue.SimpleQueue[tuple[int, CheckResult]] = queue.SimpleQueue()
    waiting = deque(range(len(specs)))
    running: dict[int, float] = {}  # index -> watchdog deadline

    def probe(index: int) -> None:
        try:
            result = run_check(specs[index], ctx)
        except BaseException as exc:  # noqa: BLE001 - run_check reports rather than raises; belt and braces
            result = result_from_error(ctx.environment, specs[index], exc)
        finished.put((index, result))

    try:
        while waiting or running:
            while waiting and len(running) < max_parallel and shared.acquire(blocking=False):
                index = waiting.popleft()
                running[index] = clock() + specs[index].timeout_seconds + grace_seconds
                threading.Thread(
                    target=probe, args=(index,), name=f"health-{specs[index].name}", daemon=True
                ).start()
            wait = min(running.values()) - clock() if running else _SLOT_POLL_SECONDS
            if waiting and len(running) < max_parallel:  # no free slot in the process: look again soon
                wait = min(wait, _SLOT_POLL_SECONDS)
            try:
                index, result = finished.get(timeout=max(0.0, wait))
            except queue.Empty:
                pass
            else:
                if running.pop(index, None) is not None:  # else: abandoned already, the late result dropped
                    shared.release()
                    results[index] = result
            now = clock()
            for index, deadline in list(running.items()):
                if deadline <= now:
                    del running[index]
                    shared.release()
                    spec = specs[index]
                    results[index] = result_from_error(
                        ctx.environment, spec, TimeoutError(), (spec.timeout_seconds + grace_seconds) * 1000.0
                    )
    finally:  # an interrupted call (the task's timeout) gives its slots back
        for _ in running:
            shared.release()
    return [result for result in results if result is not None]


class GroupProbeError(PermanentError):
    """At least one probe of an environment could not run (``probe_failed``): raised by the environment's
    task so that its run fails instead of reporting a finding. Carries every result of the environment, so
    that all of them (the failed probes as ``down``) are still recorded and alerted on. Its message lists
    the probes that could not run, then any finding (secret-free: details are)."""

    def __init__(self, environment: str, results: Sequence[CheckResult]) -> None:
        failed = [r for r in results if r.probe_failed]
        message = describe_failures(failed, len(results), "could not run")
        others = group_finding([r for r in results if not r.probe_failed], total=len(results))
        if others is not None:
            message = truncate_message(f"{message}; {others[1]}")
        super().__init__(message, system="health", operation=environment)
        self.results = list(results)


def group_finding(results: Sequence[CheckResult], total: int | None = None) -> tuple[str, str] | None:
    """The state name and message of an environment task whose probes all ran: None when every check is
    up; else ``Down`` (any check down) or ``Degraded``, with a message listing the failing checks, the down
    ones first, each with its detail. ``total``: the environment's checks (default: ``len(results)``)."""
    total = len(results) if total is None else total
    down = [r for r in results if r.status is CheckStatus.DOWN]
    degraded = [r for r in results if r.status is CheckStatus.DEGRADED]
    if not down and not degraded:
        return None
    parts = []
    if down:
        parts.append(describe_failures(down, total, "down"))
    if degraded:
        parts.append(describe_failures(degraded, total, "degraded"))
    return ("Down" if down else "Degraded"), truncate_message("; ".join(parts))


def describe_failures(failing: Sequence[CheckResult], total: int, what: str) -> str:
    """``2 of 10 down: api "connection refused", db "timed out"``: each check's name and its detail as a
    JSON string (quotes, backslashes and control characters escaped), cut to :data:`MESSAGE_MAX`."""
    entries = [f"{r.check} {json.dumps(r.detail or r.status.value, ensure_ascii=False)}" for r in failing]
    head = f"{len(failing)} of {total} {what}: "
    kept: list[str] = []
    used = len(head)
    for number, entry in enumerate(entries):
        rest = len(entries) - number
        tail = f", … and {rest} more" if rest > 1 else ""
        if used + len(entry) + 2 + len(tail) > MESSAGE_MAX and kept:
            return head + ", ".join(kept) + f", … and {rest} more"
        kept.append(entry)
        used += len(entry) + 2
    return head + ", ".join(kept)


def truncate_message(text: str) -> str:
    """``text`` cut to :data:`MESSAGE_MAX` characters (ending in "…" when cut)."""
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def results_from_group_outcome(
    environment: str, specs: Sequence[AnyCheck], outcome: object
) -> list[CheckResult]:
    """One result per check of an environment task's outcome: the results it returned, those carried by
    its :class:`GroupProbeError`, or a ``down`` result for every check when the task ended otherwise (a
    crash, a task timeout): checks that could not report are not healthy."""
    if isinstance(outcome, GroupProbeError):
        outcome = outcome.results
    if (
        isinstance(outcome, list)
        and len(outcome) == len(specs)
        and all(isinstance(r, CheckResult) for r in outcome)
    ):
        return list(outcome)
    error = outcome if isinstance(outcome, BaseException) else TypeError(type(outcome).__name__)
    return [result_from_error(environment, spec, error) for spec in specs]
