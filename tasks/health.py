"""Prefect tasks for the health check flow: thin wrappers over :mod:`envsteward.health`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from envsteward.tasks.common import RETRY_TRANSIENT
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, State

from envsteward.health.alerts import audit_details
from envsteward.health.checks import AnyCheck, run_check
from envsteward.health.group import GroupProbeError, group_finding, run_checks_watched
from envsteward.health.recording import record_results
from envsteward.health.report import render_markdown, table_rows
from envsteward.health.result import CheckProbeError, CheckResult
from envsteward.health.runner import context_from_services
from envsteward.health.tracker import StatusChange
from envsteward.ports import Notification
from envsteward.services import get_services

ARTIFACT_KEY = "health-status"
TABLE_ARTIFACT_KEY = "health-status-table"
CHECK_TASK_TIMEOUT_SECONDS = 150.0
"""Above the largest check timeout the catalog allows (120 s): the check's own timeout fires first."""
ENVIRONMENT_TASK_TIMEOUT_SECONDS = 600.0
"""A backstop only: each probe of an environment task has its own watchdog (its timeout + 2 s)."""


@task(
    name="run-health-check",
    task_run_name="check-{environment}-{spec.name}",
    # No retries: a finding is one probe's observation, confirmed over the check's `consecutive` results by
    # the tracker (the same as `envsteward health`); a probe that could not run will not run on a retry.
    retries=0,
    timeout_seconds=CHECK_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
async def run_health_check(environment: str, spec: AnyCheck) -> CheckResult | State[CheckResult]:
    """Run one check. Calls the checked system; may resolve the check's password (hence no persisted result).

    The task run's state tells the story in the Prefect UI: ``Completed`` for ``up``, ``Completed`` named
    ``Down`` or ``Degraded`` (message: the detail) for a finding, ``Failed`` only when the probe could not
    run (raises :class:`CheckProbeError`, which carries the ``down`` result the flow still records).

    Async only so that Prefect's timeout can interrupt it: the blocking check runs in a thread, and a
    timed-out check counts as ``down`` (the flow turns the TimeoutError into a result).
    """
    context = context_from_services(get_services(), environment)
    result = await asyncio.to_thread(run_check, spec, context)
    if result.probe_failed:
        raise CheckProbeError(result)
    if result.finding is None:
        return result
    return Completed(data=result, name=result.finding, message=result.detail or result.finding)


@task(
    name="run-environment-checks",
    task_run_name="check-{environment}",
    retries=0,  # as run-health-check: findings are confirmed by the tracker, not by a retry
    timeout_seconds=ENVIRONMENT_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
async def run_environment_checks(
    environment: str, specs: Sequence[AnyCheck]
) -> list[CheckResult] | State[list[CheckResult]]:
    """Run every check of one environment concurrently (the flow's grouped mode); one result per check.
    Calls the checked systems; may resolve the checks' passwords (hence no persisted result).

    The state is named for what happened: ``Completed`` when all are up, ``Completed`` named ``Down`` or
    ``Degraded`` with a message listing the failing checks, ``Failed`` only when a probe could not run
    (raises :class:`GroupProbeError`, which carries every result: the flow still records them all). A probe
    that hangs past its timeout is ``down`` without holding the others (see
    :func:`envsteward.health.group.run_checks_watched`). Async, as ``run-health-check``, so that the
    backstop timeout can interrupt it.
    """
    context = context_from_services(get_services(), environment)
    results = await asyncio.to_thread(run_checks_watched, specs, context)
    if any(result.probe_failed for result in results):
        raise GroupProbeError(environment, results)
    finding = group_finding(results)
    if finding is None:
        return results
    name, message = finding
    return Completed(data=results, name=name, message=message)


@task(
    name="record-and-detect",
    persist_result=False,
    **RETRY_TRANSIENT,
)
def record_and_detect(results: Sequence[CheckResult], consecutive: dict[str, int]) -> list[StatusChange]:
    """Fold every result into its stored state; return the confirmed changes. ``consecutive`` maps
    ``<env>/<check>`` to the check's setting. Calls the state store (idempotent: safe to retry)."""
    return record_results(get_services().state_store(), results, consecutive)


@task(
    name="send-alert",
    persist_result=False,
    **RETRY_TRANSIENT,
)
def send_alert(channel: str, notification: Notification) -> str:
    """Send one notification to one catalog channel (Slack, email, PagerDuty).

    Raises the notifier's errors (transient ones are retried)."""
    (notifier,) = get_services().notifiers([channel])
    notifier.send(notification)
    return channel


@task(
    name="audit-status-change",
    persist_result=False,
    **RETRY_TRANSIENT,
)
def audit_status_change(change: StatusChange) -> int:
    """Append a ``health.status_changed`` record to the audit log; return its sequence number."""
    record = (
        get_services()
        .audit_log()
        .append(
            "health.status_changed",
            target=f"{change.environment}/{change.check}",
            environment=change.environment,
            details=audit_details(change),
        )
    )
    return record.seq


@task(name="write-health-artifact", persist_result=False)
def write_health_artifact(results: Sequence[CheckResult], changes: Sequence[StatusChange]) -> None:
    """Publish the environment-by-check status as the ``health-status`` markdown artifact (fixed key: the
    Prefect UI shows its history) and the rows as a table artifact."""
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=render_markdown(results, changes),
        description="envsteward health: status of every check in every environment",
    )
    create_table_artifact(
        key=TABLE_ARTIFACT_KEY,
        table=table_rows(results),
        description="envsteward health: one row per check",
    )
