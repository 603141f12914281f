"""The inventory's calls to the secret stores and live sources, and the whole inventory without Prefect
(``envsteward secrets list|check``; the ``secret-inventory`` flow runs the same steps as tasks).

Each read function raises the store's errors (TransientError is worth retrying); :func:`run_inventory`
retries transient ones and turns anything that still fails into a safe reason, so one unreachable store
makes its environment ``unknown`` instead of stopping the rest. Read-only: nothing is created or written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from envsteward.errors import ConfigurationError, NotFoundError
from envsteward.health.runner import select_environments
from envsteward.inventory.backup_keys import backup_key_usages, describe_backup_key, is_key_reference
from envsteward.inventory.certificates import certificate_facts
from envsteward.inventory.classify import ReferenceFacts, evaluate_environment
from envsteward.inventory.metadata import SecretMetadataStore, StoredSecret
from envsteward.inventory.model import EnvironmentInventory
from envsteward.inventory.plaintext import PlaintextHit, desired_plaintext, find_plaintext
from envsteward.inventory.references import collect_references, named_locations
from envsteward.scan.live import ConfigSources, call_with_retries, describe_failure, read_source
from envsteward.secret_refs import SecretRef

if TYPE_CHECKING:
    from envsteward.catalog.core import Catalog
    from envsteward.fingerprint import Fingerprinter
    from envsteward.ports import KeyProvider, SecretStore
    from envsteward.settings import Settings

T = TypeVar("T")
NON_SECRET_SOURCE_KINDS = ("ssm", "file", "http")
"""Live sources that hold configuration, not secrets: a secret-looking value there is plaintext. (Vault KV
and Secrets Manager sources are secret stores.)"""
MAX_PARALLEL_READS = 8


class InventoryServices(ConfigSources, Protocol):
    """What the inventory needs from :class:`envsteward.services.Services` (which satisfies it)."""

    @property
    def settings(self) -> Settings: ...

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider: ...

    def catalog(self) -> Catalog: ...

    def secret_store(self, scheme: str) -> SecretStore: ...

    def fingerprinter(self) -> Fingerprinter: ...


def utcnow() -> datetime:
    """The inventory's clock (one place, so that tests can move it)."""
    return datetime.now(UTC)


def metadata_store(services: InventoryServices, scheme: str) -> SecretMetadataStore:
    """The store of ``scheme`` as a metadata reader. Raises ConfigurationError when it cannot describe
    secrets."""
    store = services.secret_store(scheme)
    if not isinstance(store, SecretMetadataStore):
        raise ConfigurationError(f"the {scheme!r} secret store cannot describe secrets (no metadata reads)")
    return store


def describe_reference(services: InventoryServices, reference: str) -> ReferenceFacts:
    """Metadata of one reference's secret, and, when it exists and its value is a PEM certificate, the
    certificate's subject and expiry. Calls the reference's store (the value is read into this function
    only and dropped). A backup key (``backup-key://...``) is described by its key provider
    (:func:`envsteward.inventory.backup_keys.describe_backup_key`). Raises PermissionDeniedError,
    TransientError, ConfigurationError..."""
    if is_key_reference(reference):
        return describe_backup_key(services, reference)
    ref = SecretRef.parse(reference)
    metadata = metadata_store(services, ref.scheme).describe_secret(ref.location, ref.key)
    certificate = None
    if metadata.exists:
        try:
            value = services.secret_store(ref.scheme).get_secret(ref.location, ref.key)
        except NotFoundError:
            value = None  # removed between the two calls: the metadata said it exists, keep that
        if value is not None:
            certificate = certificate_facts(value.get_secret_value())
    return ReferenceFacts(metadata=metadata, certificate=certificate)


def managed_prefixes(catalog: Catalog, environment: str) -> list[tuple[str, str]]:
    """``(scheme, prefix)`` for each managed prefix of the environment's secrets policy."""
    managed = catalog.environment(environment).secrets.managed.by_scheme()
    return [(scheme, prefix) for scheme, prefixes in managed.items() for prefix in prefixes]


def list_managed(services: InventoryServices, scheme: str, prefix: str) -> list[StoredSecret]:
    """What is stored under one managed prefix (metadata only). Calls the store. Raises its errors."""
    return metadata_store(services, scheme).list_secrets(prefix)


def live_sources(catalog: Catalog, environment: str) -> list[str]:
    """The environment's live sources that hold configuration (scanned for plaintext secrets)."""
    return [s.name for s in catalog.environment(environment).sources if s.kind in NON_SECRET_SOURCE_KINDS]


def live_plaintext(services: InventoryServices, environment: str, source_name: str) -> list[PlaintextHit]:
    """Read one live source (the drift scan's reading) and return its secret-looking values as hits (path,
    rule, keyed fingerprint; the values stay here). Paths where the desired configuration holds a secret
    reference are not judged: the secret is expected there. Calls the source's system."""
    catalog = services.catalog()
    spec = next(s for s in catalog.environment(environment).sources if s.name == source_name)
    rendered = catalog.render(environment)
    subtree = read_source(services, environment, source_name)
    fingerprint = services.fingerprinter().fingerprint
    return list(
        find_plaintext(
            subtree, fingerprint, prefix=spec.mount_at, skip=lambda path: path in rendered.secret_refs
        )
    )


def inventory_environment(
    services: InventoryServices,
    environment: str,
    *,
    facts: Mapping[str, ReferenceFacts],
    stored: Mapping[tuple[str, str], Sequence[StoredSecret] | str],
    live: Mapping[str, Sequence[PlaintextHit] | str],
    now: datetime,
    backup_keys: bool = False,
) -> EnvironmentInventory:
    """Evaluate one environment from what was read (plus its desired configuration, scanned here). With
    ``backup_keys``, the backup KEKs of the environment are reported too (their facts in ``facts``,
    keyed by :func:`envsteward.inventory.backup_keys.key_reference`)."""
    catalog = services.catalog()
    spec = catalog.environment(environment)
    rendered = catalog.render(environment)
    return evaluate_environment(
        environment,
        spec.tier,
        usages=collect_references(spec, rendered),
        facts=facts,
        policy=spec.secrets,
        now=now,
        desired_hits=desired_plaintext(rendered.data, services.fingerprinter().fingerprint),
        desired_origins=rendered.origins,
        live_hits=live,
        stored=stored,
        named=named_locations(catalog) if stored else {},
        backup_keys=backup_key_usages(catalog, environment) if backup_keys else (),
    )


def _outcome(fn: Callable[[], T], retry: bool) -> T | str:
    try:
        return call_with_retries(fn) if retry else fn()
    except Exception as exc:  # noqa: BLE001 - what a read gives is its result or why it failed
        return describe_failure(exc)


def run_inventory(
    services: InventoryServices,
    environments: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
    retry: bool = True,
    backup_keys: bool = True,
) -> list[EnvironmentInventory]:
    """The inventory of the environments (all when None), in promotion order. Calls every referenced
    secret store, the stores of the managed prefixes and the live configuration sources, concurrently;
    transient errors are retried with backoff; with ``backup_keys`` (the default) the backup KEKs' ages
    too (the key providers, read-only). Raises ConfigurationError for an unknown environment,
    CatalogError for a bad catalog; an unreadable store only makes its environment ``unknown``."""
    catalog = services.catalog()
    chosen = select_environments(catalog, environments)
    moment = now or utcnow()
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_READS) as pool:
        jobs: dict[str, dict[str, Any]] = {}
        for env in chosen:
            usages = collect_references(catalog.environment(env), catalog.render(env))
            if backup_keys:
                usages += backup_key_usages(catalog, env)
            jobs[env] = {
                "facts": {
                    u.reference: pool.submit(
                        _outcome, functools.partial(describe_reference, services, u.reference), retry
                    )
                    for u in usages
                },
                "stored": {
                    key: pool.submit(_outcome, functools.partial(list_managed, services, *key), retry)
                    for key in managed_prefixes(catalog, env)
                },
                "live": {
                    name: pool.submit(_outcome, functools.partial(live_plaintext, services, env, name), retry)
                    for name in live_sources(catalog, env)
                },
            }
        results = []
        for env in chosen:
            facts = {
                ref: found if isinstance(found, ReferenceFacts) else ReferenceFacts(error=str(found))
                for ref, future in jobs[env]["facts"].items()
                for found in [future.result()]
            }
            stored = {key: future.result() for key, future in jobs[env]["stored"].items()}
            live = {name: future.result() for name, future in jobs[env]["live"].items()}
            results.append(
                inventory_environment(
                    services, env, facts=facts, stored=stored, live=live, now=moment, backup_keys=backup_keys
                )
            )
    return results
