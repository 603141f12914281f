"""The one place where clients for external systems are built (DESIGN.md principle 6).

Flows, tasks and CLI commands ask a :class:`Services` container for what they need; nothing else builds
an hvac, boto3, psycopg or slack-sdk client. Every client is built lazily on first use and cached for the
life of the container, so ``envsteward --help`` and a scan of one environment only pay for what they use.

Tests build a ``Services`` from a ``Settings`` that points at the loopback servers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from envsteward.errors import ConfigurationError
from envsteward.settings import Settings, read_credential

T = TypeVar("T")

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit import AuditLog
    from envsteward.catalog import Catalog
    from envsteward.catalog.refs import SecretRef
    from envsteward.fingerprint import Fingerprinter
    from envsteward.ports import ConfigSource, KeyProvider, Notifier, ObjectStore, SecretStore, StateStore


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

    # -- stores ---------------------------------------------------------------------------------------------

    def object_store(self) -> ObjectStore:
        """The primary object store: S3 when ``storage.kind`` is ``s3``, else a folder under ``home``."""

        def build() -> ObjectStore:
            storage = self.settings.storage
            if storage.kind == "s3":
                from envsteward.adapters.aws import S3ObjectStore

                if not storage.bucket:
                    raise ConfigurationError(
                        "storage.kind is s3 but storage.bucket is not set (ENVSTEWARD_STORAGE__BUCKET)"
                    )
                return S3ObjectStore(
                    self.aws_clients(), storage.bucket, self.settings.aws.region, storage.prefix
                )
            from envsteward.adapters.objectstore_fs import FilesystemObjectStore

            return FilesystemObjectStore(self.settings.home / "objects")

        return self._cached("object_store", build)

    def state_store(self) -> StateStore:
        """The state store of ``state.kind`` (a folder under ``home``, or Redis, connected lazily)."""
        from envsteward.state import open_state_store

        return self._cached("state", lambda: open_state_store(self.settings))

    def audit_log(self) -> AuditLog:
        """The audit log: objects under ``audit/`` in the S3 store, else ``<home>/audit/audit.jsonl``."""
        from envsteward.audit import open_audit_log

        def build() -> AuditLog:
            store = self.object_store() if self.settings.storage.kind == "s3" else None
            return open_audit_log(self.settings, store)

        return self._cached("audit", build)

    def fingerprinter(self) -> Fingerprinter:
        """The keyed fingerprinter (key from the environment, else ``<home>/keys/fingerprint.key``).

        Raises ConfigurationError for an unusable key.
        """
        from envsteward.fingerprint import load_fingerprinter

        return self._cached("fingerprinter", lambda: load_fingerprinter(self.settings))

    def key_provider(self, kind: str = "local", key_id: str | None = None) -> KeyProvider:
        """The key provider that wraps backup data keys: ``local`` (a key file under ``home``, the embedded
        default), ``vault_transit`` (a transit key) or ``aws_kms`` (a KMS key). Raises ConfigurationError."""

        def build() -> KeyProvider:
            if kind == "local":
                from envsteward.adapters.local_keys import LocalKeyProvider

                return LocalKeyProvider(self.settings.home / "keys" / "backup.key")
            if kind == "vault_transit":
                from envsteward.adapters.vault import VaultTransitKeyProvider

                return VaultTransitKeyProvider(self.vault_client(), key_id or self.settings.vault.transit_key)
            if kind == "aws_kms":
                from envsteward.adapters.aws import KMSKeyProvider

                kms_key = key_id or self.settings.aws.kms_key_id
                if not kms_key:
                    raise ConfigurationError(
                        "key_provider aws_kms needs a key: set key_id on the backup target "
                        "or ENVSTEWARD_AWS__KMS_KEY_ID"
                    )
                return KMSKeyProvider(self.aws_clients(), kms_key)
            raise ConfigurationError(
                f"unknown key provider {kind!r} (expected local, vault_transit or aws_kms)"
            )

        return self._cached(f"keys:{kind}:{key_id}", build)

    # -- secrets ---------------------------------------------------------------------------------------

    def secret_store(self, scheme: str) -> SecretStore:
        """The SecretStore for a reference scheme (vault, aws-sm, ssm, env). Raises ConfigurationError."""

        def build() -> SecretStore:
            if scheme == "vault":
                from envsteward.adapters.vault import VaultSecretStore

                return VaultSecretStore(self.vault_client())
            if scheme == "aws-sm":
                from envsteward.adapters.aws import SecretsManagerSecretStore

                return SecretsManagerSecretStore(self.aws_clients())
            if scheme == "ssm":
                from envsteward.adapters.aws import SSMSecretStore

                return SSMSecretStore(self.aws_clients())
            if scheme == "env":
                return _EnvSecretStore()
            raise ConfigurationError(f"no secret store for scheme {scheme!r}")

        return self._cached(f"secrets:{scheme}", build)

    def resolve_secret(self, ref: SecretRef) -> SecretStr:
        """Fetch a secret's value into this process only. Raises NotFoundError, PermissionDeniedError, ..."""
        return self.secret_store(ref.scheme).get_secret(ref.location, ref.key)

    # -- sources and notifiers -------------------------------------------------------------------------

    def config_source(self, environment: str, source_name: str) -> ConfigSource:
        """The live ConfigSource the catalog names. Raises CatalogError, ConfigurationError."""
        from envsteward.sources import build_config_source

        env = self.catalog().environment(environment)
        spec = next((s for s in env.sources if s.name == source_name), None)
        if spec is None:
            known = ", ".join(s.name for s in env.sources) or "none"
            raise ConfigurationError(
                f"environment {environment!r} has no source {source_name!r} (known: {known})"
            )
        return self._cached(f"source:{environment}:{source_name}", lambda: build_config_source(self, spec))

    def notifiers(self, channel_names: Sequence[str]) -> list[Notifier]:
        """Notifiers for the named catalog channels. Raises ConfigurationError (missing credential)."""
        from envsteward.notify import build_notifier

        channels = self.catalog().channels
        unknown = [name for name in channel_names if name not in channels]
        if unknown:
            known = ", ".join(sorted(channels)) or "none"
            raise ConfigurationError(
                f"the catalog has no notification channel {', '.join(map(repr, unknown))} (known: {known})"
            )
        return [
            self._cached(f"notifier:{name}", functools.partial(build_notifier, self, channels[name]))
            for name in channel_names
        ]

    def credential(self, env_var: str | None, what: str) -> SecretStr:
        """A credential named by settings (env var). Raises ConfigurationError naming the variable to set."""
        if not env_var:
            raise ConfigurationError(f"{what}: the settings name no environment variable that holds it")
        value = read_credential(env_var, None, what)
        if value is None:
            raise ConfigurationError(f"{what} is not set: export {env_var}")
        return value


class _EnvSecretStore:
    """``env://NAME`` references: a variable of this process's environment (embedded default, tests)."""

    scheme = "env"

    def get_secret(self, location: str, key: str | None) -> SecretStr:
        """The variable's value (env references have no key). Raises NotFoundError when it is not set."""
        import os

        from pydantic import SecretStr

        from envsteward.errors import NotFoundError

        if location not in os.environ:
            raise NotFoundError(
                f"environment variable {location} is not set; export it where envsteward runs",
                system="env",
                operation=f"read {location}",
            )
        return SecretStr(os.environ[location])

    def secret_exists(self, location: str, key: str | None) -> bool:
        """True when the variable is set. Reads this process's environment only."""
        import os

        return location in os.environ


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
