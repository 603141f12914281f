"""Runtime settings: where the external systems are and how to reach them.

Settings come from environment variables (prefix ``ENVSTEWARD_``, nested with ``__``, e.g.
``ENVSTEWARD_VAULT__ADDR``) or an ``.env`` file. They hold *references* to secrets (the name of an
environment variable or a file that holds the credential), never secret values, so printing or logging a
Settings object is always safe.

The defaults are the embedded default: no cloud account, everything under ``./.envsteward``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from envsteward.errors import ConfigurationError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def read_credential(env_var: str | None, file: Path | None, what: str) -> SecretStr | None:
    """Resolve a credential reference: the file wins over the environment variable; None when neither is set.

    Raises ConfigurationError when a configured file cannot be read (the message names the file, not its
    content).
    """
    if file is not None:
        try:
            return SecretStr(file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigurationError(f"cannot read {what} from file {file}: {exc.strerror}") from None
    if env_var and os.environ.get(env_var):
        return SecretStr(os.environ[env_var])
    return None


class VaultSettings(_Section):
    addr: str = "http://127.0.0.1:8200"
    namespace: str | None = None
    auth: Literal["token", "approle"] = "token"
    token_env: str = "VAULT_TOKEN"  # noqa: S105 - a variable name
    token_file: Path | None = None
    approle_mount: str = "approle"
    role_id: str | None = None
    secret_id_env: str = "VAULT_SECRET_ID"  # noqa: S105 - a variable name
    secret_id_file: Path | None = None
    transit_mount: str = "transit"
    transit_key: str = "envsteward-backups"
    """Transit key that wraps backup data keys (key_provider: vault_transit)."""
    verify_tls: bool = True
    timeout_seconds: float = 10.0


class AWSSettings(_Section):
    region: str = "eu-west-1"
    dr_region: str = "eu-central-1"
    endpoint_url: str | None = None
    """Set for moto or LocalStack; None for real AWS."""
    profile: str | None = None
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    kms_key_id: str | None = None
    """KMS key (id, ARN or alias) that wraps backup data keys (key_provider: aws_kms)."""
    max_attempts: int = 2
    """botocore's own retries; envsteward's tasks retry transient errors on top."""


class SlackSettings(_Section):
    token_env: str = "SLACK_BOT_TOKEN"  # noqa: S105 - a variable name
    base_url: str = "https://slack.com/api/"
    ui_base_url: str | None = None
    """Prefect UI base URL used for links in messages (e.g. http://127.0.0.1:4200)."""


class SMTPSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str = "ENVSTEWARD_SMTP_PASSWORD"  # noqa: S105 - a variable name
    sender: str = "envsteward@localhost"
    timeout_seconds: float = 10.0


class PagerDutySettings(_Section):
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str = "PAGERDUTY_ROUTING_KEY"


class StorageSettings(_Section):
    kind: Literal["filesystem", "s3"] = "filesystem"
    bucket: str | None = None
    dr_bucket: str | None = None
    prefix: str = ""


class StateSettings(_Section):
    kind: Literal["filesystem", "redis"] = "filesystem"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "envsteward:"


class PromotionSettings(_Section):
    rollback_budget_seconds: float = Field(default=300.0, gt=0)
    """How long a failed promotion's rollback keeps retrying each key (backoff and jitter) before the run
    gives up, keeps the target's lease and leaves the rollback to the sweep
    (``ENVSTEWARD_PROMOTION__ROLLBACK_BUDGET_SECONDS``)."""


class LimitsSettings(_Section):
    """One Prefect global concurrency limit per external system (``ENVSTEWARD_LIMITS__*``).

    With ``enabled``, every task that calls Vault, SSM, Secrets Manager, S3 or a PostgreSQL backup target
    holds one slot of that system's limit (``<prefix><system>``) while it calls it, so that all workers
    together stay within the system's rate limits. ``python -m envsteward.deployments.production setup``
    creates the limits with these sizes. A limit that does not exist on the Prefect server never blocks:
    the task logs a warning and proceeds. Off in the embedded default (one process, no server round trip
    per call)."""

    enabled: bool = False
    prefix: str = Field(default="envsteward-", pattern=r"^[a-z0-9-]*$")
    vault: int = Field(default=10, ge=1)
    ssm: int = Field(default=5, ge=1)
    """SSM's GetParameter* calls throttle at a few tens per second per account and region."""
    secretsmanager: int = Field(default=10, ge=1)
    s3: int = Field(default=20, ge=1)
    postgres: int = Field(default=2, ge=1)
    """Concurrent backups/restores (pg_dump, pg_restore) against the PostgreSQL backup targets."""

    def size(self, system: str) -> int:
        """The configured size of ``system``'s limit. Raises AttributeError for an unknown system."""
        return int(getattr(self, system))


class DrillSettings(_Section):
    cluster_os_user: str = "postgres"
    """The OS user that runs a PITR drill's scratch cluster when envsteward runs as root (PostgreSQL
    refuses root); ignored otherwise (``ENVSTEWARD_DRILL__CLUSTER_OS_USER``)."""


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/envsteward``, else ``~/.config/envsteward``: where keys kept apart from
    ``ENVSTEWARD_HOME`` live by default. Reads the environment only."""
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "envsteward"


class AuditSettings(_Section):
    """Signed checkpoints of the audit log (see :mod:`envsteward.audit.checkpoints` for the trust model)."""

    signer: Literal["local", "vault_transit", "aws_kms", "none"] = "local"
    """Who signs checkpoints: ``local`` (an ed25519 key file outside ``home``), ``vault_transit`` (a transit
    key of type ed25519 or ecdsa-p256), ``aws_kms`` (an asymmetric ECC_NIST_P256 KMS key), or ``none``
    (no checkpoints: ``audit verify`` can then only check the chain's internal consistency)."""
    checkpoint_every: int = Field(default=100, ge=1)
    """A checkpoint after every N records (checked when records are appended)."""
    checkpoint_interval_seconds: float = Field(default=3600.0, gt=0)
    """...and at least this often while records are appended (plus `envsteward audit checkpoint`)."""
    signing_key_file: Path | None = None
    """``local`` signer's private key (PEM, mode 0600); default ``<user config dir>/audit-signing.key``.
    Must be outside ``home``: whoever can write the log must not be able to read it."""
    trusted_keys_file: Path | None = None
    """Pinned public-key fingerprints (``sha256:<hex>``, one a line); default
    ``<user config dir>/audit-trusted-keys``. The local signer adds its key when it creates it."""
    trusted_keys: tuple[str, ...] = ()
    """More pinned fingerprints (``ENVSTEWARD_AUDIT__TRUSTED_KEYS='["sha256:..."]'``): public, not secret."""
    vault_transit_key: str = "envsteward-audit"
    """Transit key (in ``vault.transit_mount``) that signs checkpoints (signer ``vault_transit``)."""
    kms_key_id: str | None = None
    """Asymmetric KMS key (id, ARN or alias; SIGN_VERIFY, ECC_NIST_P256) for signer ``aws_kms``."""
    checkpoint_dir: Path | None = None
    """Embedded default's checkpoint folder; default ``<home>/audit-checkpoints`` (apart from the log)."""
    checkpoint_bucket: str | None = None
    """S3 bucket for checkpoints when ``storage.kind`` is ``s3`` (default: ``storage.bucket``); give it
    Object Lock so that checkpoints cannot be deleted or replaced."""
    checkpoint_prefix: str = "audit-checkpoints/"
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    """Retention mode set on each checkpoint object when its bucket has Object Lock enabled."""
    object_lock_days: int = Field(default=400, ge=1)

    def signing_key_path(self) -> Path:
        return self.signing_key_file or user_config_dir() / "audit-signing.key"

    def trusted_keys_path(self) -> Path:
        return self.trusted_keys_file or user_config_dir() / "audit-trusted-keys"


class Settings(BaseSettings):
    """All of envsteward's runtime settings. Safe to print: it holds no secret values."""

    model_config = SettingsConfigDict(
        env_prefix="ENVSTEWARD_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    catalog: Path = Path("examples/catalog")
    home: Path = Path(".envsteward")
    """Embedded default's working folder: filesystem object store, state, audit log, local keys."""
    actor: str | None = None
    """Who is acting, for the audit log; defaults to the OS user."""
    fingerprint_key_env: str = "ENVSTEWARD_FINGERPRINT_KEY"
    """Env var holding the HMAC key used to fingerprint secret values; else a key file under ``home``."""
    vault: VaultSettings = Field(default_factory=VaultSettings)
    aws: AWSSettings = Field(default_factory=AWSSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    smtp: SMTPSettings = Field(default_factory=SMTPSettings)
    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)

    def current_actor(self) -> str:
        """The configured actor, else the OS login name, else ``unknown``."""
        if self.actor:
            return self.actor
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
