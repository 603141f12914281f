"""Prefect tasks for the DR drill flow: one task per drill phase, thin wrappers over :mod:`envsteward.drill`.

The phase tasks hand one :class:`~envsteward.drill.Drill` from task to task in memory: no task persists
its result or caches (the drill restores real data into a scratch target; records hold names, counts,
timings and shortened checksums only, but the rule is simple: nothing from a drill is cached). Each phase
is retried on transient errors only (a failed verification is a finding to report, and a retry would hide
it) and has its own timeout, so the Prefect UI shows which phase failed or ran long.
"""

from __future__ import annotations

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from envsteward.drill import (
    Drill,
    DrillRecord,
    drill_alerts,
    finish_drill,
    history_rows,
    load_history,
    previous_drill,
    render_markdown,
    save_drill,
    start_drill,
    table_rows,
)
from envsteward.drill import phases as drill_phases
from envsteward.drill.alerts import channel_kinds
from envsteward.drill.limits import (
    CHECK_PHASE_TIMEOUT_SECONDS,
    DATA_PHASE_TIMEOUT_SECONDS,
    DRILL_TIMEOUT_SECONDS,
    SHORT_PHASE_TIMEOUT_SECONDS,
    START_TIMEOUT_SECONDS,
)
from envsteward.ports import Notification
from envsteward.services import get_services

HISTORY_IN_REPORT = 12
ABANDONED_AFTER_SECONDS = DRILL_TIMEOUT_SECONDS
"""The sweep's threshold: every attempt of every phase below, timed out (their sum, from
:mod:`envsteward.drill.limits`, which these tasks take their timeouts from)."""
_PHASE = {"persist_result": False, "cache_policy": NO_CACHE}


@task(
    name="start-dr-drill",
    task_run_name="drill-{environment}-{backup}-{region}",
    timeout_seconds=START_TIMEOUT_SECONDS,
    **_PHASE,
)
def start_drill_task(environment: str, backup: str, region: str) -> Drill:
    """Sweep abandoned drills (their scratch targets removed, ``drill.abandoned`` audited; the drill's
    ``sweep`` says what was found), check the request, record the drill in the ledger and audit
    ``drill.started``. Not retried: each attempt names a new drill and audits it. Raises CatalogError /
    ConfigurationError for an unknown environment or a malformed request."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return start_drill(
        get_services(),
        environment,
        backup,
        region,
        run=f"flow run {run_id}" if run_id else None,
        abandoned_after_seconds=ABANDONED_AFTER_SECONDS,
    )


@task(name="drill-prepare", timeout_seconds=SHORT_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def prepare_task(drill: Drill) -> None:
    """Resolve the target, the region's store and the scratch target (nothing created)."""
    drill_phases.prepare(get_services(), drill)


@task(name="drill-choose", timeout_seconds=SHORT_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def choose_task(drill: Drill) -> str:
    """Pick the backup and measure RPO; the backup id. Lists the region's object store."""
    return drill_phases.choose(drill)


@task(name="drill-fetch-verify", timeout_seconds=DATA_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def fetch_verify_task(drill: Drill) -> None:
    """Read and authenticate the whole backup (nothing written). An integrity failure is not retried."""
    drill_phases.fetch_verify(get_services(), drill)


@task(name="drill-restore", timeout_seconds=DATA_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def restore_task(drill: Drill) -> None:
    """Create the scratch target and restore into it (a retry removes the failed attempt's target first)."""
    drill_phases.restore(drill)


@task(name="drill-verify-data", timeout_seconds=CHECK_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def verify_data_task(drill: Drill) -> None:
    """Row counts and per-table checksums against the manifest (read-only, so safe to retry)."""
    drill_phases.verify_data(drill)


@task(name="drill-health", timeout_seconds=CHECK_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def health_task(drill: Drill) -> None:
    """Health checks and smoke queries against the restored target (read-only)."""
    drill_phases.health(drill)


@task(name="drill-teardown", timeout_seconds=SHORT_PHASE_TIMEOUT_SECONDS, **_PHASE, **RETRY_TRANSIENT)
def teardown_task(drill: Drill) -> bool | None:
    """Remove the scratch target this drill created and confirm it is gone (idempotent)."""
    return drill_phases.teardown(drill)


@task(name="drill-report", timeout_seconds=SHORT_PHASE_TIMEOUT_SECONDS, **_PHASE)
def finish_drill_task(drill: Drill) -> DrillRecord:
    """The verdict and the record (RTO/RPO measured); marks the backup verified-by-drill; audits the
    outcome. Not retried: it never raises for the mark or the audit record, and a second attempt would
    audit the outcome twice."""
    return finish_drill(get_services(), drill)


@task(
    name="record-dr-drill",
    persist_result=False,
    **RETRY_TRANSIENT,
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
    **RETRY_TRANSIENT,
)
def send_drill_alert(channel: str, notification: Notification) -> str:
    """Send one notification to one catalog channel. Raises the notifier's errors."""
    (notifier,) = get_services().notifiers([channel])
    notifier.send(notification)
    return channel
