"""What a disaster-recovery drill records: its phases, measurements, verification results and verdict.

Everything here is plain data, JSON-able with :meth:`DrillRecord.as_json` / :meth:`DrillRecord.from_json`,
and never holds a secret value: table checksums, counts, names and safe error messages only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class DrillStatus(StrEnum):
    """``passed``: restored, verified and within both targets. ``target_missed``: restored and verified,
    but RTO or RPO above its target. ``failed``: a step failed (nothing verified, or data differ).
    ``abandoned``: the drill never ended (killed); a later drill's sweep found it and removed its scratch
    target (:mod:`envsteward.drill.abandoned`)."""

    PASSED = "passed"
    TARGET_MISSED = "target_missed"
    FAILED = "failed"
    ABANDONED = "abandoned"


class PhaseName(StrEnum):
    PREPARE = "prepare"
    """Resolve the target, the region's store and the scratch target (no external change)."""
    CHOOSE = "choose"
    """Pick the backup and compute RPO."""
    FETCH_VERIFY = "fetch_verify"
    """Read the whole backup from the region's store, authenticate and check it (nothing written)."""
    RESTORE = "restore"
    """Create the scratch target, decrypt and restore into it."""
    VERIFY_DATA = "verify_data"
    """Row counts and per-table checksums (or secrets) of the restored data against the manifest."""
    HEALTH = "health"
    """Health checks and smoke queries against the restored target."""
    TEARDOWN = "teardown"
    """Remove the scratch target (always runs)."""


PHASE_ORDER: tuple[PhaseName, ...] = tuple(PhaseName)


class StepResult(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class PhaseTiming:
    """One step of a drill: when it ran (by the drill's clock), how long, and how it ended."""

    name: PhaseName
    started_at: datetime
    finished_at: datetime
    result: StepResult
    detail: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name.value,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "result": self.result.value,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PhaseTiming:
        return cls(
            name=PhaseName(document["name"]),
            started_at=datetime.fromisoformat(document["started_at"]),
            finished_at=datetime.fromisoformat(document["finished_at"]),
            result=StepResult(document["result"]),
            detail=str(document.get("detail", "")),
        )


@dataclass(frozen=True)
class Verification:
    """One verification result (a table, the secret set, a health check, a smoke query)."""

    kind: str
    """``table``, ``secrets``, ``file``, ``health`` or ``smoke``."""
    name: str
    expected: str
    actual: str
    ok: bool
    skipped: bool = False

    @property
    def result(self) -> str:
        return "skipped" if self.skipped else ("pass" if self.ok else "FAIL")

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "expected": self.expected,
            "actual": self.actual,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Verification:
        result = str(document.get("result", "FAIL"))
        return cls(
            kind=str(document["kind"]),
            name=str(document["name"]),
            expected=str(document.get("expected", "")),
            actual=str(document.get("actual", "")),
            ok=result in ("pass", "skipped"),
            skipped=result == "skipped",
        )


@dataclass(frozen=True)
class TargetCheck:
    """A measurement against its target, in seconds. ``measured`` None: it could not be measured."""

    name: str
    """``RTO`` or ``RPO``."""
    measured_seconds: float | None
    target_seconds: float

    @property
    def met(self) -> bool | None:
        """True / False; None when not measured (the drill failed before)."""
        if self.measured_seconds is None:
            return None
        return self.measured_seconds <= self.target_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured_seconds": None if self.measured_seconds is None else round(self.measured_seconds, 3),
            "target_seconds": self.target_seconds,
            "met": self.met,
        }


@dataclass(frozen=True)
class DrillRecord:
    """The outcome of one drill (what history keeps, reports render, alerts and audit records describe)."""

    drill_id: str
    environment: str
    target: str | None
    kind: str | None
    region: str
    """``dr`` or ``primary``: which copy was restored."""
    store: str
    """Where the backup was read from (``s3://bucket/`` or a folder); never credentials."""
    requested: str
    """What was asked for: a backup id, ``latest`` or ``random``."""
    started_at: datetime
    finished_at: datetime
    status: DrillStatus
    backup_id: str | None = None
    choice_reason: str = ""
    backup_consistent_at: datetime | None = None
    newest_backup_id: str | None = None
    newest_consistent_at: datetime | None = None
    scratch: str | None = None
    """The scratch target's name (database, prefix or file), for the record; it is gone after the drill."""
    scratch_removed: bool | None = None
    """True when teardown confirmed the scratch target is gone; None when none was created."""
    ready_at: datetime | None = None
    """When the restored target was verified ready (RTO's end)."""
    rto: TargetCheck | None = None
    rpo: TargetCheck | None = None
    restore_point_age_seconds: float | None = None
    """Drill start minus the chosen backup's consistent point (equals RPO for ``latest``)."""
    phases: tuple[PhaseTiming, ...] = ()
    verifications: tuple[Verification, ...] = ()
    failed_phase: PhaseName | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()
    marked_verified: bool = False
    method: str = "dump"
    """``dump``: a backup restored into a scratch target; ``pitr``: a base backup plus the archived WAL
    replayed into a scratch cluster (RPO = drill start - ``recovered_to``)."""
    recovered_to: datetime | None = None
    """PITR: the commit time of the last transaction the scratch cluster replayed."""

    @property
    def rto_seconds(self) -> float | None:
        return self.rto.measured_seconds if self.rto else None

    @property
    def rpo_seconds(self) -> float | None:
        return self.rpo.measured_seconds if self.rpo else None

    @property
    def missed_targets(self) -> tuple[str, ...]:
        return tuple(check.name for check in (self.rto, self.rpo) if check is not None and check.met is False)

    def phase(self, name: PhaseName) -> PhaseTiming | None:
        return next((phase for phase in self.phases if phase.name == name), None)

    def label(self) -> str:
        return f"{self.environment}/{self.target or '?'}"

    def with_updates(self, **changes: Any) -> DrillRecord:
        return replace(self, **changes)

    def as_json(self, *, verifications: bool = True) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        document: dict[str, Any] = {
            "drill_id": self.drill_id,
            "environment": self.environment,
            "target": self.target,
            "kind": self.kind,
            "region": self.region,
            "store": self.store,
            "requested": self.requested,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "status": self.status.value,
            "backup_id": self.backup_id,
            "choice_reason": self.choice_reason,
            "backup_consistent_at": iso(self.backup_consistent_at),
            "newest_backup_id": self.newest_backup_id,
            "newest_consistent_at": iso(self.newest_consistent_at),
            "scratch": self.scratch,
            "scratch_removed": self.scratch_removed,
            "ready_at": iso(self.ready_at),
            "rto": self.rto.as_json() if self.rto else None,
            "rpo": self.rpo.as_json() if self.rpo else None,
            "restore_point_age_seconds": (
                None if self.restore_point_age_seconds is None else round(self.restore_point_age_seconds, 3)
            ),
            "missed_targets": list(self.missed_targets),
            "phases": [phase.as_json() for phase in self.phases],
            "failed_phase": self.failed_phase.value if self.failed_phase else None,
            "error": self.error,
            "notes": list(self.notes),
            "marked_verified": self.marked_verified,
            "method": self.method,
            "recovered_to": iso(self.recovered_to),
        }
        if verifications:
            document["verifications"] = [item.as_json() for item in self.verifications]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> DrillRecord:
        """Parse :meth:`as_json` output. Raises KeyError / ValueError for a malformed document."""

        def when(key: str) -> datetime | None:
            value = document.get(key)
            return datetime.fromisoformat(value) if value else None

        def check(key: str) -> TargetCheck | None:
            value = document.get(key)
            if not value:
                return None
            measured = value.get("measured_seconds")
            return TargetCheck(
                name=str(value["name"]),
                measured_seconds=None if measured is None else float(measured),
                target_seconds=float(value["target_seconds"]),
            )

        started = when("started_at")
        finished = when("finished_at")
        if started is None or finished is None:
            raise ValueError("a drill record needs started_at and finished_at")
        failed_phase = document.get("failed_phase")
        age = document.get("restore_point_age_seconds")
        return cls(
            drill_id=str(document["drill_id"]),
            environment=str(document["environment"]),
            target=document.get("target"),
            kind=document.get("kind"),
            region=str(document.get("region", "dr")),
            store=str(document.get("store", "")),
            requested=str(document.get("requested", "")),
            started_at=started,
            finished_at=finished,
            status=DrillStatus(document["status"]),
            backup_id=document.get("backup_id"),
            choice_reason=str(document.get("choice_reason", "")),
            backup_consistent_at=when("backup_consistent_at"),
            newest_backup_id=document.get("newest_backup_id"),
            newest_consistent_at=when("newest_consistent_at"),
            scratch=document.get("scratch"),
            scratch_removed=document.get("scratch_removed"),
            ready_at=when("ready_at"),
            rto=check("rto"),
            rpo=check("rpo"),
            restore_point_age_seconds=None if age is None else float(age),
            phases=tuple(PhaseTiming.from_json(item) for item in document.get("phases", [])),
            verifications=tuple(Verification.from_json(item) for item in document.get("verifications", [])),
            failed_phase=PhaseName(failed_phase) if failed_phase else None,
            error=document.get("error"),
            notes=tuple(str(note) for note in document.get("notes", [])),
            marked_verified=bool(document.get("marked_verified", False)),
            method=str(document.get("method") or "dump"),
            recovered_to=when("recovered_to"),
        )


@dataclass(frozen=True)
class DrillTargets:
    """RTO and RPO targets in seconds (catalog minutes x 60; defaults 15 and 5 minutes)."""

    rto_seconds: float = 15 * 60.0
    rpo_seconds: float = 5 * 60.0

    def as_json(self) -> dict[str, float]:
        return {"rto_seconds": self.rto_seconds, "rpo_seconds": self.rpo_seconds}
