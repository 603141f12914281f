"""The one place where clients for external systems are built (DESIGN.md principle 6).

Flows, tasks and CLI commands ask a :class:`Services` container for what they need; nothing else builds
an hvac, boto3, psycopg or slack-sdk client. Which adapter serves which kind of spec is the registry in
:mod:`envsteward.adapters.registry`; only this module uses it, and no module below it imports this one.
Every client is built lazily on first use and cached for the life of the container, so ``envsteward
--help`` and a scan of one environment only pay for what they use.

Tests build a ``Services`` from a ``Settings`` that points at the loopback servers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from envsteward.errors import ConfigurationError
from envsteward.settings import Settings

T = TypeVar("T")

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.registry import Clients
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit import AuditLog, CheckpointSigner
    from envsteward.backup.sources.base import BackupSource, RestoreTarget
    from envsteward.catalog import BackupTarget, Catalog
    from envsteward.catalog.models import ChannelSpec
    from envsteward.catalog.refs import SecretRef
    from envsteward.catalog.rendered import RenderedConfig
    from envsteward.fingerprint import Fingerprinter
    from envsteward.ports import ConfigSource, KeyProvider, Notifier, ObjectStore, SecretStore, StateStore
    from envsteward.rotation.engine import Rotation


class Services:
    """Lazily built, cached clients and stores for one process. Thread-safe for Prefect's thread runner."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._cache: dict[str, object] = {}

    def _cached(self, name: str, build: Callable[[], T]) -> T:
        """The object cached under ``name``, built by ``build()`` on first use (under the lock)."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = build()
            return cast("T", self._cache[name])

    # -- catalog ------------------------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """The validated catalog named by settings. Raises CatalogError listing every problem."""
        from envsteward.catalog import load_catalog

        return self._cached("catalog", lambda: load_catalog(self.settings.catalog))

    # -- clients --------------------------------------------------------------------------------------------

    def vault_client(self) -> VaultClient:
        """An authenticated Vault client (token or AppRole from settings). Raises AuthenticationError."""
        from envsteward.adapters.vault import VaultClient

        return self._cached("vault", lambda: VaultClient.from_settings(self.settings.vault))

    def aws_clients(self) -> AWSClients:
        """The boto3 client factory for every AWS service and region envsteward uses."""
        from envsteward.adapters.aws import AWSClients

        return self._cached("aws", lambda: AWSClients(self.settings.aws))

    def clients(self) -> Clients:
        """Getters for this container's cached Vault and AWS clients, as the adapter registry's factories
        take them (each client is built on first call)."""
        from envsteward.adapters.registry import Clients

        return Clients(vault=self.vault_client, aws=self.aws_clients)

    # -- stores (built by envsteward.adapters.registry) ------------------------------------------------------

    def object_store(self) -> ObjectStore:
        """The primary object store: S3 when ``storage.kind`` is ``s3``, else a folder under ``home``.

        Raises ConfigurationError (S3 without a bucket)."""
        from envsteward.adapters.registry import OBJECT_STORES

        return self._cached(
            "object_store",
            lambda: OBJECT_STORES.factory(self.settings.storage.kind)(self.settings, self.clients()),
        )

    def state_store(self) -> StateStore:
        """The state store of ``state.kind`` (a folder under ``home``, or Redis, connected lazily)."""
        from envsteward.adapters.registry import STATE_STORES

        return self._cached("state", lambda: STATE_STORES.factory(self.settings.state.kind)(self.settings))

    def audit_log(self) -> AuditLog:
        """The audit log: objects under ``audit/`` in the S3 store, else ``<home>/audit/audit.jsonl``; with
        signed checkpoints (``audit.signer``) kept apart from it. Touches nothing until used."""
        from envsteward.adapters.registry import checkpoint_object_store
        from envsteward.audit import open_audit_log, open_checkpointer

        def build() -> AuditLog:
            store = self.object_store() if self.settings.storage.kind == "s3" else None
            checkpointer = None
            if self.settings.audit.signer != "none":
                where, prefix = checkpoint_object_store(self.settings, self.clients())
                checkpointer = open_checkpointer(self.settings, where, prefix, self.checkpoint_signer)
            return open_audit_log(self.settings, store, checkpointer)

        return self._cached("audit", build)

    def checkpoint_signer(self) -> CheckpointSigner:
        """The audit checkpoint signer of ``audit.signer`` (building it creates no key and calls nothing).
        Raises ConfigurationError (``none``, unknown kind, KMS without a key)."""
        from envsteward.adapters.registry import CHECKPOINT_SIGNERS

        return self._cached(
            "checkpoint_signer",
            lambda: CHECKPOINT_SIGNERS.factory(self.settings.audit.signer)(self.settings, self.clients()),
        )

    def fingerprinter(self) -> Fingerprinter:
        """The keyed fingerprinter (key from the environment, else ``<home>/keys/fingerprint.key``).

        Raises ConfigurationError for an unusable key.
        """
        from envsteward.fingerprint import load_fingerprinter

        return self._cached("fingerprinter", lambda: load_fingerprinter(self.settings))

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider:
        """The key provider that wraps backup data keys: ``local`` (a key file under ``home``, the embedded
        default), ``vault_transit`` (a transit key) or ``aws_kms`` (a KMS key). Raises ConfigurationError."""
        from envsteward.adapters.registry import KEY_PROVIDERS

        return self._cached(
            f"keys:{kind}:{key_id}",
            lambda: KEY_PROVIDERS.factory(kind)(key_id, self.settings, self.clients()),
        )

    # -- secrets ---------------------------------------------------------------------------------------

    def secret_store(self, scheme: str) -> SecretStore:
        """The SecretStore for a reference scheme (vault, aws-sm, ssm, env). Raises ConfigurationError."""
        from envsteward.adapters.registry import SECRET_STORES

        return self._cached(f"secrets:{scheme}", lambda: SECRET_STORES.factory(scheme)(self.clients()))

    def resolve_secret(self, ref: SecretRef) -> SecretStr:
        """Fetch a secret's value into this process only. Raises NotFoundError, PermissionDeniedError, ..."""
        return self.secret_store(ref.scheme).get_secret(ref.location, ref.key)

    def rotator(self, environment: str, reference: str) -> Rotation:
        """A new (uncached: one per rotation) :class:`~envsteward.rotation.engine.Rotation` of ``reference``
        in ``environment``, built by the registry's ``ROTATORS`` from the catalog's ``secrets`` policy.
        Builds clients only (a PostgreSQL admin password is resolved now). Raises CatalogError,
        RotationRefusedError (``env://``), ConfigurationError, the secret store's errors."""
        from envsteward.adapters.registry import ROTATORS
        from envsteward.rotation.decisions import parse_reference, rotator_kind

        policy = self.catalog().environment(environment).secrets
        ref = parse_reference(reference)
        spec = policy.rotation_for(ref.uri())
        factory = ROTATORS.factory(rotator_kind(ref, spec))
        return factory(ref, spec, policy.generation_for(ref.uri()), self.clients(), self.resolve_secret)

    # -- sources and notifiers -------------------------------------------------------------------------

    def config_source(self, environment: str, source_name: str) -> ConfigSource:
        """The live ConfigSource the catalog names (clients only; an HTTP source's bearer token is resolved
        now). Raises CatalogError, ConfigurationError, the secret store's errors, or AuthenticationError /
        TransientError when Vault login fails."""
        from envsteward.adapters.registry import CONFIG_SOURCES

        catalog = self.catalog()
        env = catalog.environment(environment)
        spec = next((s for s in env.sources if s.name == source_name), None)
        if spec is None:
            known = ", ".join(s.name for s in env.sources) or "none"
            raise ConfigurationError(
                f"environment {environment!r} has no source {source_name!r} (known: {known})"
            )

        def build() -> ConfigSource:
            factory = CONFIG_SOURCES.factory(spec.kind)
            return factory(spec, self.clients(), self.resolve_secret, catalog.root)

        return self._cached(f"source:{environment}:{source_name}", build)

    def notifiers(self, channel_names: Sequence[str]) -> list[Notifier]:
        """Notifiers for the named catalog channels, each behind its channel's severity filter.

        Builds clients only (a PagerDuty routing key is resolved now, from its secret store). Raises
        ConfigurationError (unknown channel, missing credential) or the secret store's errors.
        """
        from envsteward.adapters.registry import NOTIFIERS
        from envsteward.notify import SeverityFilteredNotifier

        channels = self.catalog().channels
        unknown = [name for name in channel_names if name not in channels]
        if unknown:
            known = ", ".join(sorted(channels)) or "none"
            raise ConfigurationError(
                f"the catalog has no notification channel {', '.join(map(repr, unknown))} (known: {known})"
            )

        def build(spec: ChannelSpec) -> Notifier:
            inner = NOTIFIERS.factory(spec.kind)(spec, self.settings, self.resolve_secret)
            return SeverityFilteredNotifier(inner, spec.min_severity)

        return [
            self._cached(f"notifier:{name}", functools.partial(build, channels[name]))
            for name in channel_names
        ]

    def backup_source(self, target: BackupTarget, environment: str) -> BackupSource:
        """The backup source for one of ``environment``'s catalog backup targets (not cached).

        Builds clients only (a PostgreSQL password reference is resolved now). Raises ConfigurationError
        for a kind no source serves, and the secret store's errors.
        """
        from envsteward.adapters.registry import BACKUP_SOURCES

        def render(env: str) -> RenderedConfig:  # the catalog is loaded only by a config snapshot
            return self.catalog().render(env)

        factory = BACKUP_SOURCES.factory(target.kind)
        return factory(target, environment, self.clients(), self.resolve_secret, render)

    def restore_target(
        self, target: BackupTarget, destination: str, *, overwrite: bool = False
    ) -> RestoreTarget:
        """A restore target for dumps of ``target`` at ``destination`` (whose meaning depends on the kind:
        see :data:`envsteward.adapters.registry.RestoreTargetFactory`). Builds clients only (a PostgreSQL
        password reference is resolved now). Raises ConfigurationError, the secret store's errors."""
        from envsteward.adapters.registry import RESTORE_TARGETS

        factory = RESTORE_TARGETS.factory(target.kind)
        return factory(target, destination, self.clients(), self.resolve_secret, overwrite)

    def credential(self, env_var: str | None, what: str) -> SecretStr:
        """A credential named by settings (env var). Raises ConfigurationError naming the variable to set."""
        from envsteward.adapters.registry import require_credential

        return require_credential(env_var, what)


_default: Services | None = None
_default_lock = threading.Lock()


def get_services() -> Services:
    """The process-wide Services built from the environment's Settings (used by Prefect tasks and the CLI)."""
    global _default  # noqa: PLW0603 - one container per process, by design
    with _default_lock:
        if _default is None:
            _default = Services()
        return _default


def set_services(services: Services | None) -> None:
    """Replace the process-wide container (tests point it at loopback servers; None resets it)."""
    global _default  # noqa: PLW0603
    with _default_lock:
        _default = services
