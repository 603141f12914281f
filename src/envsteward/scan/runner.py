"""Putting a scan together: what to read, and the whole scan without Prefect (the ``envsteward drift scan``
path; the drift-scan flow runs the same steps as Prefect tasks)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from envsteward.errors import EnvstewardError
from envsteward.health.runner import select_environments
from envsteward.ports import Severity
from envsteward.scan.environment import check_parity, scan_environment
from envsteward.scan.fingerprints import SecretFingerprints, fingerprint_secrets
from envsteward.scan.heal import execute_heals
from envsteward.scan.live import ConfigSources, Deadline, call_with_retries, read_source
from envsteward.scan.model import EnvironmentScan, HealAction, HealOutcome, HealResult, ParityScan
from envsteward.scan.report import scan_result

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.audit import AuditLog
    from envsteward.catalog.core import Catalog
    from envsteward.catalog.refs import SecretRef
    from envsteward.fingerprint import Fingerprinter

MAX_PARALLEL_READS = 16


class ScanServices(ConfigSources, Protocol):
    """What a scan needs from :class:`envsteward.services.Services` (which satisfies it): the catalog, the
    live sources, the secret resolver and fingerprinter (secrets are compared by keyed fingerprint), and
    the audit log (heals are audited)."""

    def catalog(self) -> Catalog: ...

    def resolve_secret(self, ref: SecretRef) -> SecretStr: ...

    def fingerprinter(self) -> Fingerprinter: ...

    def audit_log(self) -> AuditLog: ...


@dataclass(frozen=True)
class ScanPlan:
    """The environments to scan (promotion order), their sources, and the neighbouring pairs to check for
    parity (only pairs whose both environments are scanned)."""

    environments: tuple[str, ...]
    sources: dict[str, tuple[str, ...]]
    parity_pairs: tuple[tuple[str, str], ...]


def plan_scan(catalog: Catalog, environments: Sequence[str] | None = None) -> ScanPlan:
    """Raises ConfigurationError naming the known environments when a name is not in the catalog."""
    chosen = select_environments(catalog, environments)
    ordered = tuple(name for name in catalog.promotion_path if name in chosen)
    pairs = tuple(
        (left, right)
        for left, right in zip(catalog.promotion_path, catalog.promotion_path[1:], strict=False)
        if left in chosen and right in chosen
    )
    return ScanPlan(
        environments=ordered,
        sources={name: tuple(s.name for s in catalog.environments[name].sources) for name in ordered},
        parity_pairs=pairs,
    )


def secret_fingerprints(services: ScanServices, environment: str) -> SecretFingerprints:
    """Resolve and fingerprint every secret reference of ``environment``'s desired configuration. Calls
    the secret stores; raises TransientError when one is unreachable."""
    rendered = services.catalog().render(environment)
    return fingerprint_secrets(
        rendered.secret_refs, services.resolve_secret, services.fingerprinter().fingerprint
    )


def scan_one(
    services: ScanServices,
    environment: str,
    outcomes: dict[str, Any],
    secrets: SecretFingerprints | None,
    *,
    today: date | None = None,
) -> EnvironmentScan:
    """Compare ``environment`` with the given source outcomes (see :func:`scan_environment`)."""
    catalog = services.catalog()
    return scan_environment(
        catalog.environment(environment),
        catalog.render(environment),
        rules=catalog.drift_rules,
        outcomes=outcomes,
        secrets=secrets,
        fingerprint=services.fingerprinter().fingerprint,
        today=today,
    )


def parity_one(
    services: ScanServices,
    left: str,
    right: str,
    secrets: dict[str, SecretFingerprints | None],
) -> ParityScan:
    catalog = services.catalog()
    return check_parity(
        catalog.environment(left),
        catalog.render(left),
        catalog.environment(right),
        catalog.render(right),
        left_secrets=secrets.get(left),
        right_secrets=secrets.get(right),
        rules=catalog.drift_rules,
        fingerprint=services.fingerprinter().fingerprint,
    )


def group_by_source(actions: Sequence[HealAction]) -> dict[tuple[str, str], list[HealAction]]:
    """Actions per (environment, source), in their order: one executor call (one re-read) per source."""
    groups: dict[tuple[str, str], list[HealAction]] = {}
    for action in actions:
        groups.setdefault((action.environment, action.source), []).append(action)
    return groups


def heal_source(
    services: ScanServices,
    environment: str,
    source_name: str,
    actions: Sequence[HealAction],
    approvals: dict[str, tuple[str, str]] | None = None,
    *,
    deadline: Deadline | None = None,
) -> list[HealOutcome]:
    """Heal the actions of one source (see :func:`execute_heals`); audit each; no write once ``deadline``
    has passed. Calls the source's system and the audit log. Raises TransientError when the source cannot
    be re-read (nothing written)."""
    return execute_heals(
        actions,
        services.config_source(environment, source_name),
        services.fingerprinter().fingerprint,
        services.audit_log(),
        approvals=approvals,
        deadline=deadline,
    )


def needs_approval_outcomes(
    actions: Sequence[HealAction], threshold: Severity, why: str
) -> list[HealOutcome]:
    """Outcomes for actions above the heal threshold that were not healed in this run."""
    return [
        HealOutcome.for_action(
            a, HealResult.NOT_APPROVED, f"above the heal threshold ({threshold.value}): {why}"
        )
        for a in actions
    ]


@dataclass
class ScanRun:
    scans: list[EnvironmentScan]
    parities: list[ParityScan]
    outcomes: list[HealOutcome] = field(default_factory=list)
    heal_enabled: bool = False

    def to_dict(self, fail_on: str | None = None) -> dict[str, Any]:
        return scan_result(
            self.scans, self.parities, self.outcomes, heal_enabled=self.heal_enabled, fail_on=fail_on
        )


def _attempt(fn: Callable[[], Any], retry: bool) -> Any:
    try:
        return call_with_retries(fn) if retry else fn()
    except Exception as exc:  # noqa: BLE001 - the outcome of a read is the value or the exception
        return exc


def run_scan(
    services: ScanServices,
    environments: Sequence[str] | None = None,
    *,
    heal: bool = False,
    today: date | None = None,
    retry: bool = True,
) -> ScanRun:
    """Scan the environments (all when None) without Prefect: read every source concurrently (transient
    errors retried with exponential backoff and jitter), fingerprint secrets, compare, check parity, and,
    with ``heal``, heal the items at or below the heal threshold. Items above it are only reported (they
    need a reviewer's approval, which the drift-scan flow asks for).

    Calls every source, the secret stores and (when healing) the audit log. Raises ConfigurationError or
    CatalogError for a bad catalog or settings; an unreachable source only makes its environment unknown.
    """
    catalog = services.catalog()
    plan = plan_scan(catalog, environments)
    jobs = [(env, source) for env in plan.environments for source in plan.sources[env]]
    with ThreadPoolExecutor(
        max_workers=max(1, min(MAX_PARALLEL_READS, len(jobs) + len(plan.environments)))
    ) as pool:
        reads = {
            job: pool.submit(_attempt, functools.partial(read_source, services, *job), retry) for job in jobs
        }
        secret_jobs = {
            env: pool.submit(_attempt, functools.partial(secret_fingerprints, services, env), retry)
            for env in plan.environments
        }
        outcomes: dict[str, dict[str, Any]] = {env: {} for env in plan.environments}
        for (env, source), future in reads.items():
            outcomes[env][source] = future.result()
        secrets: dict[str, SecretFingerprints | None] = {}
        for env, future in secret_jobs.items():
            found = future.result()
            if isinstance(found, EnvstewardError) and not found.transient:
                raise found  # a catalog/settings problem, not an unreachable store
            secrets[env] = found if isinstance(found, SecretFingerprints) else None
    scans = [scan_one(services, env, outcomes[env], secrets[env], today=today) for env in plan.environments]
    parities = [parity_one(services, left, right, secrets) for left, right in plan.parity_pairs]
    run = ScanRun(scans=scans, parities=parities, heal_enabled=heal)
    if heal:
        automatic = [action for scan in scans for action in scan.heal.automatic]
        for (env, source), actions in group_by_source(automatic).items():
            job = functools.partial(heal_source, services, env, source, actions)
            run.outcomes.extend(call_with_retries(job) if retry else job())
        for scan in scans:
            run.outcomes.extend(
                needs_approval_outcomes(
                    scan.heal.needs_approval,
                    scan.heal.threshold,
                    "approve it in the drift-scan flow's approval form",
                )
            )
    return run
