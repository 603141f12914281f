"""Email notifications over smtplib: a plain-text body with a simple HTML alternative.

The connection upgrades with STARTTLS (certificate and host name verified) when configured, then logs in
when a user name is set. SMTP replies are mapped in :func:`EmailNotifier._translate`: 4xx replies and
connection problems are transient, 5xx replies permanent, a rejected login an AuthenticationError.
The password is sent to the server only; it never appears in a message or exception.
"""

from __future__ import annotations

import base64
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import SecretStr

from envsteward._redact import vendor_text
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    EnvstewardError,
    PermanentError,
    TransientError,
)
from envsteward.ports import Notification

SYSTEM = "smtp"


class EmailNotifier:
    """Notifier that sends one email per notification to a fixed list of recipients."""

    name = "email"

    def __init__(  # noqa: PLR0917 - the documented positional signature
        self,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        starttls: bool = False,
        username: str | None = None,
        password: SecretStr | None = None,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``tls_context`` overrides the default (system CAs, host name checked), e.g. for a private CA.

        Raises ConfigurationError when there are no recipients, or a user name without a password.
        """
        if not to:
            raise ConfigurationError("no recipients: set at least one address in 'to'", system=SYSTEM)
        if username and password is None:
            raise ConfigurationError(f"SMTP user {username!r} has no password reference", system=SYSTEM)
        self.host = host
        self.port = port
        self.sender = sender
        self.to = list(to)
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._tls_context = tls_context

    def __repr__(self) -> str:
        return f"EmailNotifier(host={self.host!r}, port={self.port!r}, to={self.to!r}, password=<redacted>)"

    def send(self, notification: Notification) -> None:
        """Send the notification as an email. Calls the SMTP server (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA).

        Raises TransientError (4xx reply, refused, timeout, disconnect), AuthenticationError (login
        rejected), PermanentError (5xx reply, STARTTLS or AUTH not offered, TLS verification failed).
        """
        message = build_message(notification, self.sender, self.to)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self._tls_context or ssl.create_default_context())
                    smtp.ehlo()
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password.get_secret_value())
                refused = smtp.send_message(message)
        except Exception as exc:  # noqa: BLE001 - every failure is translated in one place
            raise self._translate(exc) from None
        if refused:
            # Some recipients were accepted: the mail went out, but not to everyone.
            codes = sorted({code for code, _ in refused.values()})
            cls = TransientError if all(400 <= code < 500 for code in codes) else PermanentError
            raise cls(
                f"server refused recipients {sorted(refused)} (codes {codes})",
                system=SYSTEM,
                operation=self._operation,
            )

    @property
    def _operation(self) -> str:
        return f"send to {self.host}:{self.port}"

    def _translate(self, exc: Exception) -> EnvstewardError:
        """Map an smtplib/ssl/socket exception to an envsteward error (the one place that does)."""
        op = self._operation
        secrets = _password_forms(self.username, self._password)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return AuthenticationError(
                f"login as {self.username!r} rejected (code {exc.smtp_code}); check the password reference",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = sorted({code for code, _ in exc.recipients.values()})
            cls = TransientError if codes and all(400 <= code < 500 for code in codes) else PermanentError
            return cls(f"server refused every recipient (codes {codes})", system=SYSTEM, operation=op)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentError(
                f"server does not support what the settings ask for ({vendor_text(str(exc), secrets)}); "
                "check smtp.starttls and smtp.username",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return TransientError("server closed the connection", system=SYSTEM, operation=op)
        if isinstance(exc, smtplib.SMTPResponseException):
            reply = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            detail = f"{exc.smtp_code} {vendor_text(reply, secrets, limit=160)}".strip()
            if 400 <= exc.smtp_code < 500 or isinstance(exc, smtplib.SMTPConnectError):
                return TransientError(f"server replied {detail}", system=SYSTEM, operation=op)
            return PermanentError(f"server replied {detail}", system=SYSTEM, operation=op)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(
                f"TLS certificate verification failed ({vendor_text(exc.verify_message, secrets)})",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, ssl.SSLError):
            return PermanentError(
                f"TLS failed ({vendor_text(exc.reason, secrets)})", system=SYSTEM, operation=op
            )
        if isinstance(exc, TimeoutError):
            return TransientError(f"timed out after {self.timeout:g}s", system=SYSTEM, operation=op)
        if isinstance(exc, OSError):
            return TransientError(
                f"cannot connect ({exc.strerror or type(exc).__name__}); is the server up?",
                system=SYSTEM,
                operation=op,
            )
        if isinstance(exc, smtplib.SMTPException):
            return PermanentError(f"SMTP failure ({type(exc).__name__})", system=SYSTEM, operation=op)
        return PermanentError(f"unexpected failure ({type(exc).__name__})", system=SYSTEM, operation=op)


def _password_forms(username: str | None, password: SecretStr | None) -> list[str]:
    """The password as smtplib sends it (plain, AUTH LOGIN's base64, AUTH PLAIN's base64 of
    ``\0user\0password``): a server that echoes a rejected AUTH line must not show it in any form."""
    if password is None or not password.get_secret_value():
        return []
    plain = password.get_secret_value()
    login = base64.b64encode(plain.encode("utf-8")).decode("ascii")
    auth_plain = base64.b64encode(f"\0{username or ''}\0{plain}".encode()).decode("ascii")
    return [plain, login, auth_plain]


def build_message(notification: Notification, sender: str, to: list[str]) -> EmailMessage:
    """The email for a notification: subject ``[SEVERITY] env: title``, text body, HTML alternative."""
    severity = notification.severity.value.upper()
    env = f"{notification.environment}: " if notification.environment else ""
    message = EmailMessage()
    subject = f"[{severity}] {env}{notification.title}"
    message["Subject"] = " ".join(subject.split())  # header values may not contain line breaks
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="envsteward")
    if notification.dedup_key:
        message["X-Envsteward-Dedup-Key"] = notification.dedup_key

    lines = [notification.title, "", notification.text, ""]
    lines.append(f"Severity: {notification.severity.value}")
    if notification.environment:
        lines.append(f"Environment: {notification.environment}")
    lines.append(f"Event: {notification.event.value}")
    lines.extend(f"{key}: {value}" for key, value in notification.fields.items())
    if notification.link:
        lines.extend(["", f"Details: {notification.link}"])
    message.set_content("\n".join(lines) + "\n")

    rows = [("Severity", notification.severity.value)]
    if notification.environment:
        rows.append(("Environment", notification.environment))
    rows.append(("Event", notification.event.value))
    rows.extend(notification.fields.items())
    table = "".join(
        f"<tr><th align='left'>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>"
        for key, value in rows
    )
    link = (
        f'<p><a href="{html.escape(notification.link, quote=True)}">Open details</a></p>'
        if notification.link
        else ""
    )
    text_html = html.escape(notification.text).replace("\n", "<br>")
    message.add_alternative(
        f"<html><body><h2>{html.escape(notification.title)}</h2><p>{text_html}</p>"
        f"<table>{table}</table>{link}</body></html>",
        subtype="html",
    )
    return message
