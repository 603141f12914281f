"""Who hears about a drill: a failed drill pages (every channel of the environment, PagerDuty included); a
missed RTO/RPO target goes to the chat and mail channels only; a passing drill after a failed one resolves
the page. Pure: returns ``(channel name, Notification)`` pairs; the caller sends them.

Notifications hold names, ids, times and safe error messages, never a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envsteward.drill.model import DrillRecord, DrillStatus
from envsteward.ports import AlertEvent, Notification, Severity

PAGING_KINDS = frozenset({"pagerduty"})


def dedup_key(record: DrillRecord) -> str:
    """One incident per environment and target: a later passing drill resolves it."""
    return f"envsteward-drill-{record.environment}-{record.target or 'unknown'}"


def _fields(record: DrillRecord) -> dict[str, str]:
    def minutes(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds / 60:.1f} min"

    fields = {
        "drill": record.drill_id,
        "backup": record.backup_id or "-",
        "region": record.region,
    }
    for check in (record.rto, record.rpo):
        if check is not None:
            fields[check.name] = f"{minutes(check.measured_seconds)} (target {minutes(check.target_seconds)})"
    if record.failed_phase is not None:
        fields["failed phase"] = record.failed_phase.value
    if record.scratch_removed is False:
        fields["scratch target"] = f"{record.scratch} NOT removed"
    return fields


def notification_for(record: DrillRecord, *, link: str | None = None) -> Notification | None:
    """The notification a drill's outcome calls for (None for a plain pass)."""
    label = record.label()
    where = f" in {record.failed_phase.value}" if record.failed_phase else ""
    if record.status is DrillStatus.FAILED:
        return Notification(
            title=f"DR drill FAILED: {label}",
            text=f"The disaster-recovery drill of {label} failed{where}: {record.error or 'unknown'}",
            severity=Severity.CRITICAL,
            event=AlertEvent.TRIGGER,
            environment=record.environment,
            dedup_key=dedup_key(record),
            link=link,
            fields=_fields(record),
        )
    if record.status is DrillStatus.TARGET_MISSED:
        return Notification(
            title=f"DR drill missed its target: {label}",
            text=f"The drill of {label} restored and verified backup {record.backup_id}, but missed "
            f"{' and '.join(record.missed_targets)}.",
            severity=Severity.HIGH,
            event=AlertEvent.INFO,
            environment=record.environment,
            link=link,
            fields=_fields(record),
        )
    return None


def drill_alerts(
    record: DrillRecord,
    channels: Sequence[str],
    channel_kinds: Mapping[str, str],
    previous: DrillRecord | None = None,
    *,
    link: str | None = None,
) -> list[tuple[str, Notification]]:
    """The ``(channel, notification)`` pairs to send for ``record``.

    ``channels``: the environment's ``notify`` list; ``channel_kinds``: channel name -> kind (slack,
    email, pagerduty). Failed: every channel. Target missed: every channel except paging ones. Passed
    after a failed drill: a resolve event to every channel (closes the page).
    """
    notification = notification_for(record, link=link)
    if notification is not None:
        paging = record.status is DrillStatus.FAILED
        return [
            (name, notification)
            for name in channels
            if paging or channel_kinds.get(name, "") not in PAGING_KINDS
        ]
    if previous is not None and previous.status is DrillStatus.FAILED and record.target == previous.target:
        resolved = Notification(
            title=f"DR drill passed again: {record.label()}",
            text=f"The drill of {record.label()} restored and verified backup {record.backup_id}.",
            severity=Severity.INFO,
            event=AlertEvent.RESOLVE,
            environment=record.environment,
            dedup_key=dedup_key(record),
            link=link,
            fields=_fields(record),
        )
        return [(name, resolved) for name in channels]
    return []


def channel_kinds(channels: Mapping[str, object]) -> dict[str, str]:
    """Channel name -> kind, from the catalog's ``channels`` mapping (unknown kinds count as non-paging)."""
    return {name: str(getattr(spec, "kind", "")) for name, spec in channels.items()}
