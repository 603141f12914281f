"""Notification channels: the severity filter every catalog channel's notifier sits behind.

The notifiers themselves are built by :mod:`envsteward.adapters.registry` (``NOTIFIERS``), for
:meth:`envsteward.services.Services.notifiers`, which wraps each in :class:`SeverityFilteredNotifier`.

Every channel has a ``min_severity``; notifications below it are dropped, except resolve events, which always
pass so that an incident opened at a higher severity is closed where it was opened.
"""

from __future__ import annotations

from envsteward.ports import AlertEvent, Notification, Notifier, Severity


class SeverityFilteredNotifier:
    """Sends through ``inner`` only what is at or above ``min_severity`` (and every resolve)."""

    def __init__(self, inner: Notifier, min_severity: Severity) -> None:
        self.inner = inner
        self.min_severity = min_severity
        self.name = inner.name

    def wants(self, notification: Notification) -> bool:
        """True when the notification is a resolve, or at or above ``min_severity``."""
        return (
            notification.event is AlertEvent.RESOLVE or notification.severity.rank >= self.min_severity.rank
        )

    def send(self, notification: Notification) -> None:
        """Send when wanted; raises whatever the inner notifier raises (TransientError, PermanentError)."""
        if self.wants(notification):
            self.inner.send(notification)
