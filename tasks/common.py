"""What every task module shares: the one retry policy, Prefect-safe artifact keys, the run's UI link.

The retry policy (:data:`RETRY_TRANSIENT`, or :func:`retry_transient` for slow steps that need longer
waits) retries only errors that say retrying can help (:func:`envsteward.errors.is_transient`), with
exponential backoff and jitter, so that many runs hitting the same outage do not retry in lock-step. A
step that is not idempotent (its retry could do twice what the failed attempt already did) does not take
it; the task says why.
"""

from __future__ import annotations

import re
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from envsteward.errors import is_transient

TRANSIENT_RETRIES = 3
"""Attempts after the first one."""
TRANSIENT_FIRST_DELAY_SECONDS = 1.0
"""The first wait; each next one doubles (1 s, 2 s, 4 s), each then jittered."""
TRANSIENT_JITTER = 0.5
"""Prefect's ``retry_jitter_factor``: a delay may grow by up to this fraction of itself."""


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task raised a transient envsteward error."""
    # Prefect hands over Failed(data=<the exception>); read .data (state.result() would be a coroutine in
    # the async engine)
    exc = state.data
    return isinstance(exc, BaseException) and is_transient(exc)


def retry_transient(
    *, retries: int = TRANSIENT_RETRIES, first_delay_seconds: float = TRANSIENT_FIRST_DELAY_SECONDS
) -> dict[str, Any]:
    """The retry policy as ``@task`` keyword arguments: ``retries`` attempts after the first on transient
    errors only, waiting ``first_delay_seconds`` x 2^n, jittered. Use :data:`RETRY_TRANSIENT` unless the
    step is slow (a backup, a replica copy) and needs longer waits."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=first_delay_seconds)(retries),
        "retry_jitter_factor": TRANSIENT_JITTER,
        "retry_condition_fn": retry_if_transient,
    }


RETRY_TRANSIENT: dict[str, Any] = retry_transient()
"""The default policy: ``@task(name=..., **RETRY_TRANSIENT)``."""


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lower-case letters, digits and dashes only) from ``parts`` joined by ``-``."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def flow_run_link() -> str | None:
    """The current flow run's page in the Prefect UI (None when the UI's address is unknown)."""
    from prefect.runtime import flow_run

    url = flow_run.ui_url
    return str(url) if url else None
