"""PagerDuty alerts over the Events API v2 (httpx).

``notification.event`` decides the ``event_action``: TRIGGER opens (or updates) an incident, RESOLVE
closes the one with the same ``dedup_key`` (required), and INFO notifications are **not sent** to
PagerDuty at all (paging is for things someone must act on; send INFO to Slack or email instead).

Severity mapping (PagerDuty knows four): critical → critical, high → error, medium → warning,
low → info, info → info. The payload's ``source`` is the environment (else the notifier's ``source``),
``component`` is the notifier's ``component``, ``custom_details`` holds the text, the environment and the
fields; ``links`` holds ``notification.link``.

The routing key is a credential: it travels in the request body (that is how the Events API
authenticates) and nowhere else: not in messages, exceptions or reprs.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from envsteward._redact import vendor_text
from envsteward.adapters._http import error_for_status, safe_url, translate_httpx_error
from envsteward.errors import PermanentError
from envsteward.ports import AlertEvent, Notification, Severity

SYSTEM = "pagerduty"
DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
    Severity.INFO: "info",
}


class PagerDutyNotifier:
    """Notifier that sends trigger/resolve events to one PagerDuty service (its integration routing key)."""

    name = "pagerduty"

    def __init__(
        self,
        routing_key: SecretStr,
        events_url: str = DEFAULT_EVENTS_URL,
        timeout_seconds: float = 10.0,
        source: str = "envsteward",
        component: str = "envsteward",
    ) -> None:
        self._routing_key = routing_key
        self.events_url = events_url
        self.timeout_seconds = timeout_seconds
        self.source = source
        self.component = component

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(events_url={safe_url(self.events_url)!r}, routing_key=<redacted>)"

    def send(self, notification: Notification) -> None:
        """Send a trigger or resolve event; do nothing for INFO events. Calls the PagerDuty Events API.

        Raises PermanentError when a resolve has no ``dedup_key``, or PagerDuty answers 400 (invalid
        event); TransientError for 429, 5xx, timeouts and connection failures; AuthenticationError or
        PermissionDeniedError for 401/403.
        """
        if notification.event == AlertEvent.INFO:
            return
        self.send_event(build_event(notification, source=self.source, component=self.component))

    def send_event(self, event: dict[str, Any]) -> str | None:
        """POST one prepared event (without ``routing_key``; it is added here) and return PagerDuty's
        ``dedup_key``. Calls the PagerDuty Events API. Raises as :meth:`send`."""
        import httpx

        operation = f"{event.get('event_action', 'event')} ({safe_url(self.events_url)})"
        secret = self._routing_key.get_secret_value()
        body = {"routing_key": secret, **event}
        try:
            response = httpx.post(self.events_url, json=body, timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:
            raise translate_httpx_error(exc, system=SYSTEM, operation=operation) from None
        if response.status_code >= 300:
            raise error_for_status(
                response.status_code, system=SYSTEM, operation=operation, detail=_detail(response, secret)
            )
        try:
            answer = response.json()
        except ValueError:
            return None
        return str(answer.get("dedup_key")) if isinstance(answer, dict) and answer.get("dedup_key") else None


def build_event(
    notification: Notification, *, source: str = "envsteward", component: str = "envsteward"
) -> dict[str, Any]:
    """The Events API v2 body for a TRIGGER or RESOLVE notification, without the routing key.

    Raises PermanentError for a RESOLVE without ``dedup_key`` or an INFO notification (never sent).
    """
    if notification.event == AlertEvent.RESOLVE:
        if not notification.dedup_key:
            raise PermanentError(
                "a resolve event needs notification.dedup_key (the key the incident was triggered with)",
                system=SYSTEM,
                operation="resolve",
            )
        return {"event_action": "resolve", "dedup_key": notification.dedup_key}
    if notification.event != AlertEvent.TRIGGER:
        raise PermanentError(
            "INFO notifications are not sent to PagerDuty", system=SYSTEM, operation="build event"
        )
    details: dict[str, Any] = {"text": notification.text}
    if notification.environment:
        details["environment"] = notification.environment
    details.update(notification.fields)
    event: dict[str, Any] = {
        "event_action": "trigger",
        "payload": {
            "summary": _summary(notification),
            "severity": PAGERDUTY_SEVERITY.get(notification.severity, "error"),
            "source": notification.environment or source,
            "component": component,
            "custom_details": details,
        },
        "client": "envsteward",
    }
    if notification.dedup_key:
        event["dedup_key"] = notification.dedup_key
    if notification.link:
        event["links"] = [{"href": notification.link, "text": "Details"}]
    return event


def _summary(notification: Notification) -> str:
    env = f"[{notification.environment}] " if notification.environment else ""
    summary = " ".join(f"{env}{notification.title}".split())
    return summary if len(summary) <= 1024 else summary[:1021] + "..."


def _detail(response: Any, secret: str) -> str:
    """PagerDuty's error message and errors list, redacted (its errors may quote the offending input)."""
    try:
        answer = response.json()
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts = [str(answer.get("message") or "")]
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts.extend(str(item) for item in errors)
    return vendor_text("; ".join(p for p in parts if p), [secret], limit=200)
