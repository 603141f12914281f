"""What every task module shares: the retry condition and Prefect-safe artifact keys."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from envsteward.errors import is_transient


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task raised a transient envsteward error."""
    # Prefect hands over Failed(data=<the exception>); read .data (state.result() would be a coroutine in
    # the async engine)
    exc = state.data
    return isinstance(exc, BaseException) and is_transient(exc)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(char if char.isalnum() else "-" for char in text)
