"""Backup retention: restic's ``forget`` policy as a pure function, with envsteward's safety floor.

>>> from envsteward.retention import apply_retention, DEFAULT_POLICY
>>> decision = apply_retention(backups, DEFAULT_POLICY)  # doctest: +SKIP
"""

from envsteward.retention.duration import Duration, RetentionInputError, go_add_date, parse_duration
from envsteward.retention.engine import (
    REASON_EMPTY_POLICY,
    REASON_NEWEST,
    REASON_NEWEST_DRILL_VERIFIED,
    Backup,
    RetentionDecision,
    apply_retention,
    newest_first,
    restic_forget,
)
from envsteward.retention.inputs import backups_from_json, parse_rfc3339
from envsteward.retention.policy import DEFAULT_POLICY, RetentionPolicy

__all__ = [
    "DEFAULT_POLICY",
    "REASON_EMPTY_POLICY",
    "REASON_NEWEST",
    "REASON_NEWEST_DRILL_VERIFIED",
    "Backup",
    "Duration",
    "RetentionDecision",
    "RetentionInputError",
    "RetentionPolicy",
    "apply_retention",
    "backups_from_json",
    "go_add_date",
    "newest_first",
    "parse_duration",
    "parse_rfc3339",
    "restic_forget",
]
