"""The catalog's pydantic models: environments, sources, channels, backup targets, approval policy.

All models are frozen and reject unknown fields. Field-level validation lives here; checks that need the
whole catalog (references between files, duplicate names, the promotion path) live in the loader.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from envsteward.catalog.refs import SecretRefField
from envsteward.health.specs import HealthCheckSpec, HealthRunSettings
from envsteward.ports import Severity
from envsteward.retention.policy import RetentionPolicy
from envsteward.tree import compile_glob

Tier = Literal["development", "staging", "production"]
TIERS: Final[tuple[Tier, ...]] = ("development", "staging", "production")
TIER_RANK: Final[dict[str, int]] = {tier: rank for rank, tier in enumerate(TIERS)}
DEFAULT_APPROVALS: Final[dict[str, int]] = {"development": 0, "staging": 1, "production": 2}
"""Approvals needed for a change to an environment of each tier when the catalog does not say."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Frozen(BaseModel):
    """Base of every catalog model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return value


MOUNT_PATTERN = re.compile(r"^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?$")


def _check_mount(value: str) -> str:
    if not MOUNT_PATTERN.match(value):
        raise ValueError(
            f"mount_at {value!r} must be keys (letters, digits, '_', '-') joined by dots, "
            "e.g. 'app.database', or '' for the whole configuration"
        )
    return value


def _check_glob(value: str) -> str:
    return compile_glob(value).text


def check_relative_file(value: str) -> str:
    path = PurePosixPath(value)
    if not value.strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{value!r} must be a path relative to the catalog folder, inside it")
    if path.suffix not in (".yaml", ".yml"):
        raise ValueError(f"{value!r} must be a YAML file (.yaml or .yml)")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
MountPath = Annotated[str, AfterValidator(_check_mount)]
PathGlobText = Annotated[str, AfterValidator(_check_glob)]
LayerFile = Annotated[str, AfterValidator(check_relative_file)]


# ---------------------------------------------------------------------------------------------------------
# Live sources
# ---------------------------------------------------------------------------------------------------------


class _SourceBase(Frozen):
    name: Name
    mount_at: MountPath = ""
    """Dotted path of the configuration subtree this source holds; ``""`` is the whole tree."""
    writable: bool = False
    """Whether envsteward may write to it (heal, promote). Read-only by default."""


def _check_vault_path(value: str) -> str:
    parts = value.strip("/").split("/")
    if len(parts) < 2 or not all(re.fullmatch(r"[A-Za-z0-9_.-]+", part) for part in parts):
        raise ValueError(f"vault_kv path {value!r} must be '<kv-mount>/<path>', e.g. 'secret/app/production'")
    return "/".join(parts)


class VaultKVSource(_SourceBase):
    """Vault KV v2: ``path`` is ``<kv-mount>/<path>``; the tree under it is read recursively. The secret
    ``<path>/database`` with data ``{host: …}`` maps to ``<mount_at>.database.host``."""

    kind: Literal["vault_kv"]
    path: Annotated[str, AfterValidator(_check_vault_path)]

    @property
    def kv_mount(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def kv_path(self) -> str:
        return self.path.split("/", 1)[1]


def _check_ssm_prefix(value: str) -> str:
    if not value.startswith("/") or not re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        raise ValueError(
            f"ssm prefix {value!r} must be a parameter path starting with '/', e.g. '/app/staging/'"
        )
    return value if value.endswith("/") else f"{value}/"


class SSMSource(_SourceBase):
    """SSM Parameter Store: parameter ``<prefix>log/level`` maps to ``<mount_at>.log.level``."""

    kind: Literal["ssm"]
    prefix: Annotated[str, AfterValidator(_check_ssm_prefix)]
    value_format: Literal["json", "string"] = "json"
    """json: each value is parsed as a JSON scalar when it parses, else kept as a string."""


def _check_sm_prefix(value: str) -> str:
    if not value or not re.fullmatch(r"[A-Za-z0-9/_+=.@-]+", value):
        raise ValueError(
            f"secrets_manager prefix {value!r} must be a secret-name prefix, e.g. 'staging/app/'"
        )
    return value if value.endswith("/") else f"{value}/"


class SecretsManagerSource(_SourceBase):
    """AWS Secrets Manager: secret ``<prefix>db`` (a JSON object) maps to ``<mount_at>.db.<key>``."""

    kind: Literal["secrets_manager"]
    prefix: Annotated[str, AfterValidator(_check_sm_prefix)]


def _check_data_file(value: Path) -> Path:
    if value.suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"file source path '{value}' must be a .yaml, .yml or .json file")
    return value


class FileSource(_SourceBase):
    """A YAML or JSON file; a relative ``path`` is resolved against the catalog folder by the loader."""

    kind: Literal["file"]
    path: Annotated[Path, AfterValidator(_check_data_file)]
    """After loading, always absolute."""

    @property
    def format(self) -> Literal["yaml", "json"]:
        return "json" if self.path.suffix == ".json" else "yaml"


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url {value!r} must be an http:// or https:// URL")
    if parts.password:
        raise ValueError("the url may not contain a password: use bearer_token with a secret reference")
    return value


class HTTPSource(_SourceBase):
    """A JSON document served over HTTP(S) (read-only)."""

    kind: Literal["http"]
    url: Annotated[str, AfterValidator(_check_http_url)]
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    bearer_token: SecretRefField | None = None

    @model_validator(mode="after")
    def _read_only(self) -> HTTPSource:
        if self.writable:
            raise ValueError("an http source is read-only: remove 'writable: true'")
        return self


SOURCE_KINDS: Final = ("vault_kv", "ssm", "secrets_manager", "file", "http")
SourceSpec = Annotated[
    VaultKVSource | SSMSource | SecretsManagerSource | FileSource | HTTPSource,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------------------------------------
# Notification channels
# ---------------------------------------------------------------------------------------------------------


class _ChannelBase(Frozen):
    name: Name
    min_severity: Severity = Severity.INFO
    """Only notifications at or above this severity are sent to the channel."""


class SlackChannel(_ChannelBase):
    kind: Literal["slack"]
    channel: str = Field(pattern=r"^[#@]?[A-Za-z0-9._-]+$")
    """Channel name (``#ops``) or ID (``C0123456``)."""


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _check_emails(value: list[str]) -> list[str]:
    bad = [address for address in value if not _EMAIL.match(address)]
    if bad:
        raise ValueError(f"not an email address: {', '.join(repr(address) for address in bad)}")
    return value


class EmailChannel(_ChannelBase):
    kind: Literal["email"]
    to: Annotated[list[str], Field(min_length=1), AfterValidator(_check_emails)]


class PagerDutyChannel(_ChannelBase):
    kind: Literal["pagerduty"]
    routing_key: SecretRefField
    """A secret reference to the Events API v2 routing key."""


ChannelSpec = Annotated[SlackChannel | EmailChannel | PagerDutyChannel, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------------------
# Backup targets
# ---------------------------------------------------------------------------------------------------------

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?-]+$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _check_cron(value: str) -> str:
    """A 5-field cron expression, checked by the cron library Prefect's own cron schedules use (cronsim),
    so that a schedule that validates here is one Prefect accepts and that can fire."""
    from cronsim import CronSim, CronSimError

    if value.strip() in _CRON_MACROS:
        return value.strip()
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(part) for part in fields):
        raise ValueError(f"schedule {value!r} must be a 5-field cron expression (e.g. '0 3 * * *') or @daily")
    expression = " ".join(fields)
    try:
        CronSim(expression, dt.datetime(2000, 1, 1))
    except CronSimError as exc:
        reason = str(exc)[:1].lower() + str(exc)[1:]
        raise ValueError(
            f"schedule {value!r}: {reason} (fields: minute 0-59, hour 0-23, day of month 1-31, "
            "month 1-12, day of week 0-7; a day that never occurs counts as bad)"
        ) from None
    return expression


class _BackupBase(Frozen):
    name: Name
    key_provider: Literal["vault_transit", "aws_kms", "local"] = "local"
    """Who wraps the per-backup data key: Vault transit, AWS KMS, or a local key (embedded default)."""
    key_id: str | None = None
    """Vault transit key name, KMS key id/ARN/alias; required for vault_transit and aws_kms."""
    encrypted: bool = True
    region: str | None = None
    """Region of the primary copy; None: the AWS region in settings."""
    replica_region: str | None = None
    """Region of the disaster-recovery replica; None: no replica."""
    schedule: Annotated[str, AfterValidator(_check_cron)] | None = None
    retention: RetentionPolicy | None = None
    """Which backups prune keeps (restic ``forget`` rules: ``last``, ``daily``, ``within``...); None: the
    default policy (``envsteward.retention.DEFAULT_POLICY``)."""

    @model_validator(mode="after")
    def _check_keys_and_regions(self) -> _BackupBase:
        if self.encrypted and self.key_provider in ("vault_transit", "aws_kms") and not self.key_id:
            raise ValueError(
                f"key_provider {self.key_provider!r} needs key_id (the transit key name or KMS key)"
            )
        return self

    @field_validator("replica_region")
    @classmethod
    def _replica_elsewhere(cls, value: str | None, info: ValidationInfo) -> str | None:
        # a field validator (not the model validator above) so that the problem points at this field's line
        if value is not None and value == info.data.get("region"):
            raise ValueError(f"replica_region {value!r} must differ from region")
        return value


def _check_dsn(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError(f"dsn {value!r} must look like postgresql://USER@HOST:PORT/DATABASE")
    if parts.password:
        raise ValueError("the dsn may not contain a password: put a secret reference in 'password'")
    return value


class SlotAlertSpec(Frozen):
    """When a streaming target's replication slot, inactive (``wal stream`` down), alerts: the slot makes
    the primary keep every WAL segment since, so ``pg_wal`` grows until its disk is full (checked by the
    ``health-check`` flow; :mod:`envsteward.pitr.slot_watch`)."""

    warn_retained_mib: int = Field(default=1024, ge=1, le=1 << 30)
    """Warn (degraded) once an inactive slot holds this much WAL."""
    warn_inactive_minutes: float = Field(default=10.0, gt=0, le=7 * 24 * 60)
    """Warn once the slot has been inactive this long, whatever it holds."""
    page_retained_mib: int = Field(default=8192, ge=1, le=1 << 30)
    """Page (down) once an inactive slot holds this much WAL: above ``warn_retained_mib``, below the free
    space of the primary's ``pg_wal`` disk."""

    @model_validator(mode="after")
    def _page_above_warn(self) -> SlotAlertSpec:
        if self.page_retained_mib <= self.warn_retained_mib:
            raise ValueError(
                f"page_retained_mib ({self.page_retained_mib}) must be above warn_retained_mib "
                f"({self.warn_retained_mib}): raise page_retained_mib or lower warn_retained_mib"
            )
        return self


_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def _check_slot_name(value: str | None) -> str | None:
    if value is not None and not _SLOT_NAME.match(value):
        raise ValueError(
            f"slot_name {value!r} is not a PostgreSQL replication slot name: use 1-63 lower-case letters, "
            "digits or underscores (e.g. envsteward_prod_db)"
        )
    return value


class ArchiveAheadSpec(Frozen):
    """``wal push`` archive-ahead (:mod:`envsteward.pitr.push_ahead`): one background pusher per data
    directory pushes the next ``.ready`` segments, so each ``archive_command`` is answered in milliseconds
    once its segment is stored in every region. On by default: a segment is still acknowledged only
    after the stores confirmed it, and a primary writing WAL faster than one synchronous archiver
    (~25 MiB/s) otherwise fills its disk."""

    enabled: bool = True
    workers: int = Field(default=2, ge=1, le=16)
    """Segments pushed at once."""
    max_ahead: int = Field(default=64, ge=1, le=4096)
    """Segments pushed but not yet acknowledged to PostgreSQL, at most."""


class PitrSpec(Frozen):
    """Point-in-time recovery for a PostgreSQL target (``envsteward wal push``/``fetch``, ``pitr ...``).

    The archive lives in the same object stores as the target's backups (the DR copy when the target has a
    ``replica_region``), under ``<env>/<target>.pitr/``, with the target's key provider.
    """

    enabled: bool = False
    archive_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    """The ``archive_timeout`` the server should have (``pitr check`` warns when it is 0 or longer)."""
    keep_base_backups: int = Field(default=2, ge=1, le=1000)
    """Base backups ``pitr prune`` keeps; WAL older than the oldest kept one is removed, never newer."""
    pg_bin: str | None = None
    """Folder of pg_basebackup, pg_ctl, pg_verifybackup; default /usr/lib/postgresql/15/bin, then PATH."""
    zstd_level: int = Field(default=1, ge=1, le=22)
    streaming: bool = False
    """Run ``envsteward wal stream`` (``pg_receivewal`` with a replication slot) beside ``archive_command``:
    the segment being written is stored every few seconds, so the RPO is seconds, not ``archive_timeout``."""
    slot_alert: SlotAlertSpec = Field(default_factory=SlotAlertSpec)
    """Thresholds of the inactive-replication-slot alert (warn at 1 GiB or 10 minutes, page at 8 GiB)."""
    slot_name: Annotated[str | None, AfterValidator(_check_slot_name)] = None
    """The replication slot of ``wal stream`` and of the slot watch (default ``envsteward_<env>_<target>``);
    set it when the streamer runs with ``--slot NAME``, so that the watch follows that slot."""
    archive_ahead: ArchiveAheadSpec = Field(default_factory=ArchiveAheadSpec)
    """``wal push`` pushes the next ready segments in the background (on; ``enabled: false`` turns it off)."""


class PostgresBackup(_BackupBase):
    kind: Literal["postgres"]
    dsn: Annotated[str, AfterValidator(_check_dsn)]
    password: SecretRefField | None = None
    table_checksums: bool = True
    """Record per-table row counts and checksums in the dump's snapshot (computed while pg_dump runs, on a
    second connection). False saves one read of every table, but a DR drill then has nothing to verify
    the restored data against and fails."""
    pitr: PitrSpec = Field(default_factory=PitrSpec)
    """Point-in-time recovery (continuous WAL archiving plus base backups); off by default."""


class SqliteBackup(_BackupBase):
    kind: Literal["sqlite"]
    path: str = Field(min_length=1)


class VaultKVBackup(_BackupBase):
    kind: Literal["vault_kv"]
    path: Annotated[str, AfterValidator(_check_vault_path)]


class SSMBackup(_BackupBase):
    kind: Literal["ssm"]
    prefix: Annotated[str, AfterValidator(_check_ssm_prefix)]


class ConfigBackup(_BackupBase):
    """A snapshot of the environment's configuration as its live sources hold it."""

    kind: Literal["config"]


BackupTarget = Annotated[
    PostgresBackup | SqliteBackup | VaultKVBackup | SSMBackup | ConfigBackup,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------------------------------------
# Disaster-recovery drills
# ---------------------------------------------------------------------------------------------------------


class SmokeQuery(Frozen):
    """A read-only query a DR drill runs against the restored database (PostgreSQL or SQLite).

    It passes when it returns at least ``min_rows`` rows and, when ``expect`` is set, the first column of
    the first row, as text, equals ``expect``. Results are never copied into reports (they may be data).
    """

    name: Name
    sql: str = Field(min_length=1)
    min_rows: int = Field(default=1, ge=0)
    expect: str | None = None


class DrillSpec(Frozen):
    """How the environment's disaster-recovery drill runs (``envsteward drill run``, flow ``dr-drill``).

    ``target``: the backup target the drill restores (default: the first postgres target, else the first
    target). ``server_dsn``: the PostgreSQL server where the drill creates its scratch database
    ``envsteward_drill_<env>_<id>`` (the DSN's database is only used to connect; no password in it) —
    required to drill a postgres target; never point it at production. ``vault_mount``: the KV v2 mount
    for the scratch prefix of Vault KV drills (default: the backed-up mount). Targets: RTO (drill start to
    verified ready) and RPO (age of the newest backup in the drilled region), in minutes.
    """

    target: Name | None = None
    server_dsn: Annotated[str, AfterValidator(_check_dsn)] | None = None
    password: SecretRefField | None = None
    vault_mount: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    rto_target_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    rpo_target_minutes: float = Field(default=5.0, gt=0, le=366 * 24 * 60)
    smoke_queries: list[SmokeQuery] = Field(default_factory=list)
    smoke_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _unique_smoke_names(self) -> DrillSpec:
        names = [query.name for query in self.smoke_queries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"smoke query names listed twice: {', '.join(duplicates)}")
        return self


# ---------------------------------------------------------------------------------------------------------
# Approval and environments
# ---------------------------------------------------------------------------------------------------------


class ApprovalPolicy(Frozen):
    """Who may approve changes to an environment, and how many approvals a change needs.

    ``approvals_needed`` defaults by tier (development 0, staging 1, production 2). The requester never
    counts as an approver of their own change.
    """

    approvers: list[str] = Field(default_factory=list)
    approvals_needed: int = Field(default=0, ge=0, le=20)
    timeout_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _enough_approvers(self) -> ApprovalPolicy:
        duplicates = sorted({name for name in self.approvers if self.approvers.count(name) > 1})
        if duplicates:
            raise ValueError(f"approvers listed twice: {', '.join(duplicates)}")
        if self.approvals_needed > len(self.approvers):
            raise ValueError(
                f"needs {self.approvals_needed} approval(s) but lists {len(self.approvers)} approver(s): add "
                "approvers or lower approvals_needed (tier defaults: development 0, staging 1, production 2)"
            )
        return self


# ---------------------------------------------------------------------------------------------------------
# Secrets policy (the secret inventory and, later, rotation)
# ---------------------------------------------------------------------------------------------------------

DEFAULT_SECRET_MAX_AGE_DAYS: Final[dict[str, int]] = {"production": 90}
"""Maximum secret age per tier when ``secrets.max_age_days`` is not set (other tiers: no maximum)."""
DEFAULT_CERTIFICATE_ALERT_DAYS: Final[tuple[int, ...]] = (30, 14, 7)
DEFAULT_BACKUP_KEY_MAX_AGE_DAYS: Final = 90
"""Maximum age of a backup key-encryption key when ``secrets.backup_key_max_age_days`` is not set."""


class SecretAgeOverride(Frozen):
    """A maximum age for one secret reference; ``max_age_days: null`` exempts it from the maximum."""

    reference: SecretRefField
    max_age_days: int | None = Field(ge=1, le=3650)


class ManagedPrefixes(Frozen):
    """Where the environment's secrets live: anything stored under these that no secret reference of the
    catalog names is an orphan. Vault: ``<kv-mount>/<path>`` (every KV v2 secret below it); Secrets Manager:
    a secret-name prefix; SSM: a parameter path (every parameter below it)."""

    vault: list[Annotated[str, AfterValidator(_check_vault_path)]] = Field(default_factory=list)
    secrets_manager: list[Annotated[str, AfterValidator(_check_sm_prefix)]] = Field(default_factory=list)
    ssm: list[Annotated[str, AfterValidator(_check_ssm_prefix)]] = Field(default_factory=list)

    def by_scheme(self) -> dict[str, list[str]]:
        """The prefixes keyed by secret reference scheme (``vault``, ``aws-sm``, ``ssm``)."""
        return {"vault": list(self.vault), "aws-sm": list(self.secrets_manager), "ssm": list(self.ssm)}


GENERATED_ALPHABETS: Final[dict[str, str]] = {
    "alphanumeric": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "hex": "0123456789abcdef",
    "base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "printable": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%*+,-.:=?@^_~",
}
"""Named alphabets for generated secret values (``printable`` leaves out quotes, ``$``, ``&``, ``/``, ``\\``
and spaces, which break shells, URLs and connection strings)."""


class GeneratedValuePolicy(Frozen):
    """How a rotation generates a new value: ``length`` characters drawn uniformly (``secrets.choice``) from
    the named ``alphabet``, or from ``characters`` when given (at least 10 distinct ones)."""

    length: int = Field(default=32, ge=16, le=4096)
    alphabet: Literal["alphanumeric", "hex", "base64url", "printable"] = "alphanumeric"
    characters: str | None = None

    @field_validator("characters")
    @classmethod
    def _enough_characters(cls, value: str | None) -> str | None:
        if value is not None and (len(set(value)) < 10 or any(ch.isspace() for ch in value)):
            raise ValueError("characters must hold at least 10 distinct characters and no whitespace")
        return value

    def symbols(self) -> str:
        """The characters a generated value is drawn from (duplicates removed, order kept)."""
        return "".join(dict.fromkeys(self.characters or GENERATED_ALPHABETS[self.alphabet]))


_PG_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


def _check_role(value: str) -> str:
    if not _PG_ROLE.match(value):
        raise ValueError(f"invalid PostgreSQL role name {value!r}")
    return value


class PostgresRoleRotation(Frozen):
    """The secret is a PostgreSQL role's password: rotation runs ``ALTER ROLE`` through ``admin_dsn`` (a
    libpq DSN without a password; ``admin_password`` is a secret reference) and tests the new password by
    connecting as ``role`` to ``database`` on the same server."""

    role: Annotated[str, AfterValidator(_check_role)]
    admin_dsn: str = Field(min_length=1)
    admin_password: SecretRefField | None = None
    database: str = Field(default="postgres", min_length=1, max_length=63)


class RotationSpec(Frozen):
    """How one reference is rotated when the store's own way is not enough: a PostgreSQL role whose password
    it holds, and/or a generation policy other than the environment's."""

    reference: SecretRefField
    generate: GeneratedValuePolicy | None = None
    postgres: PostgresRoleRotation | None = None


class SecretsPolicy(Frozen):
    """An environment's secrets policy (``environments[].secrets``).

    ``max_age_days``: how old a secret may get before it is overdue for rotation (default by tier: 90 in
    production, none elsewhere; ``null``: no maximum); ``due_within_days``: a secret is *due* this many days
    before it is overdue; ``overrides``: a maximum per reference; ``certificate_alert_days``: a PEM
    certificate held as a secret is reported when it expires within each of these many days;
    ``managed``: prefixes checked for orphans; ``backup_key_max_age_days``: the maximum age of the backup
    key-encryption key (default 90 days, every tier; ``envsteward backup rotate-key`` resets it).
    """

    max_age_days: int | None = Field(default=None, ge=1, le=3650)
    due_within_days: int = Field(default=14, ge=0, le=365)
    overrides: list[SecretAgeOverride] = Field(default_factory=list)
    certificate_alert_days: list[Annotated[int, Field(ge=1, le=3650)]] = Field(
        default_factory=lambda: list(DEFAULT_CERTIFICATE_ALERT_DAYS), min_length=1
    )
    managed: ManagedPrefixes = Field(default_factory=ManagedPrefixes)
    backup_key_max_age_days: int | None = Field(default=DEFAULT_BACKUP_KEY_MAX_AGE_DAYS, ge=1, le=3650)
    """How old the backup key-encryption key (local key file, Vault transit key, KMS key material) of this
    environment's backups may get before ``envsteward backup rotate-key`` is overdue (the inventory reports
    it like a secret); ``null``: no maximum."""
    generate: GeneratedValuePolicy = Field(default_factory=GeneratedValuePolicy)
    """Length and alphabet of values that rotation generates (``rotation[].generate`` overrides it)."""
    rotation: list[RotationSpec] = Field(default_factory=list)
    """Per reference: a PostgreSQL role to rotate with it, or its own generation policy."""

    @field_validator("rotation")
    @classmethod
    def _unique_rotations(cls, value: list[RotationSpec]) -> list[RotationSpec]:
        uris = [spec.reference.uri() for spec in value]
        duplicates = sorted({uri for uri in uris if uris.count(uri) > 1})
        if duplicates:
            raise ValueError(f"rotation lists references twice: {', '.join(duplicates)}")
        return value

    def rotation_for(self, reference: str) -> RotationSpec | None:
        """The rotation spec of the reference with URI ``reference`` (no ``secret+``); None: the defaults."""
        return next((spec for spec in self.rotation if spec.reference.uri() == reference), None)

    def generation_for(self, reference: str) -> GeneratedValuePolicy:
        """The generation policy of ``reference``: its own, else the environment's."""
        spec = self.rotation_for(reference)
        return spec.generate if spec is not None and spec.generate is not None else self.generate

    @field_validator("overrides")
    @classmethod
    def _unique_overrides(cls, value: list[SecretAgeOverride]) -> list[SecretAgeOverride]:
        uris = [override.reference.uri() for override in value]
        duplicates = sorted({uri for uri in uris if uris.count(uri) > 1})
        if duplicates:
            raise ValueError(f"references listed twice: {', '.join(duplicates)}")
        return value

    @field_validator("certificate_alert_days")
    @classmethod
    def _descending(cls, value: list[int]) -> list[int]:
        return sorted(set(value), reverse=True)

    def max_age_for(self, reference: str) -> int | None:
        """The maximum age (days) of the reference with URI ``reference`` (no ``secret+``); None: none."""
        for override in self.overrides:
            if override.reference.uri() == reference:
                return override.max_age_days
        return self.max_age_days


class EnvironmentSpec(Frozen):
    """One environment: its tier, place on the promotion path, layers, live sources and policies."""

    name: Name
    tier: Tier
    description: str = ""
    promotes_to: Name | None = None
    """The next environment on the promotion path; None for the last one."""
    overlays: list[LayerFile] = Field(default_factory=list)
    """Layer files merged over the catalog's base layers, in order (paths relative to the catalog)."""
    sources: list[SourceSpec] = Field(default_factory=list)
    health_checks: list[HealthCheckSpec] = Field(default_factory=list)
    notify: list[str] = Field(default_factory=list)
    """Names of the channels (``catalog.yaml`` ``channels``) told about this environment."""
    environment_specific: list[PathGlobText] = Field(default_factory=list)
    """Path globs that differ between environments by design: never promoted, never compared across."""
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    backups: list[BackupTarget] = Field(default_factory=list)
    drill: DrillSpec | None = None
    """Disaster-recovery drill settings; None: defaults (and no drill server, so no postgres drill)."""
    secrets: SecretsPolicy = Field(default_factory=SecretsPolicy)
    """Secret age, due window, certificate alerts and managed prefixes (the secret inventory)."""

    @model_validator(mode="after")
    def _drill_target_exists(self) -> EnvironmentSpec:
        if self.drill is not None and self.drill.target is not None:
            names = [backup.name for backup in self.backups]
            if self.drill.target not in names:
                raise ValueError(
                    f"drill.target {self.drill.target!r} is not one of this environment's backups "
                    f"({', '.join(names) or 'none'})"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _tier_default_secret_age(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("tier") not in DEFAULT_SECRET_MAX_AGE_DAYS:
            return data
        default = DEFAULT_SECRET_MAX_AGE_DAYS[data["tier"]]
        policy = data.get("secrets")
        if policy is None:
            return {**data, "secrets": {"max_age_days": default}}
        if isinstance(policy, dict) and "max_age_days" not in policy:
            return {**data, "secrets": {**policy, "max_age_days": default}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _tier_default_approvals(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("tier") not in DEFAULT_APPROVALS:
            return data
        approval = data.get("approval")
        needed = DEFAULT_APPROVALS[data["tier"]]
        if approval is None:
            return {**data, "approval": {"approvals_needed": needed}}
        if isinstance(approval, dict) and "approvals_needed" not in approval:
            return {**data, "approval": {**approval, "approvals_needed": needed}}
        return data


# ---------------------------------------------------------------------------------------------------------
# File-level documents
# ---------------------------------------------------------------------------------------------------------


class CatalogDocument(Frozen):
    """``catalog.yaml``."""

    platform: Name
    description: str = ""
    base: list[LayerFile] = Field(default_factory=list)
    """Layer files every environment starts from, merged in order."""
    channels: list[Any] = Field(default_factory=list)
    """Validated one by one as :data:`ChannelSpec` (so one bad channel does not hide the others)."""
    health: HealthRunSettings = Field(default_factory=HealthRunSettings)
    """How the ``health-check`` flow runs the checks (:class:`envsteward.health.specs.HealthRunSettings`)."""


class EnvironmentsDocument(Frozen):
    """``environments.yaml``."""

    environments: list[Any] = Field(min_length=1)
    """Validated one by one as :class:`EnvironmentSpec`."""


class PoliciesDocument(Frozen):
    """``policies.yaml`` (optional)."""

    drift: Any = None
    """Validated as :class:`envsteward.drift.rules.DriftRules`."""
    tier_rules: dict[str, Any] = Field(default_factory=dict)
    """Per tier name: overrides of the default tier rules (see :mod:`envsteward.policy.rules`)."""
