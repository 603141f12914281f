"""Which adapter serves which kind of spec: the one registry (DESIGN.md principle 6).

One table per kind of port, each mapping the kind a catalog spec or a settings section names to a factory:

=================  ===========================  =========================================================
table              key                          factory arguments
=================  ===========================  =========================================================
CONFIG_SOURCES     catalog ``sources[].kind``   spec, :class:`Clients`, secret resolver, catalog folder
NOTIFIERS          catalog ``channels.*.kind``  spec, settings, secret resolver
SECRET_STORES      secret reference scheme      :class:`Clients`
KEY_PROVIDERS      backup ``key_provider``      key id (or None), settings, :class:`Clients`
STATE_STORES       ``state.kind``               settings
OBJECT_STORES      ``storage.kind``             settings, :class:`Clients`
CHECKPOINT_SIGNERS ``audit.signer``             settings, :class:`Clients`
BACKUP_SOURCES     catalog ``backups[].kind``   target, environment, :class:`Clients`, secret resolver,
                                                config renderer
RESTORE_TARGETS    catalog ``backups[].kind``   target, destination, :class:`Clients`, secret resolver,
                                                overwrite
ROTATORS           rotator kind (see below)     reference, its rotation spec, generation policy,
                                                :class:`Clients`, secret resolver
=================  ===========================  =========================================================

Rotator kinds: ``vault_kv``, ``secrets_manager``, ``ssm`` (by reference scheme) and ``postgres_role`` (a
``secrets.rotation[].postgres`` spec: the role's password, stored by the reference's own stage);
:func:`envsteward.rotation.decisions.rotator_kind` picks one.

:func:`checkpoint_object_store` builds where audit checkpoints are kept (apart from the log).

Factories take narrow arguments, never :class:`~envsteward.services.Services`: only ``services.py`` uses
this registry, and nothing here (or below) imports ``services``, so there is no import cycle. Clients are
passed as getters (:class:`Clients`) so building a file source never builds a Vault or AWS client; each
factory imports its adapter module lazily, so ``envsteward --help`` loads no vendor SDK.

Backup sources and restore targets (:mod:`envsteward.backup.sources`, one module per kind) are entries here
too: their factories import ``envsteward.backup.sources.<kind>`` lazily, and those modules import only
adapters and the backup core below them, never this registry, so there is no cycle.

**Adding a kind** (a new source, notifier, store or, later, a secret rotator) is one new adapter module
(the class that implements the port, translating its vendor's errors) plus one entry here: a factory of a
few lines next to its siblings and one line in the table. A new *family* (e.g. rotators) adds a factory
type, a :class:`Registry` table and one ``Services`` method that calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from envsteward.errors import ConfigurationError
from envsteward.settings import read_credential

if TYPE_CHECKING:
    from pydantic import SecretStr

    from envsteward.adapters.aws import AWSClients
    from envsteward.adapters.vault import VaultClient
    from envsteward.audit.checkpoints import CheckpointSigner
    from envsteward.backup.sources.base import BackupSource, RestoreTarget
    from envsteward.catalog.models import GeneratedValuePolicy, RotationSpec
    from envsteward.catalog.refs import SecretRef
    from envsteward.catalog.rendered import RenderedConfig
    from envsteward.ports import ConfigSource, KeyProvider, Notifier, ObjectStore, SecretStore, StateStore
    from envsteward.rotation.engine import Rotation
    from envsteward.rotation.ports import SecretStage
    from envsteward.settings import Settings

F = TypeVar("F")

SecretResolver = Callable[["SecretRef"], "SecretStr"]
"""Fetches a secret reference's value (raises the secret store's errors: NotFoundError, ...)."""


@dataclass(frozen=True)
class Clients:
    """The vendor clients a factory may ask for, as getters: each builds its client on first call (and
    ``Services`` caches it). Raising: AuthenticationError/ConfigurationError/TransientError (Vault login)."""

    vault: Callable[[], VaultClient]
    aws: Callable[[], AWSClients]


class Registry(Generic[F]):
    """The factories of one kind of port, by the kind name a spec or a settings section uses."""

    def __init__(self, what: str, factories: Mapping[str, F]) -> None:
        self.what = what
        self._factories = dict(factories)

    def kinds(self) -> tuple[str, ...]:
        """The registered kind names, sorted."""
        return tuple(sorted(self._factories))

    def factory(self, kind: str) -> F:
        """The factory for ``kind``. Raises ConfigurationError naming the known kinds."""
        try:
            return self._factories[kind]
        except KeyError:
            raise ConfigurationError(
                f"unknown {self.what} {kind!r} (known: {', '.join(self.kinds())})"
            ) from None


def require_credential(env_var: str | None, what: str) -> SecretStr:
    """A credential held by the environment variable that settings name. Reads this process's environment.

    Raises ConfigurationError naming the variable to set (or saying that settings name none).
    """
    if not env_var:
        raise ConfigurationError(f"{what}: the settings name no environment variable that holds it")
    value = read_credential(env_var, None, what)
    if value is None:
        raise ConfigurationError(f"{what} is not set: export {env_var}")
    return value


# ---------------------------------------------------------------------------------------------------------
# Config sources. An empty store reads as an empty subtree (``missing_ok``): what the catalog expects there
# then shows up as drift, which is louder and more useful than an error, and lets a heal or promotion fill it.
# ---------------------------------------------------------------------------------------------------------

ConfigSourceFactory = Callable[[Any, Clients, SecretResolver, Path], "ConfigSource"]
"""``(catalog source spec, clients, secret resolver, catalog folder) -> ConfigSource``; builds clients only,
except the HTTP source, which resolves its bearer token now."""


def _vault_kv_source(spec: Any, clients: Clients, resolve: SecretResolver, base: Path) -> ConfigSource:
    from envsteward.adapters.vault import VaultKVSource

    return VaultKVSource(spec.name, clients.vault(), spec.path, writable=spec.writable, missing_ok=True)


def _ssm_source(spec: Any, clients: Clients, resolve: SecretResolver, base: Path) -> ConfigSource:
    from envsteward.adapters.aws_ssm import SSMParameterSource

    return SSMParameterSource(
        spec.name,
        clients.aws(),
        spec.prefix,
        writable=spec.writable,
        value_format=spec.value_format,
        missing_ok=True,
    )


def _secrets_manager_source(spec: Any, clients: Clients, resolve: SecretResolver, base: Path) -> ConfigSource:
    from envsteward.adapters.aws_secrets import SecretsManagerSource

    return SecretsManagerSource(
        spec.name, clients.aws(), spec.prefix, writable=spec.writable, missing_ok=True
    )


def _file_source(spec: Any, clients: Clients, resolve: SecretResolver, base: Path) -> ConfigSource:
    from envsteward.adapters.file_source import FileSource

    path = Path(spec.path)
    return FileSource(
        spec.name,
        path if path.is_absolute() else base / path,
        writable=spec.writable,
        file_format=spec.format,
    )


def _http_source(spec: Any, clients: Clients, resolve: SecretResolver, base: Path) -> ConfigSource:
    from pydantic import SecretStr

    from envsteward.adapters.http_source import HTTPJSONSource

    headers: dict[str, str | SecretStr] = {}
    if spec.bearer_token is not None:
        token = resolve(spec.bearer_token).get_secret_value()
        headers["Authorization"] = SecretStr(f"Bearer {token}")
    return HTTPJSONSource(spec.name, spec.url, timeout_seconds=spec.timeout_seconds, headers=headers)


CONFIG_SOURCES: Registry[ConfigSourceFactory] = Registry(
    "config source kind",
    {
        "vault_kv": _vault_kv_source,
        "ssm": _ssm_source,
        "secrets_manager": _secrets_manager_source,
        "file": _file_source,
        "http": _http_source,
    },
)


# ---------------------------------------------------------------------------------------------------------
# Notifiers (the severity filter is wrapped around them by the caller: envsteward.notify)
# ---------------------------------------------------------------------------------------------------------

NotifierFactory = Callable[[Any, "Settings", SecretResolver], "Notifier"]
"""``(catalog channel spec, settings, secret resolver) -> Notifier``; builds clients only (PagerDuty resolves
its routing key now). Raises ConfigurationError naming the variable to set when a credential is missing."""


def _slack_notifier(spec: Any, settings: Settings, resolve: SecretResolver) -> Notifier:
    from envsteward.adapters.slack import SlackNotifier

    token = require_credential(settings.slack.token_env, f"Slack bot token for channel {spec.name!r}")
    return SlackNotifier(token, spec.channel, base_url=settings.slack.base_url)


def _email_notifier(spec: Any, settings: Settings, resolve: SecretResolver) -> Notifier:
    from envsteward.adapters.email import EmailNotifier

    smtp = settings.smtp
    password = (
        require_credential(smtp.password_env, f"SMTP password for user {smtp.username!r}")
        if smtp.username
        else None
    )
    return EmailNotifier(
        smtp.host,
        smtp.port,
        smtp.sender,
        list(spec.to),
        starttls=smtp.starttls,
        username=smtp.username,
        password=password,
        timeout=smtp.timeout_seconds,
    )


def _pagerduty_notifier(spec: Any, settings: Settings, resolve: SecretResolver) -> Notifier:
    from envsteward.adapters.pagerduty import PagerDutyNotifier

    return PagerDutyNotifier(resolve(spec.routing_key), settings.pagerduty.events_url)


NOTIFIERS: Registry[NotifierFactory] = Registry(
    "notification channel kind",
    {"slack": _slack_notifier, "email": _email_notifier, "pagerduty": _pagerduty_notifier},
)


# ---------------------------------------------------------------------------------------------------------
# Secret stores, by reference scheme
# ---------------------------------------------------------------------------------------------------------

SecretStoreFactory = Callable[[Clients], "SecretStore"]


def _vault_secrets(clients: Clients) -> SecretStore:
    from envsteward.adapters.vault import VaultSecretStore

    return VaultSecretStore(clients.vault())


def _secrets_manager_secrets(clients: Clients) -> SecretStore:
    from envsteward.adapters.aws_secrets import SecretsManagerSecretStore

    return SecretsManagerSecretStore(clients.aws())


def _ssm_secrets(clients: Clients) -> SecretStore:
    from envsteward.adapters.aws_ssm import SSMSecretStore

    return SSMSecretStore(clients.aws())


def _env_secrets(clients: Clients) -> SecretStore:
    from envsteward.adapters.env_secrets import EnvSecretStore

    return EnvSecretStore()


SECRET_STORES: Registry[SecretStoreFactory] = Registry(
    "secret reference scheme",
    {"vault": _vault_secrets, "aws-sm": _secrets_manager_secrets, "ssm": _ssm_secrets, "env": _env_secrets},
)


# ---------------------------------------------------------------------------------------------------------
# Key providers (wrap backup data keys)
# ---------------------------------------------------------------------------------------------------------

KeyProviderFactory = Callable[[str | None, "Settings", Clients], "KeyProvider"]
"""``(key id or None for the settings' default, settings, clients) -> KeyProvider``."""


def _local_keys(key_id: str | None, settings: Settings, clients: Clients) -> KeyProvider:
    from envsteward.adapters.local_keys import LocalKeyProvider

    return LocalKeyProvider(settings.home / "keys" / "backup.key")


def _vault_transit_keys(key_id: str | None, settings: Settings, clients: Clients) -> KeyProvider:
    from envsteward.adapters.vault import VaultTransitKeyProvider

    return VaultTransitKeyProvider(clients.vault(), key_id or settings.vault.transit_key)


def _aws_kms_keys(key_id: str | None, settings: Settings, clients: Clients) -> KeyProvider:
    from envsteward.adapters.aws_kms import KMSKeyProvider

    kms_key = key_id or settings.aws.kms_key_id
    if not kms_key:
        raise ConfigurationError(
            "key_provider aws_kms needs a key: set key_id on the backup target or ENVSTEWARD_AWS__KMS_KEY_ID"
        )
    return KMSKeyProvider(clients.aws(), kms_key)


KEY_PROVIDERS: Registry[KeyProviderFactory] = Registry(
    "key provider",
    {"local": _local_keys, "vault_transit": _vault_transit_keys, "aws_kms": _aws_kms_keys},
)


# ---------------------------------------------------------------------------------------------------------
# State and object stores, by settings section
# ---------------------------------------------------------------------------------------------------------

StateStoreFactory = Callable[["Settings"], "StateStore"]
"""Connects lazily (the first call talks to the store). Raises ConfigurationError for a malformed URL."""


def _file_state(settings: Settings) -> StateStore:
    from envsteward.adapters.state_fs import FileStateStore

    return FileStateStore(settings.home / "state")


def _redis_state(settings: Settings) -> StateStore:
    from envsteward.adapters.state_redis import RedisStateStore

    return RedisStateStore(settings.state.redis_url, settings.state.key_prefix)


STATE_STORES: Registry[StateStoreFactory] = Registry(
    "state store kind", {"filesystem": _file_state, "redis": _redis_state}
)

ObjectStoreFactory = Callable[["Settings", Clients], "ObjectStore"]


def _filesystem_objects(settings: Settings, clients: Clients) -> ObjectStore:
    from envsteward.adapters.objectstore_fs import FilesystemObjectStore

    return FilesystemObjectStore(settings.home / "objects")


def _s3_objects(settings: Settings, clients: Clients) -> ObjectStore:
    from envsteward.adapters.aws_s3 import S3ObjectStore

    storage = settings.storage
    if not storage.bucket:
        raise ConfigurationError(
            "storage.kind is s3 but storage.bucket is not set (ENVSTEWARD_STORAGE__BUCKET)"
        )
    return S3ObjectStore(clients.aws(), storage.bucket, settings.aws.region, storage.prefix)


OBJECT_STORES: Registry[ObjectStoreFactory] = Registry(
    "storage kind", {"filesystem": _filesystem_objects, "s3": _s3_objects}
)


# ---------------------------------------------------------------------------------------------------------
# Audit checkpoint signers (``audit.signer``) and where checkpoints are kept
# ---------------------------------------------------------------------------------------------------------

CheckpointSignerFactory = Callable[["Settings", Clients], "CheckpointSigner"]
"""``(settings, clients) -> CheckpointSigner``; touches nothing (no key created, no client call)."""


def _local_signer(settings: Settings, clients: Clients) -> CheckpointSigner:
    from envsteward.adapters.local_signing import LocalCheckpointSigner

    audit = settings.audit
    return LocalCheckpointSigner(audit.signing_key_path(), audit.trusted_keys_path(), home=settings.home)


def _vault_signer(settings: Settings, clients: Clients) -> CheckpointSigner:
    from envsteward.adapters.vault import VaultCheckpointSigner

    return VaultCheckpointSigner(clients.vault(), settings.audit.vault_transit_key)


def _kms_signer(settings: Settings, clients: Clients) -> CheckpointSigner:
    from envsteward.adapters.aws_kms import KMSCheckpointSigner

    if not settings.audit.kms_key_id:
        raise ConfigurationError(
            "audit.signer is aws_kms but no key is set: set ENVSTEWARD_AUDIT__KMS_KEY_ID to an asymmetric "
            "SIGN_VERIFY key (ECC_NIST_P256)"
        )
    return KMSCheckpointSigner(clients.aws(), settings.audit.kms_key_id)


CHECKPOINT_SIGNERS: Registry[CheckpointSignerFactory] = Registry(
    "audit checkpoint signer",
    {"local": _local_signer, "vault_transit": _vault_signer, "aws_kms": _kms_signer},
)


def checkpoint_object_store(settings: Settings, clients: Clients) -> tuple[ObjectStore, str]:
    """Where audit checkpoints live, as (store, key prefix): the folder ``audit.checkpoint_dir`` (default
    ``<home>/audit-checkpoints``) for the filesystem, else ``audit.checkpoint_prefix`` in
    ``audit.checkpoint_bucket`` (default ``storage.bucket``), with Object Lock retention where that bucket
    has it. Creates at most the folder's parent (never the checkpoint folder itself: ``audit verify`` leaves
    no trace). Raises ConfigurationError (S3 without a bucket)."""
    audit = settings.audit
    if settings.storage.kind == "filesystem":
        from envsteward.adapters.objectstore_fs import FilesystemObjectStore

        folder = audit.checkpoint_dir or settings.home / "audit-checkpoints"
        return FilesystemObjectStore(folder.parent), folder.name + "/"
    from datetime import timedelta

    from envsteward.adapters.aws_s3_lock import ObjectLockS3Store

    bucket = audit.checkpoint_bucket or settings.storage.bucket
    if not bucket:
        raise ConfigurationError(
            "storage.kind is s3 but neither audit.checkpoint_bucket nor storage.bucket is set "
            "(ENVSTEWARD_AUDIT__CHECKPOINT_BUCKET)"
        )
    store = ObjectLockS3Store(
        clients.aws(),
        bucket,
        settings.aws.region,
        lock_mode=audit.object_lock_mode,
        retention=timedelta(days=audit.object_lock_days),
    )
    return store, audit.checkpoint_prefix


# ---------------------------------------------------------------------------------------------------------
# Backup sources and restore targets, by catalog backup target kind (envsteward.backup.sources.<kind>)
# ---------------------------------------------------------------------------------------------------------

ConfigRenderer = Callable[[str], "RenderedConfig"]
"""Renders an environment's desired configuration from the catalog (``Catalog.render``)."""

BackupSourceFactory = Callable[[Any, str, Clients, SecretResolver, ConfigRenderer], "BackupSource"]
"""``(catalog backup target, environment, clients, secret resolver, config renderer) -> BackupSource``.
Builds clients only; a PostgreSQL password reference is resolved now (the secret store's errors)."""

RestoreTargetFactory = Callable[[Any, str, Clients, SecretResolver, bool], "RestoreTarget"]
"""``(catalog backup target, destination, clients, secret resolver, overwrite) -> RestoreTarget``, where
``destination`` is, by kind: postgres, the NAME of an existing database on the target's server (same user
and password; no overwrite); sqlite and config, a file path; vault_kv, ``<kv-mount>/<prefix>``; ssm, a
parameter path prefix in the target's region. ``overwrite`` allows replacing existing files, secrets or
parameters (else ConflictError when restoring). Raises ConfigurationError."""


def _postgres_password(target: Any, resolve: SecretResolver) -> SecretStr | None:
    return resolve(target.password) if target.password is not None else None


def _postgres_backup(
    target: Any, environment: str, clients: Clients, resolve: SecretResolver, render: ConfigRenderer
) -> BackupSource:
    from envsteward.backup.sources.postgres import PostgresBackupSource

    return PostgresBackupSource(
        target.name, target.dsn, _postgres_password(target, resolve), summarize=target.table_checksums
    )


def _postgres_restore(
    target: Any, destination: str, clients: Clients, resolve: SecretResolver, overwrite: bool
) -> RestoreTarget:
    from envsteward.adapters.postgres import dsn_for_database
    from envsteward.backup.sources.postgres import PostgresRestoreTarget

    if overwrite:
        raise ConfigurationError(
            "postgres restores go into an empty database the caller creates: no overwrite"
        )
    return PostgresRestoreTarget(
        dsn_for_database(target.dsn, destination), _postgres_password(target, resolve)
    )


def _sqlite_backup(
    target: Any, environment: str, clients: Clients, resolve: SecretResolver, render: ConfigRenderer
) -> BackupSource:
    from envsteward.backup.sources.sqlite import SqliteBackupSource

    return SqliteBackupSource(target.name, target.path)


def _sqlite_restore(
    target: Any, destination: str, clients: Clients, resolve: SecretResolver, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.sqlite import SqliteRestoreTarget

    return SqliteRestoreTarget(destination, overwrite=overwrite)


def _vault_kv_backup(
    target: Any, environment: str, clients: Clients, resolve: SecretResolver, render: ConfigRenderer
) -> BackupSource:
    from envsteward.backup.sources.vault_kv import VaultKVBackupSource

    return VaultKVBackupSource(target.name, clients.vault(), target.path)


def _vault_kv_restore(
    target: Any, destination: str, clients: Clients, resolve: SecretResolver, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.vault_kv import VaultKVRestoreTarget

    return VaultKVRestoreTarget(clients.vault(), destination, overwrite=overwrite)


def _ssm_backup(
    target: Any, environment: str, clients: Clients, resolve: SecretResolver, render: ConfigRenderer
) -> BackupSource:
    from envsteward.backup.sources.ssm import SSMBackupSource

    return SSMBackupSource(target.name, clients.aws(), target.prefix, region=target.region)


def _ssm_restore(
    target: Any, destination: str, clients: Clients, resolve: SecretResolver, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.ssm import SSMRestoreTarget

    return SSMRestoreTarget(clients.aws(), destination, region=target.region, overwrite=overwrite)


def _config_backup(
    target: Any, environment: str, clients: Clients, resolve: SecretResolver, render: ConfigRenderer
) -> BackupSource:
    from envsteward.backup.sources.config_snapshot import ConfigSnapshotSource

    return ConfigSnapshotSource(target.name, environment, lambda: render(environment))


def _config_restore(
    target: Any, destination: str, clients: Clients, resolve: SecretResolver, overwrite: bool
) -> RestoreTarget:
    from envsteward.backup.sources.config_snapshot import ConfigSnapshotRestoreTarget

    return ConfigSnapshotRestoreTarget(destination or None, overwrite=overwrite)


BACKUP_SOURCES: Registry[BackupSourceFactory] = Registry(
    "backup source kind",
    {
        "postgres": _postgres_backup,
        "sqlite": _sqlite_backup,
        "vault_kv": _vault_kv_backup,
        "ssm": _ssm_backup,
        "config": _config_backup,
    },
)

RESTORE_TARGETS: Registry[RestoreTargetFactory] = Registry(
    "restore target kind",
    {
        "postgres": _postgres_restore,
        "sqlite": _sqlite_restore,
        "vault_kv": _vault_kv_restore,
        "ssm": _ssm_restore,
        "config": _config_restore,
    },
)


# ---------------------------------------------------------------------------------------------------------
# Secret rotators (the ``rotate-secret`` flow): a store stage by scheme, plus a consumer for a DB role
# ---------------------------------------------------------------------------------------------------------

RotatorFactory = Callable[
    ["SecretRef", "RotationSpec | None", "GeneratedValuePolicy", Clients, SecretResolver], "Rotation"
]
"""``(reference, its rotation spec or None, generation policy, clients, secret resolver) -> Rotation``;
builds clients only (the PostgreSQL admin password is resolved now). Raises ConfigurationError."""


def _store_stage(ref: SecretRef, clients: Clients) -> SecretStage:
    if ref.scheme == "vault":
        from envsteward.adapters.rotators_vault import VaultKVStage

        return VaultKVStage(clients.vault(), ref)
    if ref.scheme == "aws-sm":
        from envsteward.adapters.rotators_aws import SecretsManagerStage

        return SecretsManagerStage(clients.aws(), ref)
    if ref.scheme == "ssm":
        from envsteward.adapters.rotators_aws import SSMSecureStringStage

        return SSMSecureStringStage(clients.aws(), ref)
    raise ConfigurationError(f"{ref.uri()}: no rotator for scheme {ref.scheme!r}")


def _store_rotator(
    ref: SecretRef,
    spec: RotationSpec | None,
    policy: GeneratedValuePolicy,
    clients: Clients,
    resolve: SecretResolver,
) -> Rotation:
    from envsteward.rotation.decisions import STORE_ROTATORS
    from envsteward.rotation.engine import Rotation

    return Rotation(STORE_ROTATORS.get(ref.scheme, ref.scheme), _store_stage(ref, clients), policy)


def _postgres_role_rotator(
    ref: SecretRef,
    spec: RotationSpec | None,
    policy: GeneratedValuePolicy,
    clients: Clients,
    resolve: SecretResolver,
) -> Rotation:
    from envsteward.adapters.postgres import PostgresClient
    from envsteward.adapters.rotators_postgres import PostgresRoleConsumer
    from envsteward.rotation.engine import Rotation

    if spec is None or spec.postgres is None:
        raise ConfigurationError(f"{ref.uri()}: postgres_role rotation needs secrets.rotation[].postgres")
    role = spec.postgres
    password = resolve(role.admin_password) if role.admin_password is not None else None
    admin = PostgresClient(role.admin_dsn, password=password)
    consumer = PostgresRoleConsumer(admin, role.role, role.database, role.admin_dsn)
    return Rotation("postgres_role", _store_stage(ref, clients), policy, consumer)


ROTATORS: Registry[RotatorFactory] = Registry(
    "secret rotator",
    {
        "vault_kv": _store_rotator,
        "secrets_manager": _store_rotator,
        "ssm": _store_rotator,
        "postgres_role": _postgres_role_rotator,
    },
)
