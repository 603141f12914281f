"""Why a promotion stopped, as envsteward errors (messages name paths and reasons, never values)."""

from __future__ import annotations

from envsteward.errors import ConflictError, IntegrityError, PermanentError


class PromotionBlockedError(PermanentError):
    """The plan has blockers (tier-rule violations, missing secrets, unreadable sources)."""


class StalePlanError(ConflictError):
    """The target or the source changed since the plan was approved: nothing was written."""


class PromotionRolledBackError(PermanentError):
    """Applying, verifying or the health checks failed; the target was restored to its snapshot."""


class RollbackFailedError(IntegrityError):
    """The rollback could not restore the target exactly: a person must look now."""
