"""Wire checks to what the process provides (:class:`CheckServices`, which ``Services`` satisfies), pick
environments, and run every check of a set of environments concurrently (the CLI path; the flow does the
same with Prefect tasks)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from envsteward.errors import ConfigurationError
from envsteward.health.checks import AnyCheck, CheckContext, run_check

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultHealth
    from envsteward.catalog.core import Catalog
    from envsteward.catalog.refs import SecretRef
    from envsteward.health.result import CheckResult
    from envsteward.settings import Settings

MAX_PARALLEL_CHECKS = 16


class CheckServices(Protocol):
    """What running health checks needs from :class:`envsteward.services.Services` (which satisfies it):
    the settings' Vault address, the secret resolver for password references, and the AWS clients."""

    @property
    def settings(self) -> Settings: ...

    def resolve_secret(self, ref: SecretRef) -> SecretStr: ...

    def aws_clients(self) -> AWSClients: ...


@dataclass(frozen=True)
class PlannedCheck:
    """One check of one environment, as the catalog defines it."""

    environment: str
    spec: AnyCheck


def select_environments(catalog: Catalog, environments: Sequence[str] | None = None) -> list[str]:
    """The named environments (all, in promotion order, when None or empty), duplicates removed.

    Raises ConfigurationError naming the known environments when a name is not in the catalog.
    """
    known = list(catalog.environments)
    wanted = list(dict.fromkeys(environments)) if environments else known
    unknown = [name for name in wanted if name not in catalog.environments]
    if unknown:
        raise ConfigurationError(
            f"unknown environment(s) {', '.join(repr(n) for n in unknown)}: "
            f"the catalog defines {', '.join(known) or 'none'}"
        )
    return wanted


def plan_checks(catalog: Catalog, environments: Sequence[str] | None = None) -> list[PlannedCheck]:
    """Every health check of the named environments (all when None), in catalog order.

    Raises ConfigurationError naming the known environments when a name is not in the catalog.
    """
    return [
        PlannedCheck(name, spec)
        for name in select_environments(catalog, environments)
        for spec in catalog.environments[name].health_checks
    ]


def by_environment(planned: Iterable[PlannedCheck]) -> dict[str, list[AnyCheck]]:
    """The planned checks per environment, in plan order (environments in their first appearance)."""
    groups: dict[str, list[AnyCheck]] = {}
    for item in planned:
        groups.setdefault(item.environment, []).append(item.spec)
    return groups


def notify_channels(catalog: Catalog, environment: str) -> list[str]:
    """The catalog channels told about ``environment`` (its ``notify`` list)."""
    return list(catalog.environments[environment].notify)


def context_from_services(services: CheckServices, environment: str) -> CheckContext:
    """A :class:`CheckContext` whose secret resolver, Vault and AWS access come from ``services``.

    Vault ``sys/health`` needs no token, so the settings' Vault is probed with an anonymous client (a check
    must not report Vault down because envsteward's own token is missing).
    """
    settings = services.settings

    def settings_vault_health(timeout_seconds: float) -> VaultHealth:
        from envsteward.adapters.vault import VaultClient

        vault_settings = settings.vault.model_copy(update={"timeout_seconds": timeout_seconds})
        return VaultClient.from_settings(vault_settings, authenticate=False).health()

    return CheckContext(
        environment=environment,
        resolve_secret=services.resolve_secret,
        vault_health=settings_vault_health,
        aws_clients=services.aws_clients,
    )


def run_planned(services: CheckServices, planned: Iterable[PlannedCheck]) -> list[CheckResult]:
    """Run the planned checks concurrently in threads; one result per check, in plan order. Never raises
    for a failing check (see :func:`~envsteward.health.checks.run_check`)."""
    items = list(planned)
    if not items:
        return []
    contexts = {p.environment: context_from_services(services, p.environment) for p in items}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(items))) as pool:
        return list(pool.map(lambda p: run_check(p.spec, contexts[p.environment]), items))
