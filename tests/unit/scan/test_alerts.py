"""Alert planning (pure): appear / change / clear per channel floor, de-duplication, unknown scopes."""

from __future__ import annotations

from typing import Any

from envsteward.ports import AlertEvent, Severity
from envsteward.scan.alerts import AlertItem, ChannelRoute, dedup_key, plan_alerts

ROUTES = [
    ChannelRoute("slack", "slack", Severity.LOW),
    ChannelRoute("email", "email", Severity.MEDIUM),  # the kind's floor (high) wins
    ChannelRoute("pd", "pagerduty", Severity.INFO),  # the kind's floor (critical) wins
]


def item(fp: str, severity: Severity, path: str = "a.b") -> AlertItem:
    return AlertItem(
        fingerprint=fp * 16, path=path, kind="changed", severity=severity, line=f"[{severity}] {path}"
    )


def channels(plan: Any) -> list[tuple[str, AlertEvent]]:
    return [(d.channel, d.notification.event) for d in plan.deliveries]


def test_appear_repeat_change_clear() -> None:
    low, crit = item("a", Severity.LOW), item("b", Severity.CRITICAL, "security.x")
    first = plan_alerts("prod", None, [low, crit], ROUTES)
    assert channels(first) == [
        ("slack", AlertEvent.TRIGGER),
        ("email", AlertEvent.TRIGGER),
        ("pd", AlertEvent.TRIGGER),
    ]
    assert all(d.notification.dedup_key == dedup_key("prod") for d in first.deliveries)
    assert first.deliveries[0].notification.severity is Severity.CRITICAL
    assert "Drift appeared in prod" in first.deliveries[0].notification.title

    again = plan_alerts("prod", first.state, [low, crit], ROUTES)
    assert again.deliveries == ()
    assert again.state == first.state

    # the low item goes away: only Slack sees a change; the critical incident stays open
    changed = plan_alerts("prod", again.state, [crit], ROUTES)
    assert channels(changed) == [("slack", AlertEvent.TRIGGER)]
    assert "1 cleared" in changed.deliveries[0].notification.title

    cleared = plan_alerts("prod", changed.state, [], ROUTES)
    assert channels(cleared) == [
        ("slack", AlertEvent.RESOLVE),
        ("email", AlertEvent.RESOLVE),
        ("pd", AlertEvent.RESOLVE),
    ]
    assert cleared.deliveries[2].notification.severity is Severity.CRITICAL
    assert plan_alerts("prod", cleared.state, [], ROUTES).deliveries == ()


def test_medium_drift_reaches_slack_only() -> None:
    plan = plan_alerts("staging", None, [item("m", Severity.MEDIUM)], ROUTES)
    assert channels(plan) == [("slack", AlertEvent.TRIGGER)]


def test_unknown_keeps_items_and_notices_once() -> None:
    crit = item("c", Severity.CRITICAL)
    seen = plan_alerts("prod", None, [crit], ROUTES)
    unknown = plan_alerts("prod", seen.state, None, ROUTES, unknown_reason="vault down")
    assert channels(unknown) == [("slack", AlertEvent.TRIGGER)], "an unknown scan clears nothing"
    assert unknown.state["items"] == seen.state["items"]
    assert unknown.state["unknown"] == "vault down"
    still = plan_alerts("prod", unknown.state, None, ROUTES, unknown_reason="vault still down")
    assert still.deliveries == ()
    back = plan_alerts("prod", still.state, [crit], ROUTES)
    assert channels(back) == [("slack", AlertEvent.RESOLVE)]  # readable again; the drift did not change
    assert back.state["unknown"] is None


def test_a_damaged_state_is_treated_as_empty() -> None:
    plan = plan_alerts("x", {"items": {"zz": {"bad": 1}}, "unknown": 5}, [item("d", Severity.LOW)], ROUTES)
    assert channels(plan) == [("slack", AlertEvent.TRIGGER)]


def test_long_lists_are_cut() -> None:
    many = [item(f"{i:x}", Severity.LOW, f"p{i}") for i in range(40)]
    (delivery,) = plan_alerts("x", None, many, ROUTES).deliveries
    assert "and 25 more" in delivery.notification.text
