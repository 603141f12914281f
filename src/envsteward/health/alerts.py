"""Turn a confirmed status change into a notification and an audit record (no secret values: results hold
only our own short details)."""

from __future__ import annotations

from typing import Any

from envsteward.errors import EnvstewardError
from envsteward.health.result import CheckStatus
from envsteward.health.tracker import StatusChange
from envsteward.ports import AlertEvent, Notification, Severity


class AlertDeliveryError(EnvstewardError):
    """A confirmed change could not be announced on every channel (or audited). Not transient: the change
    is already recorded, so the health flow run fails to make the loss visible instead of retrying."""


_SEVERITY = {
    CheckStatus.DOWN: Severity.HIGH,
    CheckStatus.DEGRADED: Severity.MEDIUM,
    CheckStatus.UP: Severity.INFO,
}
_ICON = {CheckStatus.UP: "✅", CheckStatus.DEGRADED: "⚠️", CheckStatus.DOWN: "🔴"}


def _severity(change: StatusChange) -> Severity:
    """Down is HIGH, degraded MEDIUM. A recovery carries the severity of what it ends, so that every channel
    that received the trigger (channels filter by ``min_severity``) also receives the resolve."""
    if change.is_recovery:
        return _SEVERITY[change.from_status] if change.from_status else Severity.INFO
    return _SEVERITY[change.to_status]


def dedup_key(environment: str, check: str) -> str:
    """One incident per check: PagerDuty resolves the trigger with the same key on recovery."""
    return f"envsteward/health/{environment}/{check}"


def notification_for(change: StatusChange, link: str | None = None) -> Notification:
    """The message people get for ``change``: trigger for down/degraded, resolve for recovery."""
    before = change.from_status.value if change.from_status else "unknown"
    verb = "recovered" if change.is_recovery else f"is {change.to_status.value.upper()}"
    result = change.result
    fields = {
        "environment": change.environment,
        "check": f"{change.check} ({change.kind})",
        "status": f"{before} → {change.to_status.value}",
        "confirmed by": f"{change.count} consecutive result(s)",
        "detail": result.detail or change.to_status.value,
    }
    if result.latency_ms is not None:
        fields["latency"] = f"{result.latency_ms:.0f} ms"
    return Notification(
        title=f"{_ICON[change.to_status]} {change.environment}/{change.check} {verb}",
        text=change.reason,
        severity=_severity(change),
        event=AlertEvent.RESOLVE if change.is_recovery else AlertEvent.TRIGGER,
        environment=change.environment,
        dedup_key=dedup_key(change.environment, change.check),
        link=link,
        fields=fields,
    )


def audit_details(change: StatusChange) -> dict[str, Any]:
    """The JSON details of the ``health.status_changed`` audit record."""
    return {
        "environment": change.environment,
        "check": change.check,
        "kind": change.kind,
        "from": change.from_status.value if change.from_status else None,
        "to": change.to_status.value,
        "count": change.count,
        "detail": change.result.detail,
        "checked_at": change.result.checked_at.isoformat(),
    }
