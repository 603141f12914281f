"""Prefect tasks for the DR drill flow: thin wrappers over :mod:`envsteward.drill`.

The drill restores real data into a scratch target: no task persists its result (records hold names,
counts, timings and shortened checksums only, but the rule is simple: nothing from a drill is cached).
The drill itself is NOT retried: a failed drill is a finding to report, and a retry would hide it.
"""

from __future__ import annotations

from envsteward.tasks.common import artifact_key, retry_if_transient
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from envsteward.drill import (
    DrillRecord,
    drill_alerts,
    history_rows,
    load_history,
    previous_drill,
    render_markdown,
    run_drill,
    save_drill,
    table_rows,
)
from envsteward.drill.alerts import channel_kinds
from envsteward.ports import Notification
from envsteward.services import get_services

DRILL_TASK_TIMEOUT_SECONDS = 12 * 3600.0
"""A drill of a large database takes hours; it must not run into the next month's drill."""
HISTORY_IN_REPORT = 12


@task(
    name="run-dr-drill",
    task_run_name="drill-{environment}-{backup}-{region}",
    timeout_seconds=DRILL_TASK_TIMEOUT_SECONDS,
    persist_result=False,
)
def run_drill_task(environment: str, backup: str, region: str) -> DrillRecord:
    """Run the drill (choose, verify, restore into scratch, verify, health, teardown; audited).

    Returns the record for every drill outcome; raises CatalogError / ConfigurationError for an unknown
    environment or a malformed request. Calls everything :func:`envsteward.drill.run_drill` calls.
    """
    return run_drill(get_services(), environment, backup, region)


@task(
    name="record-dr-drill",
    persist_result=False,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
)
def record_drill_task(record: DrillRecord) -> list[DrillRecord]:
    """Append the record to the environment's drill history (idempotent) and return the recent history,
    oldest first. Calls the state store."""
    store = get_services().state_store()
    save_drill(store, record)
    return load_history(store, record.environment, HISTORY_IN_REPORT)


@task(name="write-dr-drill-artifacts", persist_result=False)
def write_drill_artifacts(record: DrillRecord, history: list[DrillRecord]) -> None:
    """Publish the drill report (markdown with phases, targets and the RTO/RPO chart), the verification
    table, and the history table. Keys: ``dr-drill-<env>``, ``dr-drill-verification-<env>``,
    ``dr-drill-history-<env>``."""
    create_markdown_artifact(
        key=artifact_key("dr-drill", record.environment),
        markdown=render_markdown(record, history),
        description=f"DR drill of {record.label()}: {record.status.value}",
    )
    create_table_artifact(
        key=artifact_key("dr-drill-verification", record.environment),
        table=table_rows(record)
        or [{"kind": "-", "name": "nothing verified", "result": record.status.value}],
        description=f"DR drill verification results of {record.label()}",
    )
    create_table_artifact(
        key=artifact_key("dr-drill-history", record.environment),
        table=history_rows(history),
        description=f"recent DR drills of {record.environment}",
    )


@task(name="plan-dr-drill-alerts", persist_result=False)
def plan_drill_alerts(
    record: DrillRecord, history: list[DrillRecord], link: str | None
) -> list[tuple[str, Notification]]:
    """Who to tell about this drill: failed -> every channel (PagerDuty too); target missed -> Slack and
    email; passing after a failure -> resolve. Reads the catalog."""
    catalog = get_services().catalog()
    return drill_alerts(
        record,
        catalog.environment(record.environment).notify,
        channel_kinds(catalog.channels),
        previous_drill(history, record.drill_id),
        link=link,
    )


@task(
    name="send-dr-drill-alert",
    persist_result=False,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
)
def send_drill_alert(channel: str, notification: Notification) -> str:
    """Send one notification to one catalog channel. Raises the notifier's errors."""
    (notifier,) = get_services().notifiers([channel])
    notifier.send(notification)
    return channel
