"""The rotation plan, its steps and its errors. Nothing here holds a secret value."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from envsteward.catalog.models import ApprovalPolicy
from envsteward.errors import ConfigurationError, PermanentError
from envsteward.rotation.journal import RotationInProgressError


class Step(StrEnum):
    """The four steps, in order (Secrets Manager's rotation protocol)."""

    CREATE = "create"
    SET = "set"
    TEST = "test"
    FINISH = "finish"


STEPS: tuple[Step, ...] = (Step.CREATE, Step.SET, Step.TEST, Step.FINISH)


class Outcome(StrEnum):
    DRY_RUN = "dry-run"
    ROTATED = "rotated"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    FAILED = "failed"


FINAL_STATE_NAMES: dict[Outcome, str] = {
    Outcome.ROTATED: "Rotated",
    Outcome.DRY_RUN: "Dry run",
    Outcome.REJECTED: "Rejected",
    Outcome.TIMED_OUT: "Timed out",
}
"""The name of a rotate-secret run's (completed) final state per outcome, so the runs list tells the story.
Failures end in failed states named by :func:`failure_state_name`."""


def completed_state_names() -> frozenset[str]:
    """The names of the states a rotation run ends in when it is not a failure."""
    return frozenset(FINAL_STATE_NAMES.values())


def failure_state_name(error: BaseException) -> str | None:
    """The name of the failed final state for ``error``; None for an error with no name of its own."""
    if isinstance(error, RotationFailedError):
        return "Rotation failed" if error.restored else "Restore failed"
    if isinstance(error, RotationInProgressError):
        return "Locked"
    if isinstance(error, RotationRefusedError):
        return "Refused"
    if isinstance(error, RestoreError):
        return "Repair failed"
    return None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RotationPlan(_Frozen):
    """What a rotation of one reference will do (shown by a dry run, to the approvers, and audited)."""

    environment: str
    tier: str
    reference: str
    """The URI without ``secret+``."""
    kind: str
    """The rotator (``vault_kv``, ``secrets_manager``, ``ssm``, ``postgres_role``)."""
    steps: tuple[tuple[Step, str], ...]
    """Each step and what it does here."""
    used_at: tuple[str, ...] = ()
    generated: str
    """``32 characters from alphanumeric``: never the value."""
    approval: ApprovalPolicy | None = None
    """None: no approval needed."""
    approval_reason: str = ""

    @property
    def needs_approval(self) -> bool:
        return self.approval is not None

    def summary(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "reference": self.reference,
            "kind": self.kind,
            "needs_approval": self.needs_approval,
        }


class StepReport(_Frozen):
    """One finished step: what it did (versions, labels; never a value)."""

    step: Step
    detail: str


class RotationRefusedError(ConfigurationError):
    """This reference cannot be rotated as asked (unknown environment or reference, unsupported scheme)."""


class RotationFailedError(PermanentError):
    """A step failed; ``step`` names it. ``restored`` says whether the previous value was put back and
    checked (it then is current and working)."""

    def __init__(self, message: str, *, step: Step, restored: bool) -> None:
        super().__init__(message, system="rotation", operation=f"step {step.value}")
        self.step = step
        self.restored = restored

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_failed, (str(self), self.step, self.restored))


def _rebuild_failed(message: str, step: Step, restored: bool) -> RotationFailedError:
    error = RotationFailedError.__new__(RotationFailedError)
    Exception.__init__(error, message)
    error.system, error.operation, error.step, error.restored = (
        "rotation",
        f"step {step.value}",
        step,
        restored,
    )
    return error


class RestoreError(PermanentError):
    """Putting the previous value back failed: the message names what is left changed."""
