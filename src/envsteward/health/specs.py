"""Health check definitions as they appear in the catalog (``environments.<env>.health_checks``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from envsteward.secret_refs import SecretRefField


class _CheckBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    consecutive: int = Field(default=2, ge=1, le=20)
    """Alert on a status change only after this many consecutive results agree (no flapping)."""


class HTTPCheck(_CheckBase):
    kind: Literal["http"]
    url: str
    expect_status: list[int] = Field(default_factory=lambda: [200])
    max_latency_ms: int = Field(default=1000, gt=0)


class PostgresCheck(_CheckBase):
    kind: Literal["postgres"]
    dsn: str
    """libpq connection string without a password, e.g. ``postgresql://app@db:5432/app``."""
    password: SecretRefField | None = None
    query: str = "SELECT 1"


class RedisCheck(_CheckBase):
    kind: Literal["redis"]
    url: str
    password: SecretRefField | None = None


class VaultCheck(_CheckBase):
    kind: Literal["vault"]
    addr: str | None = None
    """Defaults to the Vault address in settings."""
    standby_ok: bool = True


class S3Check(_CheckBase):
    kind: Literal["s3"]
    bucket: str
    region: str | None = None


HealthCheckSpec = Annotated[
    HTTPCheck | PostgresCheck | RedisCheck | VaultCheck | S3Check,
    Field(discriminator="kind"),
]


class HealthRunSettings(BaseModel):
    """How the ``health-check`` flow runs the checks (``catalog.yaml``: ``health``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_check_tasks_up_to: int = Field(default=100, ge=0, le=100_000, strict=True)
    """One Prefect task run per check while a run has at most this many checks; above it, one task run per
    environment (its checks probed concurrently inside it). 0: always one per environment."""
