"""The secret-inventory flow: every secret of every environment, checked against its store and policy.

Runbook:
1. Read the catalog; pick the environments (all by default).
2. For each environment, as visible tasks run all at once: describe every secret reference (exists,
   version, last change, certificate expiry), list every managed prefix (orphans), and scan every live
   configuration source for plaintext secrets. Transient errors are retried with backoff; anything still
   unreadable makes its environment ``unknown`` (nothing is concluded from what could not be seen).
3. Evaluate each environment (core decisions: missing, overdue, due, orphan, plaintext, certificate).
4. Alert through the environment's channels, de-duplicated like drift: one message when findings
   appear, change or clear (PagerDuty keeps one incident per environment).
5. Publish a table artifact per environment (``secret-inventory-<env>``) and the summary; record the
   findings for the status view, emit ``envsteward.secrets.finding`` / ``.cleared``, refresh
   ``platform-status``.
6. Return the result (no values: references, dates, paths).

Read-only. Scheduled daily by ``prefect.yaml`` (deployment ``secret-inventory``).
"""

from __future__ import annotations

from typing import Any

from envsteward.tasks.common import flow_run_link
from envsteward.tasks.health import send_alert
from envsteward.tasks.inventory import (
    describe_secret,
    evaluate_inventory,
    list_managed_secrets,
    record_secret_alerts,
    scan_live_source,
    write_inventory_artifacts,
)
from envsteward.tasks.status import publish_changes, record_secrets_status
from prefect import flow
from prefect.futures import PrefectFuture, wait

from envsteward.errors import EnvstewardError
from envsteward.health.runner import select_environments
from envsteward.inventory.backup_keys import backup_key_usages
from envsteward.inventory.classify import ReferenceFacts
from envsteward.inventory.references import collect_references
from envsteward.inventory.report import inventory_result
from envsteward.inventory.runner import live_sources, managed_prefixes, utcnow
from envsteward.scan.live import describe_failure
from envsteward.services import get_services


class AlertDeliveryError(EnvstewardError):
    """A secret-inventory notification could not be sent (the change is recorded; the run fails)."""


def _result_or_reason(run: PrefectFuture[Any]) -> Any:
    found = run.result(raise_on_failure=False)
    return describe_failure(found) if isinstance(found, BaseException) else found


@flow(
    name="secret-inventory",
    description=(
        "Secret references vs their stores: missing, overdue, orphans, plaintext, expiring certificates."
    ),
)
def secret_inventory(environments: list[str] | None = None) -> dict[str, Any]:
    """Inventory ``environments`` (all when None); returns the result of
    :func:`envsteward.inventory.report.inventory_result`.

    Raises ConfigurationError for an unknown environment, AlertDeliveryError when a notification failed.
    """
    services = get_services()
    catalog = services.catalog()
    chosen = select_environments(catalog, environments)
    now = utcnow()
    link = flow_run_link()

    runs: dict[str, dict[str, Any]] = {}
    for env in chosen:
        # the backup key-encryption keys are reported like any secret (their age against the policy)
        usages = collect_references(catalog.environment(env), catalog.render(env))
        usages += backup_key_usages(catalog, env)
        runs[env] = {
            "facts": {u.reference: describe_secret.submit(env, u.reference) for u in usages},
            "stored": {
                (scheme, prefix): list_managed_secrets.submit(env, scheme, prefix)
                for scheme, prefix in managed_prefixes(catalog, env)
            },
            "live": {name: scan_live_source.submit(env, name) for name in live_sources(catalog, env)},
        }

    evaluations = []
    for env in chosen:
        facts = {}
        for reference, run in runs[env]["facts"].items():
            found = _result_or_reason(run)
            facts[reference] = (
                found if isinstance(found, ReferenceFacts) else ReferenceFacts(error=str(found))
            )
        stored = {key: _result_or_reason(run) for key, run in runs[env]["stored"].items()}
        live = {name: _result_or_reason(run) for name, run in runs[env]["live"].items()}
        evaluations.append(evaluate_inventory.submit(env, facts, stored, live, now))
    inventories = [run.result() for run in evaluations]

    alert_runs = [record_secret_alerts.submit(inv.environment, inv, link) for inv in inventories]
    deliveries = [
        send_alert.submit(delivery.channel, delivery.notification)
        for run in alert_runs
        for delivery in run.result()
    ]
    wait(deliveries)
    write_inventory_artifacts(inventories)
    publish_changes(record_secrets_status(inventories, link, return_state=True))

    failed = [run for run in deliveries if not run.state.is_completed()]
    if failed:
        reasons = "; ".join(str(_result_or_reason(run)) for run in failed)
        raise AlertDeliveryError(
            f"{len(failed)} secret-inventory notification(s) failed: {reasons}", system="secrets"
        )
    return inventory_result(inventories)
