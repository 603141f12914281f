"""Slack notifications over slack-sdk's WebClient (``chat.postMessage`` with Block Kit).

A message is a header (the title), a context line (severity, environment, event), the text, the fields
as a two-column section, and a button to ``notification.link`` when one is given; ``text`` carries a
plain fallback for notifications and screen readers. User-supplied text is escaped for Slack's mrkdwn.

slack-sdk's own retry handlers are switched off: envsteward's tasks retry TransientError themselves, so
a rate limit is reported at once (with Slack's ``Retry-After`` in the message) instead of blocking a worker.
"""

from __future__ import annotations

import http.client
import urllib.error
from typing import Any

from pydantic import SecretStr

from envsteward._redact import vendor_text
from envsteward.adapters._http import safe_url
from envsteward.errors import (
    AuthenticationError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import Notification, Severity

SYSTEM = "slack"
_AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
_DENIED_ERRORS = {"missing_scope", "not_in_channel", "restricted_action", "is_archived", "ekm_access_denied"}
_NOT_FOUND_ERRORS = {"channel_not_found", "user_not_found"}
_TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "service_unavailable",
    "fatal_error",
    "internal_error",
    "request_timeout",
}
_SEVERITY_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":large_blue_circle:",
    Severity.INFO: ":white_circle:",
}
_MAX_FIELDS_PER_SECTION = 10


class SlackNotifier:
    """Notifier that posts to one Slack channel with a bot token."""

    name = "slack"

    def __init__(
        self,
        token: SecretStr,
        channel: str,
        base_url: str = "https://slack.com/api/",
        timeout_seconds: int = 10,
    ) -> None:
        from slack_sdk import WebClient

        self.channel = channel
        self.base_url = base_url
        self._token = token
        self._client = WebClient(
            token=token.get_secret_value(), base_url=base_url, timeout=timeout_seconds, retry_handlers=[]
        )

    def __repr__(self) -> str:
        return (
            f"SlackNotifier(channel={self.channel!r}, base_url={safe_url(self.base_url)!r}, token=<redacted>)"
        )

    def send(self, notification: Notification) -> None:
        """Post the notification to the channel. Calls Slack ``chat.postMessage``.

        Raises TransientError (rate limited, 5xx, connection problems), AuthenticationError (bad or revoked
        token), NotFoundError (unknown channel), PermissionDeniedError (missing scope, bot not in channel)
        or PermanentError.
        """
        try:
            self._client.chat_postMessage(
                channel=self.channel,
                text=fallback_text(notification),
                blocks=build_blocks(notification),
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is translated in one place
            raise self._translate(exc, "chat.postMessage") from None

    def auth_test(self) -> str:
        """Check the token; return the bot's user name. Calls Slack ``auth.test``. Raises as :meth:`send`."""
        try:
            response = self._client.auth_test()
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "auth.test") from None
        return str(response.get("user", ""))

    def _translate(self, exc: Exception, method: str) -> EnvstewardError:
        """Map a slack-sdk / urllib exception to an envsteward error. Never includes the token."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        operation = f"{method} to {self.channel}"
        secret = self._token.get_secret_value()
        if isinstance(exc, SlackApiError):
            status = int(getattr(exc.response, "status_code", 0) or 0)
            data = getattr(exc.response, "data", None)
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            shown = vendor_text(error, [secret], limit=80) or "no error code"
            message = f"HTTP {status}, error {shown}"
            if error in ("ratelimited", "rate_limited") or status == 429:
                headers = getattr(exc.response, "headers", None) or {}
                retry_after = headers.get("Retry-After") or headers.get("retry-after")
                hint = (
                    f"; retry after {vendor_text(str(retry_after), [secret], limit=10)}s"
                    if retry_after
                    else ""
                )
                return TransientError(f"rate limited{hint}", system=SYSTEM, operation=operation)
            if status >= 500 or error in _TRANSIENT_ERRORS:
                return TransientError(message, system=SYSTEM, operation=operation)
            if error in _AUTH_ERRORS or status == 401:
                return AuthenticationError(
                    f"{message}: the bot token was rejected (check the token reference)",
                    system=SYSTEM,
                    operation=operation,
                )
            if error in _NOT_FOUND_ERRORS or status == 404:
                return NotFoundError(
                    f"{message}: channel {self.channel} not found (use the channel ID, and invite the bot)",
                    system=SYSTEM,
                    operation=operation,
                )
            if error in _DENIED_ERRORS or status == 403:
                return PermissionDeniedError(message, system=SYSTEM, operation=operation)
            return PermanentError(message, system=SYSTEM, operation=operation)
        if isinstance(exc, urllib.error.HTTPError):
            status = exc.code
            cls = TransientError if status == 429 or status >= 500 else PermanentError
            return cls(f"HTTP {status}", system=SYSTEM, operation=operation)
        if isinstance(exc, urllib.error.URLError | OSError | http.client.HTTPException):
            reason = getattr(exc, "reason", None) or type(exc).__name__
            return TransientError(
                f"cannot reach {safe_url(self.base_url)}: {vendor_text(str(reason), [secret], limit=120)}",
                system=SYSTEM,
                operation=operation,
            )
        if isinstance(exc, ValueError):
            # A body that is not JSON: a proxy or outage page rather than the Slack API.
            return TransientError("the response was not Slack API JSON", system=SYSTEM, operation=operation)
        if isinstance(exc, SlackClientError):
            return PermanentError(f"client error ({type(exc).__name__})", system=SYSTEM, operation=operation)
        return PermanentError(
            f"unexpected failure ({type(exc).__name__})", system=SYSTEM, operation=operation
        )


def fallback_text(notification: Notification) -> str:
    """The plain ``text`` Slack shows in notifications: ``[SEVERITY] env: title — text``."""
    env = f"{notification.environment}: " if notification.environment else ""
    body = f" — {notification.text}" if notification.text else ""
    return _truncate(f"[{notification.severity.value.upper()}] {env}{notification.title}{body}", 3000)


def build_blocks(notification: Notification) -> list[dict[str, Any]]:
    """The Block Kit blocks for a notification (header, context, text, fields, link button)."""
    severity = notification.severity
    context = [f"{_SEVERITY_EMOJI.get(severity, ':white_circle:')} *{severity.value.upper()}*"]
    if notification.environment:
        context.append(f"environment: *{_escape(notification.environment)}*")
    if notification.event.value != "info":
        context.append(f"event: {notification.event.value}")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(notification.title, 150), "emoji": True},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "  |  ".join(context)}]},
    ]
    if notification.text:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _truncate(_escape(notification.text), 3000)},
            }
        )
    items = list(notification.fields.items())
    for start in range(0, len(items), _MAX_FIELDS_PER_SECTION):
        fields = [
            {"type": "mrkdwn", "text": _truncate(f"*{_escape(key)}*\n{_escape(value)}", 2000)}
            for key, value in items[start : start + _MAX_FIELDS_PER_SECTION]
        ]
        blocks.append({"type": "section", "fields": fields})
    if notification.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open"},
                        "url": notification.link[:3000],
                        "action_id": "envsteward_open_link",
                    }
                ],
            }
        )
    return blocks


def _escape(text: str) -> str:
    # Slack mrkdwn control characters: https://api.slack.com/reference/surfaces/formatting#escaping
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
