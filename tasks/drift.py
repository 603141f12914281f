"""Prefect tasks for the drift-scan flow: thin wrappers over :mod:`envsteward.scan`.

Tasks that see live or secret values (reading a source, fingerprinting secrets, comparing, healing) never
persist their results (``persist_result=False``, which also turns result caching off, so no cache key is
ever computed from their inputs). Reads and writes retry only transient errors, with exponential backoff
and jitter, and are async so that their timeout interrupts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
from envsteward.tasks.limits import secret_systems, source_systems, system_slots
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from envsteward.scan.alerts import AlertItem, Delivery, plan_alerts, record_alerts, routes_for, state_key
from envsteward.scan.environment import scan_environment
from envsteward.scan.fingerprints import SecretFingerprints
from envsteward.scan.heal import (
    DECLINED_STATE_KEY,
    ApprovalDecision,
    HealAction,
    previously_declined,
    remember_declined,
)
from envsteward.scan.live import Deadline, read_source
from envsteward.scan.model import EnvironmentScan, HealOutcome, ParityScan
from envsteward.scan.report import (
    environment_markdown,
    heal_markdown,
    parity_markdown,
    summary_markdown,
    table_rows,
)
from envsteward.scan.runner import heal_source, parity_one, secret_fingerprints
from envsteward.services import get_services

SUMMARY_ARTIFACT_KEY = "drift-summary"
ITEMS_ARTIFACT_KEY = "drift-items"
HEAL_ARTIFACT_KEY = "drift-heal"
READ_TIMEOUT_SECONDS = 60.0
"""Above the adapters' own timeouts (Vault 10 s, AWS 30 s read): theirs fire first."""
HEAL_TIMEOUT_SECONDS = 120.0


@task(
    name="read-live-source",
    task_run_name="read-{environment}-{source_name}",
    **RETRY_TRANSIENT,
    timeout_seconds=READ_TIMEOUT_SECONDS,
    persist_result=False,
)
async def read_live_source(environment: str, source_name: str) -> Mapping[str, Any]:
    """The live subtree of one source (real values: kept in memory only). Calls the source's system.
    Raises TransientError (retried), NotFoundError, PermissionDeniedError..."""
    async with system_slots(source_systems(environment, source_name)):
        return await asyncio.to_thread(read_source, get_services(), environment, source_name)


@task(
    name="fingerprint-secrets",
    task_run_name="secrets-{environment}",
    **RETRY_TRANSIENT,
    timeout_seconds=READ_TIMEOUT_SECONDS,
    persist_result=False,
)
async def fingerprint_environment_secrets(environment: str) -> SecretFingerprints:
    """Keyed fingerprints of the environment's resolved secret references. Calls the secret stores."""
    async with system_slots(secret_systems(environment)):
        return await asyncio.to_thread(secret_fingerprints, get_services(), environment)


@task(name="compare-environment", task_run_name="compare-{environment}", persist_result=False)
def compare_environment(
    environment: str, outcomes: dict[str, Any], secrets: SecretFingerprints | None
) -> EnvironmentScan:
    """Compare desired with live (``outcomes``: source -> its subtree or the exception reading it raised) and
    plan heals. The result is redacted; the inputs are not, hence no persisted result."""
    services = get_services()
    catalog = services.catalog()
    return scan_environment(
        catalog.environment(environment),
        catalog.render(environment),
        rules=catalog.drift_rules,
        outcomes=outcomes,
        secrets=secrets,
        fingerprint=services.fingerprinter().fingerprint,
    )


@task(name="check-parity", task_run_name="parity-{left}-{right}", persist_result=False)
def check_environment_parity(
    left: str, right: str, left_secrets: SecretFingerprints | None, right_secrets: SecretFingerprints | None
) -> ParityScan:
    """Parity of two neighbouring environments (desired configurations, secret reuse)."""
    return parity_one(get_services(), left, right, {left: left_secrets, right: right_secrets})


@task(
    name="heal-source",
    task_run_name="heal-{environment}-{source_name}",
    **RETRY_TRANSIENT,
    timeout_seconds=HEAL_TIMEOUT_SECONDS,
    persist_result=False,
)
async def heal_live_source(
    environment: str,
    source_name: str,
    actions: list[HealAction],
    approvals: dict[str, tuple[str, str]] | None = None,
) -> list[HealOutcome]:
    """Heal the actions of one source: re-read, skip stale ones, write, re-read to verify, audit each.
    Retried only when the first re-read fails transiently (nothing written yet)."""
    # the task timeout cannot stop the thread: the deadline stops the writes in it
    deadline = Deadline(HEAL_TIMEOUT_SECONDS)
    async with system_slots(source_systems(environment, source_name)):
        return await asyncio.to_thread(
            heal_source, get_services(), environment, source_name, actions, approvals, deadline=deadline
        )


@task(
    name="record-drift-alerts",
    task_run_name="alerts-{scope}",
    **RETRY_TRANSIENT,
    persist_result=False,
)
def record_drift_alerts(
    scope: str,
    items: list[AlertItem] | None,
    channel_names: list[str],
    unknown_reason: str | None = None,
    link: str | None = None,
) -> list[Delivery]:
    """Fold the scope's current items into its stored alert state (atomically) and return the notifications
    to send. Calls the state store; idempotent (the same items twice plan nothing the second time)."""
    services = get_services()
    routes = routes_for(services.catalog().channels, channel_names)
    deliveries = record_alerts(
        services.state_store(),
        state_key(scope),
        lambda previous: plan_alerts(
            scope, previous, items, routes, unknown_reason=unknown_reason, link=link
        ),
    )
    return list(deliveries)


@task(name="declined-heals", persist_result=False)
def declined_heals(candidates: list[HealAction]) -> set[str]:
    """Item fingerprints of the candidates a reviewer already declined. Calls the state store."""
    return previously_declined(get_services().state_store().get(DECLINED_STATE_KEY), candidates)


@task(name="record-heal-approval", persist_result=False)
def record_heal_approval(
    decision: ApprovalDecision | None,
    candidates: list[HealAction],
    scanned: list[str],
    timeout_seconds: float,
    link: str | None = None,
) -> None:
    """Audit the reviewer's answer (``drift.heal_approval``; ``drift.heal_approval_expired`` when nobody
    answered) and remember the declines. Calls the audit log and the state store."""
    services = get_services()
    audit = services.audit_log()
    requester = services.settings.current_actor()
    if decision is None:
        audit.append(
            "drift.heal_approval_expired",
            target="drift-scan",
            details={
                "candidates": [a.id for a in candidates],
                "timeout_seconds": timeout_seconds,
                "requested_by": requester,
                "flow_run": link,
            },
        )
    else:
        audit.append(
            "drift.heal_approval",
            target="drift-scan",
            actor=decision.reviewer or requester,
            details={
                "reviewer": decision.reviewer,
                "comment": decision.comment,
                "approved": [a.id for a in decision.approved],
                "declined": {a.id: decision.reasons.get(a.id, "") for a in decision.declined},
                "requested_by": requester,
                "flow_run": link,
            },
        )
    when = datetime.now(UTC).isoformat(timespec="seconds")
    services.state_store().update(
        DECLINED_STATE_KEY, lambda state: remember_declined(state, decision, candidates, scanned, when)
    )


@task(name="write-drift-artifacts", persist_result=False)
def write_drift_artifacts(
    scans: Sequence[EnvironmentScan], parities: Sequence[ParityScan], outcomes: Sequence[HealOutcome]
) -> None:
    """Markdown per environment (``drift-<env>``) and parity pair (``drift-parity-<left>-<right>``), the
    items table (``drift-items``) and the summary (``drift-summary``, a fixed key: the UI keeps its history
    one click away)."""
    for scan in scans:
        create_markdown_artifact(
            key=artifact_key("drift", scan.environment),
            markdown=environment_markdown(scan, outcomes),
            description=f"envsteward drift: {scan.environment} ({scan.status.value})",
        )
    for pair in parities:
        create_markdown_artifact(
            key=artifact_key("drift-parity", f"{pair.left}-{pair.right}"),
            markdown=parity_markdown(pair),
            description=f"envsteward parity: {pair.left} and {pair.right} ({pair.status.value})",
        )
    create_table_artifact(
        key=ITEMS_ARTIFACT_KEY,
        table=table_rows(scans, parities),
        description="envsteward drift: one row per item (redacted)",
    )
    create_markdown_artifact(
        key=SUMMARY_ARTIFACT_KEY,
        markdown=summary_markdown(scans, parities, outcomes),
        description="envsteward drift: environment x severity, with parity",
    )


@task(name="write-heal-artifact", persist_result=False)
def write_heal_artifact(outcomes: Sequence[HealOutcome]) -> None:
    """What this run healed, skipped or could not heal (``drift-heal``)."""
    create_markdown_artifact(
        key=HEAL_ARTIFACT_KEY, markdown=heal_markdown(outcomes), description="envsteward drift: heal outcomes"
    )
