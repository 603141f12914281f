"""The outcome of one health check run."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from envsteward.errors import PermanentError


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

    ``down`` and ``degraded`` are *findings*: the probe ran and the service is not healthy. A finding is one
    probe's observation; it is confirmed (or not) over the check's ``consecutive`` results by the tracker,
    never by re-probing within a run.

    ``transient`` is True when a ``down`` is of a kind that may pass on its own (refused connection,
    timeout, 5xx, a sealed Vault), False when it will not (404, wrong password).

    ``probe_failed`` is True when the probe could not run at all: a bug in it (an unexpected exception) or a
    check definition envsteward cannot use (a :class:`~envsteward.errors.ConfigurationError`). The
    service's state is then unknown; the result says ``down`` (a check that cannot report is not healthy),
    and an orchestrator shows the run as failed rather than as a finding.
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
    probe_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.UP

    @property
    def finding(self) -> str | None:
        """The name of what the probe found, for an orchestrator's run state: ``Down`` or ``Degraded``; None
        for ``up`` (nothing to report) and for a probe that could not run (no finding: see
        ``probe_failed``)."""
        if self.probe_failed or self.status is CheckStatus.UP:
            return None
        return self.status.value.capitalize()


def short_detail(text: str) -> str:
    """One line of at most :data:`DETAIL_MAX` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= DETAIL_MAX else line[: DETAIL_MAX - 1] + "…"


class CheckProbeError(PermanentError):
    """A probe that could not run (``result.probe_failed``), raised by an orchestrator (the Prefect task) so
    that its run fails instead of reporting a finding; carries the ``down`` result so that it is still
    recorded and alerted on. Never retried: a bug or an unusable check definition stays so."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(
            result.detail or "probe failed", system="health", operation=f"{result.environment}/{result.check}"
        )
        self.result = result
