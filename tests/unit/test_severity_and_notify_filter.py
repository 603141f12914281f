"""Fail-safe severities (ports.py) and the channel severity filter (notify.py)."""

from __future__ import annotations

import pytest

from envsteward.notify import SeverityFilteredNotifier
from envsteward.ports import AlertEvent, Notification, Severity


@pytest.mark.parametrize("name", ["no-such-severity", "", None, "urgent", "hgh"])
def test_an_unknown_severity_is_the_highest(name: str | None) -> None:
    assert Severity.parse(name) is Severity.CRITICAL
    assert Severity.parse(name).rank == max(s.rank for s in Severity)


@pytest.mark.parametrize("name", ["no-such-severity", None])
def test_an_unknown_threshold_is_the_lowest(name: str | None) -> None:
    """A threshold (fail_on, a filter) fails safe the other way: everything is at or above it."""
    assert Severity.parse_threshold(name) is Severity.INFO


@pytest.mark.parametrize("severity", list(Severity))
def test_known_names_parse_in_any_case(severity: Severity) -> None:
    assert Severity.parse(severity.value.upper()) is severity
    assert Severity.parse_threshold(severity.value) is severity


class _Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


def _note(severity: Severity, event: AlertEvent, key: str) -> Notification:
    return Notification(title=key, text=key, severity=severity, event=event, dedup_key=key)


def test_a_channel_that_heard_an_alert_hears_its_resolution_whatever_the_resolve_severity() -> None:
    """Callers differ in the severity they give a resolve (drills: INFO; drift: the cleared items' worst),
    so the filter never drops a resolve: a HIGH alert heard by a HIGH channel is closed there even when
    its resolve says INFO."""
    inner = _Recorder()
    channel = SeverityFilteredNotifier(inner, Severity.HIGH)
    channel.send(_note(Severity.HIGH, AlertEvent.TRIGGER, "db-down"))
    channel.send(_note(Severity.INFO, AlertEvent.RESOLVE, "db-down"))
    assert [(n.dedup_key, n.event) for n in inner.sent] == [
        ("db-down", AlertEvent.TRIGGER),
        ("db-down", AlertEvent.RESOLVE),
    ]


def test_below_threshold_alerts_are_dropped_but_their_resolve_still_passes() -> None:
    """Decided: the filter is stateless, so it cannot know whether the channel heard the alert; it lets
    every resolve through. A channel may then see a resolve for an alert it never heard (one harmless
    "recovered" line; PagerDuty ignores a resolve for a dedup key it has no incident for) -- the price of
    never leaving an incident open where it was opened."""
    inner = _Recorder()
    channel = SeverityFilteredNotifier(inner, Severity.HIGH)
    channel.send(_note(Severity.LOW, AlertEvent.TRIGGER, "minor"))
    channel.send(_note(Severity.MEDIUM, AlertEvent.INFO, "fyi"))
    channel.send(_note(Severity.LOW, AlertEvent.RESOLVE, "minor"))
    channel.send(_note(Severity.CRITICAL, AlertEvent.INFO, "loud"))
    assert [(n.dedup_key, n.event) for n in inner.sent] == [
        ("minor", AlertEvent.RESOLVE),
        ("loud", AlertEvent.INFO),
    ]
    assert channel.name == "recorder"
