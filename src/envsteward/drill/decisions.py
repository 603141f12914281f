"""The drill's decisions, as pure functions that return the decision and its reason.

* :func:`choose_backup` — which backup to restore: an id, ``latest``, or ``random`` among the backups
  retention keeps (injectable RNG).
* :func:`measure_rpo` — RPO and the restore point's age at drill start.
* :func:`check_targets` / :func:`verdict` — compare RTO and RPO with their targets; pass, miss or fail.
* :func:`scratch_name` / :func:`new_drill_id` — naming.

RPO, as envsteward reports and compares it, is the age of the NEWEST backup of the drilled target in the
drilled region at drill start: the data that would be lost if the primary were lost at that moment (a
replica that lags makes it worse, as it should). The age of the backup actually restored (the "restore
point age": drill start minus its consistent point) is reported next to it; for ``latest`` they are equal,
and a ``random`` drill of an old backup does not count as a missed RPO.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from envsteward.backup.manifest import check_backup_id
from envsteward.drill.model import DrillStatus, DrillTargets, TargetCheck
from envsteward.errors import ConfigurationError

LATEST = "latest"
RANDOM = "random"
REGION_DR = "dr"
REGION_PRIMARY = "primary"
SCRATCH_PREFIX = "envsteward_drill_"
_PG_IDENTIFIER_MAX = 63


@dataclass(frozen=True)
class BackupCandidate:
    """A complete backup of the drilled target in the drilled region, as the chooser sees it."""

    backup_id: str
    consistent_at: datetime


@dataclass(frozen=True)
class BackupChoice:
    """The chosen backup (None: nothing to restore) and why."""

    backup_id: str | None
    reason: str
    consistent_at: datetime | None = None


def parse_request(value: str) -> str:
    """``latest``, ``random`` or a valid backup id. Raises ConfigurationError naming what is accepted."""
    text = (value or "").strip()
    if text.lower() in (LATEST, RANDOM):
        return text.lower()
    try:
        return check_backup_id(text)
    except ConfigurationError:
        raise ConfigurationError(
            f"backup {value!r}: give a backup id (e.g. production/postgres-main/20240101T020000Z-3fa2), "
            f"'{LATEST}' or '{RANDOM}'"
        ) from None


def parse_region(value: str, *, dr_region: str | None, primary_region: str | None) -> str:
    """``dr`` or ``primary`` from ``dr``/``primary`` or a region name matching the configured stores.

    Raises ConfigurationError naming the accepted values.
    """
    text = (value or "").strip().lower()
    if text in (REGION_DR, REGION_PRIMARY):
        return text
    if dr_region and text == dr_region.lower():
        return REGION_DR
    if primary_region and text == primary_region.lower():
        return REGION_PRIMARY
    names = [REGION_DR, REGION_PRIMARY] + [name for name in (dr_region, primary_region) if name]
    raise ConfigurationError(f"region {value!r}: expected one of {', '.join(names)}")


def newest(candidates: Sequence[BackupCandidate]) -> BackupCandidate | None:
    """The backup with the latest consistent point (ties: the greatest id, which sorts by time)."""
    if not candidates:
        return None
    return max(candidates, key=lambda item: (item.consistent_at, item.backup_id))


def choose_backup(
    candidates: Sequence[BackupCandidate],
    requested: str,
    *,
    kept_ids: Collection[str] | None = None,
    rng: random.Random | None = None,
    where: str = "the store",
) -> BackupChoice:
    """Pick the backup to restore. Pure (the RNG is injected; default: a fresh ``random.Random()``).

    * ``latest``: the newest candidate.
    * ``random``: uniformly among the candidates retention keeps (``kept_ids``); fail safe: with no
      retention decision, nothing is chosen.
    * an id: that backup, when it is among the candidates (else nothing: e.g. it has no replica).
    """
    if requested == LATEST:
        best = newest(candidates)
        if best is None:
            return BackupChoice(None, f"no complete backup of this target in {where}")
        return BackupChoice(best.backup_id, f"newest backup in {where}", best.consistent_at)
    if requested == RANDOM:
        if kept_ids is None:
            return BackupChoice(None, "random needs retention's decision of what it keeps (none given)")
        pool = sorted((item for item in candidates if item.backup_id in kept_ids), key=lambda c: c.backup_id)
        if not pool:
            return BackupChoice(None, f"no backup that retention keeps is in {where}")
        picked = (rng or random.Random()).choice(pool)  # noqa: S311 - a drill sample, not cryptography
        return BackupChoice(
            picked.backup_id,
            f"picked at random among the {len(pool)} backup(s) retention keeps in {where}",
            picked.consistent_at,
        )
    match = next((item for item in candidates if item.backup_id == requested), None)
    if match is None:
        return BackupChoice(None, f"backup {requested} has no complete copy in {where}")
    return BackupChoice(match.backup_id, "requested by id", match.consistent_at)


@dataclass(frozen=True)
class RPOMeasure:
    rpo_seconds: float
    """Drill start minus the newest backup's consistent point (what is compared with the target)."""
    restore_point_age_seconds: float
    """Drill start minus the chosen backup's consistent point."""
    note: str = ""


def measure_rpo(drill_start: datetime, chosen: datetime, newest_point: datetime) -> RPOMeasure:
    """RPO and the restore point's age at ``drill_start``. A consistent point after the drill start
    (clock skew between servers) counts as age 0, with a note. Pure."""
    rpo = (drill_start - newest_point).total_seconds()
    age = (drill_start - chosen).total_seconds()
    note = ""
    if rpo < 0 or age < 0:
        note = "a backup's consistent point is after the drill start (clock skew?); counted as age 0"
    return RPOMeasure(max(0.0, rpo), max(0.0, age), note)


def check_targets(
    rto_seconds: float | None, rpo_seconds: float | None, targets: DrillTargets
) -> tuple[TargetCheck, TargetCheck]:
    """RTO and RPO against their targets (a value equal to its target meets it). Pure."""
    return (
        TargetCheck("RTO", rto_seconds, targets.rto_seconds),
        TargetCheck("RPO", rpo_seconds, targets.rpo_seconds),
    )


def verdict(failed: bool, checks: Sequence[TargetCheck]) -> tuple[DrillStatus, str]:
    """The drill's status and why. Fail safe: a failed step, or a target that could not be measured, is
    a failure; a measured target above its limit is a miss."""
    if failed:
        return DrillStatus.FAILED, "a drill step failed"
    unmeasured = [check.name for check in checks if check.met is None]
    if unmeasured:
        return DrillStatus.FAILED, f"{' and '.join(unmeasured)} could not be measured"
    missed = [
        f"{check.name} {_minutes(check.measured_seconds)} > target {_minutes(check.target_seconds)}"
        for check in checks
        if check.met is False
    ]
    if missed:
        return DrillStatus.TARGET_MISSED, "; ".join(missed)
    return DrillStatus.PASSED, "restored, verified and within both targets"


def _minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def scratch_name(environment: str, short_id: str) -> str:
    """``envsteward_drill_<env>_<short id>``: lower-case letters, digits and ``_`` only, at most 63
    characters (a PostgreSQL identifier; also used for scratch prefixes and files)."""
    env = re.sub(r"[^a-z0-9_]", "_", environment.lower())
    short = re.sub(r"[^a-z0-9]", "", short_id.lower()) or "0"
    room = _PG_IDENTIFIER_MAX - len(SCRATCH_PREFIX) - len(short) - 1
    return f"{SCRATCH_PREFIX}{env[:room]}_{short}"


def new_drill_id(started_at: datetime, token: str | None = None) -> tuple[str, str]:
    """``(drill id, short id)``: ``drill-<UTC time>-<8 hex>`` and the 8 hex."""
    short = token or secrets.token_hex(4)
    return f"drill-{started_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{short}", short
