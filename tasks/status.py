"""Prefect tasks for the platform status: record what a flow saw, and refresh the ``platform-status``
artifact. Thin wrappers over :mod:`envsteward.status` (the core decides; these read Prefect's settings and
API and write artifacts).

Every flow that changes an input of the view records it (``record-*-status``, which returns the events the
change means), emits the events (:func:`envsteward.tasks.events.emit_events`) and calls
:func:`refresh_platform_status`; the health check does so every run (every minute or faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT
from envsteward.tasks.status_view import current_status
from prefect import task
from prefect.artifacts import create_markdown_artifact

from envsteward.services import get_services
from envsteward.status.charts import (
    DRIFT_CHART_KEY,
    UPTIME_CHART_KEY,
    chart_markdown,
    drift_chart,
    read_history,
    uptime_chart,
)
from envsteward.status.events import StatusEvent
from envsteward.status.records import (
    health_events,
    record_backup_run,
    record_drift,
    record_drill_run,
    record_health_point,
    record_parity,
    record_secrets,
)
from envsteward.status.render import ARTIFACT_KEY, render_markdown


@task(name="refresh-platform-status", persist_result=False, **RETRY_TRANSIENT)
def refresh_platform_status() -> dict[str, Any]:
    """Gather every environment's status (read-only) and publish the fixed-key ``platform-status``
    artifact and the two charts; return the status as JSON. Calls the state store, the backup store and
    the Prefect API (run states of promotion leases, artifacts)."""
    services = get_services()
    environments = list(services.catalog().environments)
    status = current_status(services)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=render_markdown(status),
        description="envsteward: every environment at a glance (health, drift, backups, drills, secrets)",
    )
    drift, health = read_history(services.state_store(), environments)
    create_markdown_artifact(
        key=DRIFT_CHART_KEY,
        markdown=chart_markdown("Open drift over time", drift_chart(drift)),
        description="envsteward: open drift items per environment and severity over time",
    )
    create_markdown_artifact(
        key=UPTIME_CHART_KEY,
        markdown=chart_markdown("Health uptime per environment", uptime_chart(health)),
        description="envsteward: share of health runs with every check up, per environment",
    )
    return status.as_json()


@task(name="record-health-status", persist_result=False, **RETRY_TRANSIENT)
def record_health_status(
    results: Sequence[Any], changes: Sequence[Any], link: str | None
) -> list[StatusEvent]:
    """Add this run's counts to each environment's health history; return the events of the confirmed
    changes. Calls the state store."""
    store = get_services().state_store()
    counts: dict[str, dict[str, int]] = {}
    at: dict[str, datetime] = {}
    for result in results:
        env_counts = counts.setdefault(result.environment, {})
        env_counts[result.status.value] = env_counts.get(result.status.value, 0) + 1
        at[result.environment] = max(at.get(result.environment, result.checked_at), result.checked_at)
    for env, env_counts in counts.items():
        record_health_point(store, env, at[env], env_counts, link)
    return health_events(changes)


@task(name="record-drift-status", persist_result=False, **RETRY_TRANSIENT)
def record_drift_status(
    scans: Sequence[Any], outcomes: Sequence[Any], link: str | None, parities: Sequence[Any] = ()
) -> list[StatusEvent]:
    """Record each environment's open drift and each neighbouring pair's parity findings (an unknown scan
    keeps what was known); return the ``drift.detected`` / ``drift.cleared`` events (of the environments'
    own drift). Calls the state store."""
    from envsteward.scan.model import ScanStatus
    from envsteward.scan.report import open_items

    store = get_services().state_store()
    now = datetime.now(UTC)
    found: list[StatusEvent] = []
    for scan in scans:
        unknown = scan.status is ScanStatus.UNKNOWN
        items = (
            None
            if unknown
            else [(item.fingerprint, item.severity.value) for item in open_items(scan.report, outcomes)]
        )
        found += record_drift(store, scan.environment, now, items, link, reason="a source could not be read")
    for pair in parities:
        findings = (
            None
            if pair.status is ScanStatus.UNKNOWN
            else [(item.fingerprint, item.severity.value) for item in pair.report.items]
        )
        record_parity(store, pair.left, pair.right, now, findings, link)
    return found


@task(name="record-backup-status", persist_result=False, **RETRY_TRANSIENT)
def record_backup_status(results: Sequence[Any], link: str | None) -> list[StatusEvent]:
    """Record each target's run; return ``backup.failed`` for each failed backup or replica. Calls the
    state store."""
    store = get_services().state_store()
    now = datetime.now(UTC)
    found: list[StatusEvent] = []
    for result in results:
        replica = {"ok": "ok", "failed": "failed"}.get(result.replica_status, "none")
        found += record_backup_run(
            store,
            result.environment,
            result.target,
            now,
            ok=result.status == "ok" or result.backup is not None,
            replica=replica,
            backup_id=result.backup.backup_id if result.backup else None,
            link=link,
        )
    return found


@task(name="record-drill-status", persist_result=False, **RETRY_TRANSIENT)
def record_drill_status(record: Any, link: str | None) -> list[StatusEvent]:
    """Remember the drill's run link; return ``drill.failed`` for a failed drill. Calls the state store."""
    return record_drill_run(
        get_services().state_store(),
        record.environment,
        record.drill_id,
        record.status.value,
        link,
        failed_phase=record.failed_phase.value if record.failed_phase else None,
        target=record.target,
    )


@task(name="record-secrets-status", persist_result=False, **RETRY_TRANSIENT)
def record_secrets_status(inventories: Sequence[Any], link: str | None) -> list[StatusEvent]:
    """Record each environment's findings by kind (an incomplete inventory keeps what was known); return
    the ``secrets.finding`` / ``secrets.cleared`` events. Calls the state store."""
    store = get_services().state_store()
    found: list[StatusEvent] = []
    for inventory in inventories:
        findings = (
            None if inventory.errors else [(f.id, f.kind.value, f.severity.value) for f in inventory.findings]
        )
        found += record_secrets(store, inventory.environment, inventory.checked_at, findings, link)
    return found


def publish_changes(recorded: Any) -> None:
    """After a ``record-*-status`` task (called with ``return_state=True``): emit its events and refresh
    the ``platform-status`` artifact. Neither fails the calling flow: the flow's own job (alerts, backups,
    drills) is done, and a failed refresh is visible as a failed task run in the UI."""
    from envsteward.tasks.events import emit_events

    events = recorded.result(raise_on_failure=False) if recorded is not None else None
    if isinstance(events, list) and events:
        emit_events(events, return_state=True)
    refresh_platform_status(return_state=True)
