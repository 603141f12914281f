"""What the flows record for the status view, and the events each change means.

State-store keys (JSON, all bounded):

* ``status/health/<env>`` — ``{"link", "points": [[epoch, up, degraded, down], ...]}``: one point per
  health run (the count of checks in each state), the last :data:`HEALTH_POINTS` kept (a day at one run
  a minute). The health tracker's own state (``health/<env>/<check>``) stays the source of the current
  status; this is the uptime chart's history.
* ``status/drift/<env>`` — ``{"checked_at", "link", "status", "items": {fingerprint: {"severity",
  "first_seen"}}, "points": [[epoch, critical, high, medium, low, info], ...]}``: the open items (for the
  age of the oldest) and the last :data:`DRIFT_POINTS` scans (two days at one scan per five minutes).
* ``status/parity/<left>/<right>`` — ``{"checked_at", "link", "status", "items": {fingerprint:
  {"severity", "first_seen"}}}``: the open parity findings of two neighbouring environments (drift *between*
  them: a key one lacks, a type that differs, a secret reused), shown in both environments' drift cells.
* ``status/backup/<env>`` — ``{"targets": {target: {"at", "status", "replica", "backup_id", "link"}}}``:
  the last run per target (a failed run leaves no backup to list).
* ``status/drill/<env>`` — ``{"drill_id", "status", "link"}``: the last drill's run link (the drill
  history holds the record).
* ``status/secrets/<env>`` — ``{"checked_at", "link", "status", "counts": {kind: n}, "findings": [id, ...]}``.

Each ``record_*`` function is one atomic read-modify-write (``StateStore.update``) and returns the events
the change means (:class:`~envsteward.status.events.StatusEvent`): nothing when nothing changed, so a
retried task emits nothing twice. External calls: the state store only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from envsteward.ports import JSONValue, Severity, StateStore
from envsteward.status import events as ev
from envsteward.status.events import StatusEvent

KEY_PREFIX = "status/"
HEALTH_POINTS = 1440
DRIFT_POINTS = 576
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")


def health_key(environment: str) -> str:
    return f"{KEY_PREFIX}health/{environment}"


def drift_key(environment: str) -> str:
    return f"{KEY_PREFIX}drift/{environment}"


def parity_key(left: str, right: str) -> str:
    return f"{KEY_PREFIX}parity/{left}/{right}"


def backup_key(environment: str) -> str:
    return f"{KEY_PREFIX}backup/{environment}"


def drill_key(environment: str) -> str:
    return f"{KEY_PREFIX}drill/{environment}"


def secrets_key(environment: str) -> str:
    return f"{KEY_PREFIX}secrets/{environment}"


def _mapping(value: JSONValue | None) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _points(value: Any) -> list[list[Any]]:
    if not isinstance(value, list):
        return []
    return [
        point for point in value if isinstance(point, list) and point and isinstance(point[0], int | float)
    ]


def _append(points: list[list[Any]], point: list[Any], keep: int) -> list[list[Any]]:
    # a retried task records the same run twice: one point per timestamp
    kept = [p for p in points if p[0] != point[0]]
    kept.append(point)
    kept.sort(key=lambda p: p[0])
    return kept[-keep:]


# ---------------------------------------------------------------------------------------------------------
# health
# ---------------------------------------------------------------------------------------------------------


def record_health_point(
    store: StateStore,
    environment: str,
    at: datetime,
    counts: Mapping[str, int],
    link: str | None,
    *,
    keep: int = HEALTH_POINTS,
) -> None:
    """Add one health run's counts (``up``/``degraded``/``down``) to the environment's ring."""
    point = [int(at.timestamp()), counts.get("up", 0), counts.get("degraded", 0), counts.get("down", 0)]

    def fold(current: JSONValue | None) -> JSONValue:
        doc = _mapping(current)
        return {"link": link, "points": _append(_points(doc.get("points")), point, keep)}

    store.update(health_key(environment), fold)


def health_events(changes: Iterable[Any]) -> list[StatusEvent]:
    """The events of confirmed health changes (:class:`envsteward.health.tracker.StatusChange`)."""
    found: list[StatusEvent] = []
    for change in changes:
        to = change.to_status.value
        name = {"down": ev.HEALTH_DOWN, "degraded": ev.HEALTH_DEGRADED, "up": ev.HEALTH_RECOVERED}.get(to)
        if name is None or (name == ev.HEALTH_RECOVERED and change.from_status is None):
            continue
        found.append(
            StatusEvent(
                name=name,
                environment=change.environment,
                subject=change.check,
                payload={
                    "check": change.check,
                    "kind": change.kind,
                    "from_status": change.from_status.value if change.from_status else "unknown",
                    "to_status": to,
                    "consecutive": change.count,
                    "since": change.since.isoformat() if change.since else None,
                },
            )
        )
    return found


# ---------------------------------------------------------------------------------------------------------
# drift
# ---------------------------------------------------------------------------------------------------------


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return Severity.CRITICAL.rank  # an unknown severity is the highest


def _worst(severities: Iterable[str]) -> str:
    return max(severities, key=_rank, default="info")


def _counts(severities: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity in severities:
        key = severity if severity in counts else "critical"
        counts[key] += 1
    return counts


def record_drift(
    store: StateStore,
    environment: str,
    at: datetime,
    items: Sequence[tuple[str, str]] | None,
    link: str | None,
    *,
    reason: str | None = None,
    keep: int = DRIFT_POINTS,
) -> list[StatusEvent]:
    """Record one scan of ``environment``: ``items`` are the open items as ``(fingerprint, severity)``,
    None when the scan could not see the environment (the stored items are kept: nothing clears unseen).

    Returns ``drift.detected`` when items appeared (severity: the worst new one) and ``drift.cleared``
    when the last open item went away.
    """
    found: list[StatusEvent] = []

    def fold(current: JSONValue | None) -> JSONValue:
        found.clear()
        doc = _mapping(current)
        before: dict[str, Any] = {
            fp: data for fp, data in _mapping(doc.get("items")).items() if isinstance(data, Mapping)
        }
        if items is None:
            return {
                **doc,
                "status": "unknown",
                "reason": reason or "not scanned",
                "checked_at": at.isoformat(),
                "link": link,
                "items": before,
            }
        now = {fp: str(severity) for fp, severity in items}
        kept = {
            fp: {
                "severity": severity,
                "first_seen": str(before.get(fp, {}).get("first_seen") or at.isoformat()),
            }
            for fp, severity in now.items()
        }
        counts = _counts(now.values())
        point = [int(at.timestamp()), *(counts[name] for name in SEVERITIES)]
        new = [severity for fp, severity in now.items() if fp not in before]
        if new:
            worst_new = _worst(new)
            found.append(
                StatusEvent(
                    name=ev.DRIFT_DETECTED,
                    environment=environment,
                    severity=worst_new,
                    payload={"new": len(new), "open": len(now), "counts": counts, "link": link},
                )
            )
        elif before and not now:
            found.append(
                StatusEvent(
                    name=ev.DRIFT_CLEARED,
                    environment=environment,
                    severity=_worst(str(d.get("severity", "info")) for d in before.values()),
                    payload={"open": 0, "link": link},
                )
            )
        return {
            "status": "drift" if now else "clean",
            "reason": None,
            "checked_at": at.isoformat(),
            "link": link,
            "items": kept,
            "points": _append(_points(doc.get("points")), point, keep),
        }

    store.update(drift_key(environment), fold)
    return list(found)


def record_parity(  # noqa: PLR0917 - the pair, the moment, the findings, the link
    store: StateStore,
    left: str,
    right: str,
    at: datetime,
    items: Sequence[tuple[str, str]] | None,
    link: str | None,
) -> None:
    """Record one parity check of two neighbouring environments: ``items`` are its findings as
    ``(fingerprint, severity)``, None when a side could not be read (the stored findings are kept).

    No event: the ``drift.detected`` events (and the Automation that heals on them) are about one
    environment against its catalog, which a heal can fix; a parity finding is fixed by a promotion or
    by changing the catalog. The drift alerts announce parity findings already.
    """

    def fold(current: JSONValue | None) -> JSONValue:
        doc = _mapping(current)
        before = {fp: data for fp, data in _mapping(doc.get("items")).items() if isinstance(data, Mapping)}
        if items is None:
            return {**doc, "status": "unknown", "checked_at": at.isoformat(), "link": link, "items": before}
        kept = {
            fp: {
                "severity": str(severity),
                "first_seen": str(before.get(fp, {}).get("first_seen") or at.isoformat()),
            }
            for fp, severity in items
        }
        return {
            "status": "drift" if kept else "clean",
            "checked_at": at.isoformat(),
            "link": link,
            "items": kept,
        }

    store.update(parity_key(left, right), fold)


# ---------------------------------------------------------------------------------------------------------
# backups, drills
# ---------------------------------------------------------------------------------------------------------


def record_backup_run(
    store: StateStore,
    environment: str,
    target: str,
    at: datetime,
    *,
    ok: bool,
    replica: str,
    backup_id: str | None,
    link: str | None,
    phase: str | None = None,
) -> list[StatusEvent]:
    """Record a target's last backup run (``replica``: ``ok``, ``failed`` or ``none``). Returns
    ``backup.failed`` when the backup or its replica failed (``phase``: ``backup`` or ``replica``)."""

    def fold(current: JSONValue | None) -> JSONValue:
        doc = _mapping(current)
        targets = _mapping(doc.get("targets"))
        targets[target] = {
            "at": at.isoformat(),
            "status": "ok" if ok and replica != "failed" else "failed",
            "replica": replica,
            "backup_id": backup_id,
            "link": link,
        }
        return {"targets": targets}

    store.update(backup_key(environment), fold)
    if ok and replica != "failed":
        return []
    return [
        StatusEvent(
            name=ev.BACKUP_FAILED,
            environment=environment,
            subject=target,
            payload={"target": target, "phase": phase or ("backup" if not ok else "replica"), "link": link},
        )
    ]


def record_drill_run(  # noqa: PLR0917
    store: StateStore,
    environment: str,
    drill_id: str,
    status: str,
    link: str | None,
    failed_phase: str | None = None,
    target: str | None = None,
) -> list[StatusEvent]:
    """Remember the last drill's run link; returns ``drill.failed`` for a failed drill."""
    store.put(drill_key(environment), {"drill_id": drill_id, "status": status, "link": link})
    if status != "failed":
        return []
    return [
        StatusEvent(
            name=ev.DRILL_FAILED,
            environment=environment,
            subject=drill_id,
            payload={"drill_id": drill_id, "target": target, "failed_phase": failed_phase, "link": link},
        )
    ]


# ---------------------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------------------


def record_secrets(
    store: StateStore,
    environment: str,
    at: datetime,
    findings: Sequence[tuple[str, str, str]] | None,
    link: str | None,
) -> list[StatusEvent]:
    """Record an inventory: ``findings`` as ``(id, kind, severity)``; None when it was incomplete (the
    stored findings are kept). Returns ``secrets.finding`` when findings appeared, ``secrets.cleared`` when
    the last one went away."""
    found: list[StatusEvent] = []

    def fold(current: JSONValue | None) -> JSONValue:
        found.clear()
        doc = _mapping(current)
        before = [str(item) for item in doc.get("findings") or [] if isinstance(item, str)]
        if findings is None:
            return {
                **doc,
                "status": "unknown",
                "checked_at": at.isoformat(),
                "link": link,
                "findings": before,
            }
        ids = [fid for fid, _, _ in findings]
        counts: dict[str, int] = {}
        for _, kind, _ in findings:
            counts[kind] = counts.get(kind, 0) + 1
        new = [(kind, severity) for fid, kind, severity in findings if fid not in set(before)]
        if new:
            found.append(
                StatusEvent(
                    name=ev.SECRETS_FINDING,
                    environment=environment,
                    severity=_worst(severity for _, severity in new),
                    payload={
                        "new": len(new),
                        "open": len(ids),
                        "kinds": sorted({kind for kind, _ in new}),
                        "counts": counts,
                        "link": link,
                    },
                )
            )
        elif before and not ids:
            found.append(
                StatusEvent(
                    name=ev.SECRETS_CLEARED, environment=environment, payload={"open": 0, "link": link}
                )
            )
        return {
            "status": "findings" if ids else "clean",
            "checked_at": at.isoformat(),
            "link": link,
            "counts": counts,
            "findings": ids,
        }

    store.update(secrets_key(environment), fold)
    return list(found)
