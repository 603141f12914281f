"""Prefect tasks for the secret-inventory flow: thin wrappers over :mod:`envsteward.inventory`.

Reading a reference looks at its value (is it a PEM certificate?) and scanning a live source reads real
values, so those tasks never persist their results (``persist_result=False``: no result, no cache key);
what they return holds metadata, dates, paths and keyed fingerprints only. Reads retry transient errors
only (:data:`envsteward.tasks.common.RETRY_TRANSIENT`) and run in a thread under a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from envsteward.tasks.common import RETRY_TRANSIENT, artifact_key
from envsteward.tasks.limits import source_systems, system_slots
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from envsteward.inventory.classify import ReferenceFacts
from envsteward.inventory.metadata import StoredSecret
from envsteward.inventory.model import EnvironmentInventory
from envsteward.inventory.plaintext import PlaintextHit
from envsteward.inventory.report import alert_items, summary_markdown, table_rows
from envsteward.inventory.runner import (
    describe_reference,
    inventory_environment,
    list_managed,
    live_plaintext,
)
from envsteward.limits import system_for_scheme
from envsteward.scan.alerts import AlertWording, Delivery, plan_alerts, record_alerts, routes_for
from envsteward.services import get_services

READ_TIMEOUT_SECONDS = 60.0
"""Above the adapters' own timeouts (Vault 10 s, AWS 30 s read): theirs fire first."""
SUMMARY_ARTIFACT_KEY = "secret-inventory-summary"
ALERT_STATE_PREFIX = "secrets/alerts/"
SECRETS_WORDING = AlertWording(
    subject="Secret findings",
    scan="secret inventory",
    still_open="Open findings stay open",
    dedup_prefix="envsteward/secrets",
    report="the secret-inventory artifact",
)


def environment_artifact_key(environment: str) -> str:
    """The fixed table-artifact key of one environment's inventory: ``secret-inventory-<env>``."""
    return artifact_key("secret-inventory", environment)


@task(
    name="describe-secret",
    task_run_name="describe-{environment}-{reference}",
    **RETRY_TRANSIENT,
    timeout_seconds=READ_TIMEOUT_SECONDS,
    persist_result=False,
)
async def describe_secret(environment: str, reference: str) -> ReferenceFacts:
    """Metadata of one reference's secret (and certificate facts). Calls its secret store."""
    # "backup-key://vault_transit:..." calls Vault; "backup-key://local" nothing
    scheme = reference.split("://", 1)[0].removeprefix("secret+")
    if scheme == "backup-key":
        scheme = "vault" if "vault_transit" in reference else ""
    async with system_slots([system_for_scheme(scheme)]):
        return await asyncio.to_thread(describe_reference, get_services(), reference)


@task(
    name="list-managed-secrets",
    task_run_name="list-{environment}-{scheme}-{prefix}",
    **RETRY_TRANSIENT,
    timeout_seconds=READ_TIMEOUT_SECONDS,
    persist_result=False,
)
async def list_managed_secrets(environment: str, scheme: str, prefix: str) -> list[StoredSecret]:
    """What is stored under one managed prefix (names and dates). Calls the store."""
    async with system_slots([system_for_scheme(scheme)]):
        return await asyncio.to_thread(list_managed, get_services(), scheme, prefix)


@task(
    name="scan-live-source",
    task_run_name="plaintext-{environment}-{source_name}",
    **RETRY_TRANSIENT,
    timeout_seconds=READ_TIMEOUT_SECONDS,
    persist_result=False,
)
async def scan_live_source(environment: str, source_name: str) -> list[PlaintextHit]:
    """Secret-looking values in one live configuration source (paths, rules, keyed fingerprints). Calls
    the source's system."""
    async with system_slots(source_systems(environment, source_name)):
        return await asyncio.to_thread(live_plaintext, get_services(), environment, source_name)


@task(name="evaluate-inventory", task_run_name="evaluate-{environment}", persist_result=False)
def evaluate_inventory(
    environment: str,
    facts: Mapping[str, ReferenceFacts],
    stored: Mapping[tuple[str, str], Sequence[StoredSecret] | str],
    live: Mapping[str, Sequence[PlaintextHit] | str],
    now: datetime,
) -> EnvironmentInventory:
    """The environment's statuses and findings (the core decides; no external call but the catalog)."""
    return inventory_environment(
        get_services(), environment, facts=facts, stored=stored, live=live, now=now, backup_keys=True
    )


@task(
    name="record-secret-alerts", task_run_name="alerts-{environment}", **RETRY_TRANSIENT, persist_result=False
)
def record_secret_alerts(
    environment: str, inventory: EnvironmentInventory, link: str | None = None
) -> list[Delivery]:
    """Fold the environment's findings into its stored alert state (atomically) and return the
    notifications to send: one when findings appear, change or clear; an incomplete inventory keeps the
    stored findings. Calls the state store; idempotent."""
    services = get_services()
    catalog = services.catalog()
    routes = routes_for(catalog.channels, list(catalog.environment(environment).notify))
    unknown = "; ".join(inventory.errors[:3]) if inventory.errors else None
    items = None if unknown else alert_items(inventory)
    deliveries = record_alerts(
        services.state_store(),
        f"{ALERT_STATE_PREFIX}{environment}",
        lambda previous: plan_alerts(
            environment, previous, items, routes, unknown_reason=unknown, link=link, wording=SECRETS_WORDING
        ),
    )
    return list(deliveries)


@task(name="write-inventory-artifacts", persist_result=False)
def write_inventory_artifacts(inventories: Sequence[EnvironmentInventory]) -> None:
    """A table per environment (fixed key ``secret-inventory-<env>``) and the summary
    (``secret-inventory-summary``): the UI keeps their history one click away."""
    for inv in inventories:
        create_table_artifact(
            key=environment_artifact_key(inv.environment),
            table=table_rows(inv),
            description=f"envsteward secret inventory: {inv.environment} ({inv.status.value})",
        )
    create_markdown_artifact(
        key=SUMMARY_ARTIFACT_KEY,
        markdown=summary_markdown(inventories),
        description="envsteward secret inventory: environment x severity",
    )
