"""The events envsteward emits on every state change (the names, and what a payload may hold). Pure.

Each event's resource is ``envsteward.<area>.<environment>[.<subject>]`` with the labels
``envsteward.environment`` (and ``envsteward.severity`` where there is one), and the environment is a
*related* resource (``envsteward.environment.<env>``, role ``environment``), so a Prefect Automation can
match one environment (``match_related``) or one severity (``match``) and template the environment into a
deployment's parameters.

A payload holds names, counts, severities, statuses and times only: never a configuration value, a secret,
a fingerprint or free text from a failing system (error messages can quote what they failed on).
:func:`safe_payload` enforces it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

HEALTH_DOWN = "envsteward.health.down"
HEALTH_DEGRADED = "envsteward.health.degraded"
HEALTH_RECOVERED = "envsteward.health.recovered"
DRIFT_DETECTED = "envsteward.drift.detected"
DRIFT_CLEARED = "envsteward.drift.cleared"
BACKUP_FAILED = "envsteward.backup.failed"
DRILL_FAILED = "envsteward.drill.failed"
SECRETS_FINDING = "envsteward.secrets.finding"
SECRETS_CLEARED = "envsteward.secrets.cleared"
PROMOTION_AWAITING_APPROVAL = "envsteward.promotion.awaiting-approval"
PROMOTION_APPLIED = "envsteward.promotion.applied"
PROMOTION_ROLLED_BACK = "envsteward.promotion.rolled-back"

ALL_EVENTS: tuple[str, ...] = (
    HEALTH_DOWN,
    HEALTH_DEGRADED,
    HEALTH_RECOVERED,
    DRIFT_DETECTED,
    DRIFT_CLEARED,
    BACKUP_FAILED,
    DRILL_FAILED,
    SECRETS_FINDING,
    SECRETS_CLEARED,
    PROMOTION_AWAITING_APPROVAL,
    PROMOTION_APPLIED,
    PROMOTION_ROLLED_BACK,
)

PayloadValue = str | int | float | bool | None | list[str] | dict[str, int]

_NAME = re.compile(r"^[A-Za-z0-9_.:/<>@+-]{0,200}$")
"""What a string in a payload may look like: names, ids, severities, ISO times, links (no spaces, no text)."""
_ALLOWED_KEYS = frozenset(
    {
        "environment",
        "severity",
        "counts",
        "new",
        "open",
        "check",
        "checks",
        "kind",
        "from_status",
        "to_status",
        "consecutive",
        "since",
        "target",
        "targets",
        "phase",
        "drill_id",
        "status",
        "failed_phase",
        "backup_id",
        "source",
        "run_id",
        "requested_by",
        "plan_hash",
        "changes",
        "keys_left",
        "link",
        "kinds",
    }
)


class UnsafePayloadError(ValueError):
    """A payload key or value that events may not carry (names the key, never the value)."""


def safe_payload(payload: Mapping[str, PayloadValue]) -> dict[str, PayloadValue]:
    """``payload`` checked: known keys only; strings (and list items, dict keys) must look like names, ids,
    times or links; numbers and booleans pass. Raises UnsafePayloadError naming the offending key."""
    checked: dict[str, PayloadValue] = {}
    for key, value in payload.items():
        if key not in _ALLOWED_KEYS:
            raise UnsafePayloadError(f"event payload key {key!r} is not one events may carry")
        if isinstance(value, str):
            _check_text(key, value)
        elif isinstance(value, list):
            for item in value:
                _check_text(key, item)
        elif isinstance(value, dict):
            for name, count in value.items():
                _check_text(key, name)
                if not isinstance(count, int) or isinstance(count, bool):
                    raise UnsafePayloadError(f"event payload key {key!r} holds a non-count")
        elif value is not None and not isinstance(value, int | float | bool):
            raise UnsafePayloadError(f"event payload key {key!r} holds a {type(value).__name__}")
        checked[key] = value
    return checked


def _check_text(key: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise UnsafePayloadError(f"event payload key {key!r} holds text events may not carry")


@dataclass(frozen=True)
class StatusEvent:
    """One event to emit: its name, the environment it concerns, the subject within it, and the payload."""

    name: str
    environment: str
    subject: str | None = None
    """A check, a backup target, a drill id... (part of the resource id)."""
    severity: str | None = None
    payload: dict[str, PayloadValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in ALL_EVENTS:
            raise UnsafePayloadError(f"unknown event name {self.name!r}")
        _check_text("environment", self.environment)
        if self.subject is not None:
            _check_text("subject", self.subject)
        safe_payload(self.payload)

    @property
    def area(self) -> str:
        return self.name.split(".")[1]

    def resource(self) -> dict[str, str]:
        """The event's resource (id and labels, as Prefect's ``emit_event`` takes it)."""
        parts = ["envsteward", self.area, self.environment, *([self.subject] if self.subject else [])]
        labels = {
            "prefect.resource.id": ".".join(parts),
            "prefect.resource.name": f"{self.environment}/{self.subject}"
            if self.subject
            else self.environment,
            "envsteward.environment": self.environment,
        }
        if self.severity is not None:
            labels["envsteward.severity"] = self.severity
        return labels

    def related(self) -> list[dict[str, str]]:
        """The environment as a related resource (role ``environment``)."""
        return [
            {
                "prefect.resource.id": f"envsteward.environment.{self.environment}",
                "prefect.resource.role": "environment",
                "prefect.resource.name": self.environment,
            }
        ]

    def full_payload(self) -> dict[str, PayloadValue]:
        payload: dict[str, PayloadValue] = {"environment": self.environment, **self.payload}
        if self.severity is not None:
            payload["severity"] = self.severity
        return safe_payload(payload)
