"""Slack, email and PagerDuty notifiers against their loopback stand-ins (tests/fixtures/standins.py)."""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from envsteward.adapters.email import EmailNotifier
from envsteward.adapters.pagerduty import PagerDutyNotifier
from envsteward.adapters.registry import NOTIFIERS
from envsteward.adapters.slack import SlackNotifier, build_blocks
from envsteward.catalog.models import EmailChannel
from envsteward.errors import (
    AuthenticationError,
    ConfigurationError,
    EnvstewardError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
)
from envsteward.ports import AlertEvent, Notification, Notifier, Severity
from envsteward.services import Services
from envsteward.settings import Settings, SMTPSettings
from tests.fixtures._proc import free_port
from tests.fixtures.standins import PagerDutyStandin, SlackStandin, SMTPStandin

MINIMAL_CATALOG = Path(__file__).resolve().parents[1] / "data" / "catalogs" / "minimal"

DRIFT = Notification(
    title="Drift in production: 3 items",
    text="app/replicas is 2, expected 3 <see catalog> & fix",
    severity=Severity.HIGH,
    event=AlertEvent.TRIGGER,
    environment="production",
    dedup_key="drift:production",
    link="http://127.0.0.1:4200/runs/flow-run/1234",
    fields={"Changed": "1", "Missing": "2", "Source": "vault://kv/app"},
)


def _exception_texts(exc: BaseException) -> str:
    """Everything an exception could leak through: str, repr, args, and its whole cause/context chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.extend([str(current), repr(current), *map(str, current.args)])
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------
# Slack
# ---------------------------------------------------------------------------------------------------------


def _slack(
    standin: SlackStandin, token: str | None = None, channel: str = "#envsteward-alerts"
) -> SlackNotifier:
    return SlackNotifier(SecretStr(token or standin.token), channel, base_url=standin.url)


def test_slack_posts_block_kit_message(slack_standin: SlackStandin) -> None:
    notifier = _slack(slack_standin)
    assert isinstance(notifier, Notifier)
    notifier.send(DRIFT)
    [call] = slack_standin.calls
    assert call.method == "chat.postMessage"
    assert call.authorization == f"Bearer {slack_standin.token}"
    payload = call.payload
    assert payload["channel"] == "#envsteward-alerts"
    assert payload["text"].startswith("[HIGH] production: Drift in production: 3 items")
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "context", "section", "section", "actions"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": DRIFT.title, "emoji": True}
    context = blocks[1]["elements"][0]["text"]
    assert "*HIGH*" in context
    assert "environment: *production*" in context
    assert "trigger" in context
    assert blocks[2]["text"]["text"] == "app/replicas is 2, expected 3 &lt;see catalog&gt; &amp; fix"
    assert [f["text"] for f in blocks[3]["fields"]] == [
        "*Changed*\n1",
        "*Missing*\n2",
        "*Source*\nvault://kv/app",
    ]
    button = blocks[4]["elements"][0]
    assert button["type"] == "button"
    assert button["url"] == DRIFT.link


def test_slack_minimal_message_and_many_fields(slack_standin: SlackStandin) -> None:
    plain = Notification(title="Backup finished", text="")
    blocks = build_blocks(plain)
    assert [b["type"] for b in blocks] == ["header", "context"]
    many = Notification(title="t" * 400, text="x", fields={f"k{i}": str(i) for i in range(23)})
    blocks = build_blocks(many)
    assert len(blocks[0]["text"]["text"]) == 150
    assert [len(b["fields"]) for b in blocks if "fields" in b] == [10, 10, 3]
    _slack(slack_standin).send(many)  # the stand-in rejects headers over 150 characters
    assert len(slack_standin.messages()) == 1


def test_slack_auth_test(slack_standin: SlackStandin) -> None:
    assert _slack(slack_standin).auth_test() == "envsteward"
    assert slack_standin.calls[0].method == "auth.test"


@pytest.mark.parametrize(
    ("error", "status", "expected", "text"),
    [
        ("ratelimited", 429, TransientError, "rate limited; retry after 7s"),
        ("internal_error", 500, TransientError, "HTTP 500"),
        ("invalid_auth", 200, AuthenticationError, "bot token was rejected"),
        ("not_authed", 200, AuthenticationError, "bot token was rejected"),
        ("account_inactive", 200, AuthenticationError, "bot token was rejected"),
        ("channel_not_found", 200, NotFoundError, "channel #envsteward-alerts not found"),
        ("missing_scope", 200, PermissionDeniedError, "missing_scope"),
        ("invalid_blocks", 200, PermanentError, "invalid_blocks"),
    ],
)
def test_slack_error_mapping(
    slack_standin: SlackStandin, error: str, status: int, expected: type[EnvstewardError], text: str
) -> None:
    slack_standin.fail_next(error, status=status)
    with pytest.raises(expected) as caught:
        _slack(slack_standin).send(DRIFT)
    assert type(caught.value) is expected
    assert text in str(caught.value)
    assert str(caught.value).startswith("slack: chat.postMessage to #envsteward-alerts: ")
    assert slack_standin.token not in _exception_texts(caught.value)


def test_slack_wrong_token_and_unknown_channel(slack_standin: SlackStandin) -> None:
    with pytest.raises(AuthenticationError):
        _slack(slack_standin, token="xoxb-wrong").send(DRIFT)
    with pytest.raises(NotFoundError):
        _slack(slack_standin, channel="#nope").send(DRIFT)


def test_slack_non_json_outage_page_is_transient(slack_standin: SlackStandin) -> None:
    slack_standin.fail_next_raw(502, b"<html>bad gateway</html>")
    with pytest.raises(TransientError):
        _slack(slack_standin).send(DRIFT)


def test_slack_closed_port_is_transient() -> None:
    notifier = SlackNotifier(SecretStr("xoxb-x"), "#c", base_url=f"http://127.0.0.1:{free_port()}/api/")
    with pytest.raises(TransientError, match="cannot reach"):
        notifier.send(DRIFT)


def test_slack_seeded_token_never_leaks(slack_standin: SlackStandin) -> None:
    seeded = "xoxb-seeded-SECRET-91c2d7"
    slack_standin.token = seeded
    notifier = _slack(slack_standin)
    notifier.send(DRIFT)
    assert seeded not in repr(notifier)
    failures: list[BaseException] = []
    for error in ("ratelimited", "invalid_auth", "channel_not_found"):
        slack_standin.fail_next(error)
        with pytest.raises(EnvstewardError) as caught:
            notifier.send(DRIFT)
        failures.append(caught.value)
    with pytest.raises(AuthenticationError) as wrong:
        _slack(slack_standin, token="xoxb-seeded-SECRET-wrong").send(DRIFT)
    failures.append(wrong.value)
    for failure in failures:
        assert "SECRET" not in _exception_texts(failure)
    for call in slack_standin.calls:
        headers_without_auth = {k: v for k, v in call.headers.items() if k.lower() != "authorization"}
        assert seeded not in json.dumps(headers_without_auth)
        assert seeded.encode() not in call.raw_body
        assert seeded not in json.dumps(call.payload)
    assert slack_standin.calls[0].authorization == f"Bearer {seeded}"


# ---------------------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------------------


def _email(server: SMTPStandin, **overrides: Any) -> EmailNotifier:
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "sender": "envsteward@example.test",
        "to": ["oncall@example.test", "platform@example.test"],
        "starttls": False,
        "username": None,
        "password": None,
        "timeout": 5,
    }
    options.update(overrides)
    return EmailNotifier(**options)


def test_email_plain_delivery(smtp_server: SMTPStandin) -> None:
    notifier = _email(smtp_server)
    assert isinstance(notifier, Notifier)
    notifier.send(DRIFT)
    [mail] = smtp_server.messages
    assert mail.mail_from == "envsteward@example.test"
    assert mail.rcpt_tos == ["oncall@example.test", "platform@example.test"]
    assert not mail.tls
    assert mail.authenticated_as is None
    message = mail.message
    assert message["Subject"] == "[HIGH] production: Drift in production: 3 items"
    assert message["X-Envsteward-Dedup-Key"] == "drift:production"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "app/replicas is 2, expected 3 <see catalog> & fix" in text
    assert "Source: vault://kv/app" in text
    assert DRIFT.link in text
    assert "&lt;see catalog&gt; &amp; fix" in html
    assert f'href="{DRIFT.link}"' in html


def test_email_starttls_and_login(smtp_server: SMTPStandin) -> None:
    notifier = _email(
        smtp_server,
        starttls=True,
        username=smtp_server.username,
        password=SecretStr(smtp_server.password),
        tls_context=smtp_server.client_tls_context(),
    )
    notifier.send(DRIFT)
    [mail] = smtp_server.messages
    assert mail.tls
    assert mail.authenticated_as == smtp_server.username


def test_email_untrusted_certificate_is_permanent(smtp_server: SMTPStandin) -> None:
    notifier = _email(smtp_server, starttls=True, tls_context=ssl.create_default_context())
    with pytest.raises(PermanentError, match="certificate verification failed"):
        notifier.send(DRIFT)
    assert smtp_server.messages == []


def test_email_login_without_tls_is_permanent(smtp_server: SMTPStandin) -> None:
    """The server offers AUTH only after STARTTLS: logging in on a plain connection is a settings error."""
    notifier = _email(smtp_server, username=smtp_server.username, password=SecretStr(smtp_server.password))
    with pytest.raises(PermanentError, match=r"check smtp\.starttls"):
        notifier.send(DRIFT)


@pytest.mark.parametrize(
    ("stage", "reply", "expected"),
    [
        ("MAIL", "451 4.3.0 Mail server temporarily rejected message", TransientError),
        ("MAIL", "553 5.1.8 Sender address rejected", PermanentError),
        ("DATA", "452 4.3.1 Insufficient system storage", TransientError),
        ("DATA", "554 5.7.1 Message rejected as spam", PermanentError),
    ],
)
def test_email_reply_mapping(
    smtp_server: SMTPStandin, stage: str, reply: str, expected: type[EnvstewardError]
) -> None:
    smtp_server.fail_next(stage, reply)
    with pytest.raises(expected) as caught:
        _email(smtp_server).send(DRIFT)
    assert type(caught.value) is expected
    assert f"server replied {reply.split(maxsplit=1)[0]}" in str(caught.value)
    assert str(caught.value).startswith(f"smtp: send to 127.0.0.1:{smtp_server.port}: ")


def test_email_recipient_refusals(smtp_server: SMTPStandin) -> None:
    # Every recipient refused with 4xx: transient.
    smtp_server.fail_next("RCPT", "450 4.2.1 Mailbox busy")
    smtp_server.fail_next("RCPT", "451 4.3.0 Try later")
    with pytest.raises(TransientError, match="refused every recipient"):
        _email(smtp_server).send(DRIFT)
    # One refused with 5xx, the other accepted: the mail went to one, and the failure is reported.
    smtp_server.fail_next("RCPT", "550 5.1.1 No such user")
    with pytest.raises(
        PermanentError, match=r"refused recipients \['oncall@example.test'\] \(codes \[550\]\)"
    ):
        _email(smtp_server).send(DRIFT)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["platform@example.test"]]


def test_email_closed_port_is_transient() -> None:
    notifier = EmailNotifier(
        "127.0.0.1", free_port(), "a@example.test", ["b@example.test"], False, None, None, 2
    )
    with pytest.raises(TransientError, match="cannot connect"):
        notifier.send(DRIFT)


def test_email_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="no recipients"):
        EmailNotifier("127.0.0.1", 25, "a@example.test", [], False, None, None, 2)
    with pytest.raises(ConfigurationError, match="no password reference"):
        EmailNotifier("127.0.0.1", 25, "a@example.test", ["b@example.test"], False, "user", None, 2)


def test_email_seeded_password_never_leaks(smtp_server: SMTPStandin) -> None:
    seeded = "smtp-seeded-SECRET-4b8e21"
    smtp_server.password = seeded
    good = _email(
        smtp_server,
        starttls=True,
        username=smtp_server.username,
        password=SecretStr(seeded),
        tls_context=smtp_server.client_tls_context(),
    )
    good.send(DRIFT)
    assert seeded not in repr(good)
    assert seeded.encode() not in smtp_server.messages[0].content

    wrong = _email(
        smtp_server,
        starttls=True,
        username=smtp_server.username,
        password=SecretStr("smtp-seeded-SECRET-wrong"),
        tls_context=smtp_server.client_tls_context(),
    )
    with pytest.raises(AuthenticationError, match="rejected") as caught:
        wrong.send(DRIFT)
    assert "SECRET" not in _exception_texts(caught.value)


def test_email_password_echoed_in_any_encoding_is_redacted(smtp_server: SMTPStandin) -> None:
    """smtplib sends the password base64-encoded (AUTH LOGIN, AUTH PLAIN); a server that echoes the line
    it rejected with a non-535 reply must not put the password into the message in that form either."""
    seeded = "smtp-seeded-SECRET-b64"
    notifier = _email(smtp_server, username="mailer", password=SecretStr(seeded))
    login = base64.b64encode(seeded.encode()).decode()
    auth_plain = base64.b64encode(f"\0mailer\0{seeded}".encode()).decode()
    for echoed in (seeded, login, auth_plain):
        reply = smtplib.SMTPResponseException(501, f"5.5.2 cannot decode {echoed}".encode())
        error = notifier._translate(reply)
        assert isinstance(error, PermanentError)
        assert "501" in str(error)
        assert echoed not in str(error)
        assert "<redacted>" in str(error)


def test_email_channel_without_password_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("ENVSTEWARD_TEST_SMTP_PASSWORD", raising=False)
    services = Services(
        Settings(smtp=SMTPSettings(username="mailer", password_env="ENVSTEWARD_TEST_SMTP_PASSWORD"))
    )
    channel = EmailChannel(name="mail", kind="email", to=["oncall@example.test"])
    build = NOTIFIERS.factory("email")
    with pytest.raises(ConfigurationError, match="export ENVSTEWARD_TEST_SMTP_PASSWORD"):
        build(channel, services.settings, services.resolve_secret)
    monkeypatch.setenv("ENVSTEWARD_TEST_SMTP_PASSWORD", "smtp-seeded-SECRET-env")
    notifier = build(channel, services.settings, services.resolve_secret)
    assert notifier.name == "email"
    assert "SECRET" not in repr(notifier)


def test_unknown_channel_names_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    services = Services(Settings(catalog=MINIMAL_CATALOG, home=tmp_path / "home"))
    with pytest.raises(ConfigurationError, match=r"no notification channel 'nope' \(known: ops, pager\)"):
        services.notifiers(["ops", "nope"])


# ---------------------------------------------------------------------------------------------------------
# PagerDuty
# ---------------------------------------------------------------------------------------------------------


def _pd(standin: PagerDutyStandin, key: str | None = None) -> PagerDutyNotifier:
    return PagerDutyNotifier(SecretStr(key or standin.routing_key), standin.url, timeout_seconds=5)


def test_pagerduty_trigger_and_resolve(pagerduty_standin: PagerDutyStandin) -> None:
    notifier = _pd(pagerduty_standin)
    assert isinstance(notifier, Notifier)
    notifier.send(DRIFT)
    [event] = pagerduty_standin.events
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "drift:production"
    assert event["payload"] == {
        "summary": "[production] Drift in production: 3 items",
        "severity": "error",
        "source": "production",
        "component": "envsteward",
        "custom_details": {
            "text": DRIFT.text,
            "environment": "production",
            "Changed": "1",
            "Missing": "2",
            "Source": "vault://kv/app",
        },
    }
    assert event["links"] == [{"href": DRIFT.link, "text": "Details"}]

    resolve = Notification(
        title="Drift healed", text="", event=AlertEvent.RESOLVE, dedup_key="drift:production"
    )
    notifier.send(resolve)
    assert pagerduty_standin.events[1] == {
        "routing_key": pagerduty_standin.routing_key,
        "event_action": "resolve",
        "dedup_key": "drift:production",
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.CRITICAL, "critical"),
        (Severity.HIGH, "error"),
        (Severity.MEDIUM, "warning"),
        (Severity.LOW, "info"),
        (Severity.INFO, "info"),
    ],
)
def test_pagerduty_severity_mapping(
    pagerduty_standin: PagerDutyStandin, severity: Severity, expected: str
) -> None:
    _pd(pagerduty_standin).send(
        Notification(title="t", text="x", severity=severity, event=AlertEvent.TRIGGER)
    )
    [event] = pagerduty_standin.events
    assert event["payload"]["severity"] == expected
    assert event["payload"]["source"] == "envsteward"
    assert "dedup_key" not in event


def test_pagerduty_info_events_are_not_sent(pagerduty_standin: PagerDutyStandin) -> None:
    _pd(pagerduty_standin).send(Notification(title="FYI", text="backup done", event=AlertEvent.INFO))
    assert pagerduty_standin.received == []


def test_pagerduty_resolve_needs_dedup_key(pagerduty_standin: PagerDutyStandin) -> None:
    with pytest.raises(PermanentError, match=r"resolve event needs notification\.dedup_key"):
        _pd(pagerduty_standin).send(Notification(title="ok", text="", event=AlertEvent.RESOLVE))
    assert pagerduty_standin.received == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, TransientError), (500, TransientError), (503, TransientError), (400, PermanentError)],
)
def test_pagerduty_error_mapping(
    pagerduty_standin: PagerDutyStandin, status: int, expected: type[EnvstewardError]
) -> None:
    pagerduty_standin.fail_next(status)
    with pytest.raises(expected) as caught:
        _pd(pagerduty_standin).send(DRIFT)
    assert type(caught.value) is expected
    assert f"HTTP {status}" in str(caught.value)
    assert str(caught.value).startswith("pagerduty: trigger (http://127.0.0.1:")
    assert pagerduty_standin.events == []


def test_pagerduty_invalid_routing_key_is_permanent_and_not_echoed(
    pagerduty_standin: PagerDutyStandin,
) -> None:
    with pytest.raises(PermanentError, match="Event object is invalid") as caught:
        _pd(pagerduty_standin, key="too-short-SECRET-key").send(DRIFT)
    assert "SECRET" not in _exception_texts(caught.value)


def test_pagerduty_closed_port_is_transient() -> None:
    notifier = PagerDutyNotifier(SecretStr("k" * 32), f"http://127.0.0.1:{free_port()}/v2/enqueue", 2)
    with pytest.raises(TransientError, match="connection refused"):
        notifier.send(DRIFT)


def test_pagerduty_seeded_routing_key_only_in_routing_key_field(pagerduty_standin: PagerDutyStandin) -> None:
    seeded = "SEEDEDSECRETROUTINGKEY0123456789"
    pagerduty_standin.routing_key = seeded
    notifier = _pd(pagerduty_standin)
    notifier.send(DRIFT)
    assert seeded not in repr(notifier)
    failures: list[BaseException] = []
    for status in (400, 429, 500):
        pagerduty_standin.fail_next(status)
        with pytest.raises(EnvstewardError) as caught:
            notifier.send(DRIFT)
        failures.append(caught.value)
    for failure in failures:
        assert seeded not in _exception_texts(failure)
    for body in pagerduty_standin.received:
        event = json.loads(body)
        assert event.pop("routing_key") == seeded
        assert seeded not in json.dumps(event)


# ---------------------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------------------


def test_no_secret_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
    slack_standin: SlackStandin,
    smtp_server: SMTPStandin,
    pagerduty_standin: PagerDutyStandin,
) -> None:
    """slack-sdk, httpx, httpcore and aiosmtpd log at DEBUG; none of them may log a credential."""
    slack_standin.token = "xoxb-logged-SECRET-1"
    smtp_server.password = "smtp-logged-SECRET-2"
    pagerduty_standin.routing_key = "PDLOGGEDSECRET3000000000000000000"[:32]
    caplog.set_level("DEBUG")
    _slack(slack_standin).send(DRIFT)
    slack_standin.fail_next("invalid_auth")
    with pytest.raises(AuthenticationError):
        _slack(slack_standin).send(DRIFT)
    _email(
        smtp_server,
        starttls=True,
        username=smtp_server.username,
        password=SecretStr(smtp_server.password),
        tls_context=smtp_server.client_tls_context(),
    ).send(DRIFT)
    _pd(pagerduty_standin).send(DRIFT)
    pagerduty_standin.fail_next(400)
    with pytest.raises(PermanentError):
        _pd(pagerduty_standin).send(DRIFT)
    assert len(caplog.records) > 0  # the libraries did log: the check below is not vacuous
    assert "SECRET" not in caplog.text
