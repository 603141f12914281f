"""The health-check flow: every check of every environment, concurrently, alerting on confirmed changes.

Runbook:
1. Read the catalog; pick the environments (all by default).
2. Read the replication slot of every PITR target (check ``pitr-slot.<target>``: an inactive ``wal stream``
   slot holding WAL is degraded, then down; :mod:`envsteward.pitr.slot_watch`) while every check runs at
   once: one task run per check while the run has at most ``health.per_check_tasks_up_to`` checks
   (``catalog.yaml``, default 100), above that one task run per environment (``check-<environment>``, its
   checks probed concurrently inside it, each with its own timeout; results stay per check). A check
   (or an environment's task) that finds a service down or degraded *completes*, in a state named ``Down``
   or ``Degraded``; only a probe that could not run (a bug, an unusable check definition) fails its task
   run, and its result still counts as ``down``. No check is retried within a run: step 3 confirms findings.
3. Fold each result into the check's stored state; a status change is confirmed only after the check's
   ``consecutive`` results agree (no flapping).
4. For each confirmed change: one notification to each of the environment's channels, one audit record.
5. Publish the environment-by-check status as the ``health-status`` artifact; return a JSON summary.
6. Add the run to the status history, emit an event per confirmed change (``envsteward.health.down`` /
   ``.degraded`` / ``.recovered``) and refresh the ``platform-status`` artifact (every run).

Scheduled every 30 seconds by ``prefect.yaml`` (deployment ``health-check``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import flow_run_link
from envsteward.tasks.health import (
    audit_status_change,
    record_and_detect,
    run_environment_checks,
    run_health_check,
    send_alert,
    write_health_artifact,
)
from envsteward.tasks.pitr import pitr_slot_watch_task
from envsteward.tasks.status import publish_changes, record_health_status
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait

from envsteward.errors import EnvstewardError
from envsteward.health.alerts import AlertDeliveryError
from envsteward.health.checks import result_from_outcome
from envsteward.health.group import results_from_group_outcome
from envsteward.health.report import summary
from envsteward.health.runner import by_environment, notify_channels, plan_checks, select_environments
from envsteward.pitr.slot_watch import notification_for_change
from envsteward.services import get_services


@flow(name="health-check", description="Check every environment's services; alert on a confirmed change.")
def health_check(environments: list[str] | None = None) -> dict[str, Any]:
    """Run every health check of ``environments`` (all when None) and return the JSON summary.

    Raises ConfigurationError for an unknown environment (the message lists the known ones), and
    AlertDeliveryError after publishing the artifact when a notification could not be sent.
    """
    services = get_services()
    catalog = services.catalog()
    planned = plan_checks(catalog, environments)

    slot_run = pitr_slot_watch_task.submit(select_environments(catalog, environments))
    if len(planned) <= catalog.health.per_check_tasks_up_to:
        check_runs = [run_health_check.submit(p.environment, p.spec) for p in planned]
        results = [
            result_from_outcome(p.environment, p.spec, run.result(raise_on_failure=False))
            for p, run in zip(planned, check_runs, strict=True)
        ]
    else:  # one task run per environment: a task run costs ~45 ms of CPU, a probe ~1 ms
        groups = by_environment(planned)
        group_runs = [run_environment_checks.submit(env, specs) for env, specs in groups.items()]
        results = [
            result
            for (env, specs), run in zip(groups.items(), group_runs, strict=True)
            for result in results_from_group_outcome(env, specs, run.result(raise_on_failure=False))
        ]
    slot_results = slot_run.result(raise_on_failure=False)
    if isinstance(slot_results, BaseException):  # the checks still count; the failed task run shows why
        get_run_logger().error("the PITR replication slots could not be checked: %s", _describe(slot_results))
        slot_results = []
    results += slot_results

    consecutive = {f"{p.environment}/{p.spec.name}": p.spec.consecutive for p in planned}
    # a slot's thresholds (minutes inactive, MiB retained) already debounce it: one result confirms
    consecutive |= {f"{r.environment}/{r.check}": 1 for r in slot_results}
    changes = record_and_detect(results, consecutive)

    deliveries: list[PrefectFuture[Any]] = []
    for change in changes:
        notification = notification_for_change(change, link=flow_run_link())
        for channel in notify_channels(catalog, change.environment):
            deliveries.append(send_alert.submit(channel, notification))
        deliveries.append(audit_status_change.submit(change))
    wait(deliveries)

    write_health_artifact(results, changes)
    publish_changes(record_health_status(results, changes, flow_run_link(), return_state=True))

    failed = [run for run in deliveries if not run.state.is_completed()]
    if failed:
        reasons = "; ".join(_describe(run.result(raise_on_failure=False)) for run in failed)
        raise AlertDeliveryError(
            f"{len(failed)} alert/audit delivery(ies) failed: {reasons}", system="health"
        )
    return summary(results, changes)


def _describe(outcome: object) -> str:
    # envsteward errors carry safe messages; anything else is named by its type only
    return str(outcome) if isinstance(outcome, EnvstewardError) else type(outcome).__name__
