"""Notification channels: from a catalog ``ChannelSpec`` to a :class:`~envsteward.ports.Notifier`.

Every channel has a ``min_severity``; notifications below it are dropped, except resolve events, which always
pass so that an incident opened at a higher severity is closed where it was opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsteward.errors import ConfigurationError
from envsteward.ports import AlertEvent, Notification, Notifier, Severity

if TYPE_CHECKING:
    from envsteward.catalog.models import ChannelSpec
    from envsteward.services import Services


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


def build_notifier(services: Services, channel: ChannelSpec) -> Notifier:
    """The notifier for one catalog channel, with credentials from settings or the channel's secret reference.

    Builds clients only (no call to Slack or the SMTP server); resolving a PagerDuty routing key calls the
    secret store its reference names. Raises ConfigurationError naming the variable to set when a credential
    is missing, or the secret store's errors (NotFoundError, PermissionDeniedError, TransientError).
    """
    settings = services.settings
    inner: Notifier
    if channel.kind == "slack":
        from envsteward.adapters.slack import SlackNotifier

        token = services.credential(settings.slack.token_env, f"Slack bot token for channel {channel.name!r}")
        inner = SlackNotifier(token, channel.channel, base_url=settings.slack.base_url)
    elif channel.kind == "email":
        from envsteward.adapters.email import EmailNotifier

        smtp = settings.smtp
        password = (
            services.credential(smtp.password_env, f"SMTP password for user {smtp.username!r}")
            if smtp.username
            else None
        )
        inner = EmailNotifier(
            smtp.host,
            smtp.port,
            smtp.sender,
            list(channel.to),
            starttls=smtp.starttls,
            username=smtp.username,
            password=password,
            timeout=smtp.timeout_seconds,
        )
    elif channel.kind == "pagerduty":
        from envsteward.adapters.pagerduty import PagerDutyNotifier

        inner = PagerDutyNotifier(services.resolve_secret(channel.routing_key), settings.pagerduty.events_url)
    else:  # pragma: no cover - the catalog's discriminated union admits no other kind
        raise ConfigurationError(f"channel {channel.name!r}: unknown kind {channel.kind!r}")
    return SeverityFilteredNotifier(inner, channel.min_severity)
