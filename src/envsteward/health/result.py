"""The outcome of one health check run."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from envsteward.errors import TransientError


class CheckStatus(StrEnum):
    """``up``: healthy; ``degraded``: reachable but slow (or a Vault standby that should not be);
    ``down``: unreachable, failing, or misconfigured."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


DETAIL_MAX = 200
"""Details are one short line; longer vendor messages are cut."""


class CheckResult(BaseModel):
    """One check's result. ``detail`` is a short human line that never holds a secret value.

    ``transient`` is True when the failure is of a kind that may pass on its own (refused connection,
    timeout, 5xx, a sealed Vault): the Prefect task retries those before recording ``down``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str
    check: str
    kind: str
    status: CheckStatus
    latency_ms: float | None = None
    detail: str = ""
    checked_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.UP


def short_detail(text: str) -> str:
    """One line of at most :data:`DETAIL_MAX` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= DETAIL_MAX else line[: DETAIL_MAX - 1] + "…"


class CheckDownError(TransientError):
    """A transiently ``down`` result raised as an error, so that an orchestrator (the Prefect task) can retry
    the check; carries the result so it can still be recorded when the retries are spent."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(
            result.detail or "down", system="health", operation=f"{result.environment}/{result.check}"
        )
        self.result = result
