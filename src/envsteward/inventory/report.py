"""The inventory as JSON, table rows (the Prefect artifact), markdown and alert items. Every value shown
is a reference, a path, an origin, a date or a count: never a secret."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from envsteward.inventory.model import EnvironmentInventory, Finding, InventoryStatus, SecretStatus
from envsteward.ports import Severity
from envsteward.scan.alerts import AlertItem


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def status_dict(status: SecretStatus) -> dict[str, Any]:
    return {
        "reference": status.reference,
        "state": status.state.value,
        "exists": status.exists,
        "version": status.version,
        "changed_at": _when(status.changed_at),
        "rotated_at": _when(status.rotated_at),
        "age_days": status.age_days,
        "max_age_days": status.max_age_days,
        "due_at": _when(status.due_at),
        "days_left": status.days_left,
        "certificate_not_after": _when(status.certificate.not_after) if status.certificate else None,
        "used_at": list(status.used_at),
        "origin": status.origin,
        "reason": status.reason,
    }


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "kind": finding.kind.value,
        "severity": finding.severity.value,
        "subject": finding.subject,
        "origin": finding.origin,
        "reason": finding.reason,
    }


def inventory_result(inventories: Sequence[EnvironmentInventory]) -> dict[str, Any]:
    """The JSON-ready result (``envsteward secrets list|check --json``, the flow's return value)."""
    return {
        "status": overall_status(inventories).value,
        "environments": {
            inv.environment: {
                "tier": inv.tier,
                "status": inv.status.value,
                "checked_at": _when(inv.checked_at),
                "secrets": [status_dict(s) for s in inv.statuses],
                "findings": [finding_dict(f) for f in inv.findings],
                "errors": list(inv.errors),
            }
            for inv in inventories
        },
    }


def overall_status(inventories: Sequence[EnvironmentInventory]) -> InventoryStatus:
    """unknown when any environment is, else findings when any has one, else clean."""
    states = {inv.status for inv in inventories}
    for status in (InventoryStatus.UNKNOWN, InventoryStatus.FINDINGS):
        if status in states:
            return status
    return InventoryStatus.CLEAN


def table_rows(inventory: EnvironmentInventory) -> list[dict[str, Any]]:
    """One row per reference, then one per finding that is not about a reference (orphans, plaintext):
    the per-environment table artifact."""
    rows: list[dict[str, Any]] = []
    by_subject: dict[str, list[Finding]] = {}
    for finding in inventory.findings:
        by_subject.setdefault(finding.subject, []).append(finding)
    for status in inventory.statuses:
        worst = max(
            (f.severity for f in by_subject.get(status.reference, [])), key=lambda s: s.rank, default=None
        )
        rows.append(
            {
                "item": status.reference,
                "state": status.state.value,
                "severity": worst.value if worst else "",
                "version": status.version or "",
                "last_changed": _when(status.changed_at) or "",
                "age_days": "" if status.age_days is None else status.age_days,
                "max_age_days": "" if status.max_age_days is None else status.max_age_days,
                "due": _when(status.due_at) or "",
                "detail": status.reason,
            }
        )
    references = {status.reference for status in inventory.statuses}
    for finding in inventory.findings:
        if finding.subject in references:
            continue
        rows.append(
            {
                "item": finding.subject,
                "state": finding.kind.value,
                "severity": finding.severity.value,
                "version": "",
                "last_changed": "",
                "age_days": "",
                "max_age_days": "",
                "due": "",
                "detail": f"{finding.reason} [{finding.origin}]" if finding.origin else finding.reason,
            }
        )
    for error in inventory.errors:
        rows.append({"item": "(unreadable)", "state": "unknown", "severity": "", "detail": error})
    return rows


def summary_markdown(inventories: Sequence[EnvironmentInventory]) -> str:
    """Environment x finding counts, for the flow's summary artifact."""
    severities = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]
    lines = [
        "# Secret inventory",
        "",
        "| environment | status | secrets | " + " | ".join(s.value for s in severities) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in severities) + " |",
    ]
    for inv in inventories:
        counts = [sum(1 for f in inv.findings if f.severity is s) for s in severities]
        lines.append(
            f"| {inv.environment} | {inv.status.value} | {len(inv.statuses)} | "
            + " | ".join(str(n) for n in counts)
            + " |"
        )
    return "\n".join(lines) + "\n"


def alert_items(inventory: EnvironmentInventory) -> list[AlertItem]:
    """The findings as the drift alert state remembers items (de-duplicated by finding id)."""
    return [
        AlertItem(
            fingerprint=f.id,
            path=f.subject,
            kind=f.kind.value,
            severity=f.severity,
            line=f"[{f.severity.value}] {f.kind.value}: {f.subject}: {f.reason}",
        )
        for f in inventory.findings
    ]
