"""Drift alerts: which notifications a scan sends, de-duplicated by item fingerprint. Pure.

For every *scope* (an environment, or a parity pair such as ``staging<->production``) the state store keeps
the fingerprints of the drift items people were last told about. Each channel sees the items at or above
its floor — ``max(channel.min_severity, floor of its kind)``, the kind floors being Slack: any, email:
high, PagerDuty: critical — and gets a message only when that set changes:

* empty -> some: drift **appeared** (trigger); some -> other: drift **changed** (trigger, same dedup key, so
  PagerDuty updates its open incident); some -> empty: drift **cleared** (resolve, same dedup key).
* The same drift scanned again sends nothing.

A scope whose scan is ``unknown`` (a source could not be read) keeps its stored items untouched: nothing is
cleared because it could not be seen. The first unknown scan sends one notice to channels that take medium
drift, and the first readable one after it says so.

Notifications carry only redacted item data (paths, kinds, severities, redacted values).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envsteward.drift import DriftItem
from envsteward.ports import AlertEvent, JSONValue, Notification, Severity, StateStore
from envsteward.scan.model import _Frozen

KIND_FLOOR = {"slack": Severity.INFO, "email": Severity.HIGH, "pagerduty": Severity.CRITICAL}
UNKNOWN_NOTICE_SEVERITY = Severity.MEDIUM
MAX_LISTED_ITEMS = 15
STATE_PREFIX = "drift/alerts/"


@dataclass(frozen=True)
class AlertWording:
    """What the notifications of one kind of scan say (the secret inventory reuses this planner)."""

    subject: str = "Drift"
    """``Drift appeared in …``, ``Drift cleared in …``."""
    scan: str = "drift scan"
    still_open: str = "Open drift stays open"
    dedup_prefix: str = "envsteward/drift"
    report: str = "the drift report artifact"


DRIFT_WORDING = AlertWording()


def state_key(scope: str) -> str:
    """The state-store key of a scope's alert state."""
    return f"{STATE_PREFIX}{scope}"


def dedup_key(scope: str) -> str:
    """One incident per scope: PagerDuty updates it while drift changes and resolves it when it clears."""
    return f"envsteward/drift/{scope}"


@dataclass(frozen=True)
class ChannelRoute:
    """A catalog channel as the planner sees it."""

    name: str
    kind: str
    min_severity: Severity

    @property
    def floor(self) -> Severity:
        kind_floor = KIND_FLOOR.get(self.kind, Severity.INFO)
        return max(self.min_severity, kind_floor, key=lambda s: s.rank)


class AlertItem(_Frozen):
    """What the alert state remembers of one item (all redacted)."""

    fingerprint: str
    path: str
    kind: str
    severity: Severity
    line: str


def alert_item(item: DriftItem) -> AlertItem:
    """The alert view of a drift item: a one-line summary with redacted values."""
    path = item.path or "(root)"
    desired = _short(item.desired) if item.desired_type is not None else "—"
    live = _short(item.live) if item.live_type is not None else "—"
    line = f"[{item.severity.value}] {path} {item.kind.value}: desired {desired}, live {live}"
    if item.detail:
        line += f" ({item.detail})"
    return AlertItem(
        fingerprint=item.fingerprint, path=path, kind=item.kind.value, severity=item.severity, line=line
    )


def _short(value: JSONValue) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Delivery:
    """One notification for one channel."""

    channel: str
    notification: Notification


@dataclass(frozen=True)
class AlertPlan:
    state: dict[str, Any]
    """The scope's new alert state (store it)."""
    deliveries: tuple[Delivery, ...]
    reasons: tuple[str, ...]
    """Why each delivery is sent, or why nothing is."""


def _load(previous: JSONValue | None) -> tuple[dict[str, AlertItem], str | None]:
    if not isinstance(previous, Mapping):
        return {}, None
    items: dict[str, AlertItem] = {}
    for fingerprint, data in (previous.get("items") or {}).items():
        try:
            items[fingerprint] = AlertItem.model_validate(data)
        except ValueError:
            continue  # an unreadable entry is forgotten: at worst one extra message
    unknown = previous.get("unknown")
    return items, unknown if isinstance(unknown, str) else None


def _dump(items: Mapping[str, AlertItem], unknown: str | None) -> dict[str, Any]:
    return {"items": {fp: item.model_dump(mode="json") for fp, item in items.items()}, "unknown": unknown}


def _max(items: Sequence[AlertItem]) -> Severity:
    return max((item.severity for item in items), key=lambda s: s.rank, default=Severity.INFO)


def plan_alerts(
    scope: str,
    previous: JSONValue | None,
    current: Sequence[AlertItem] | None,
    routes: Sequence[ChannelRoute],
    *,
    unknown_reason: str | None = None,
    link: str | None = None,
    wording: AlertWording = DRIFT_WORDING,
) -> AlertPlan:
    """Compare the stored alert state of ``scope`` with the current items and plan the notifications.

    ``current`` None (or ``unknown_reason`` set) means the scope could not be scanned: the stored items are
    kept. Returns the new state and one delivery per (change, channel). ``wording``: what the messages say
    and their dedup key prefix (drift by default).
    """
    w = wording
    incident = f"{w.dedup_prefix}/{scope}"
    before, was_unknown = _load(previous)
    deliveries: list[Delivery] = []
    reasons: list[str] = []

    if current is None or unknown_reason is not None:
        reason = unknown_reason or "not scanned"
        if was_unknown is None:
            notice = Notification(
                title=f"❔ {w.scan.capitalize()} cannot see {scope}",
                text=f"The {w.scan} of {scope} is incomplete: {reason}. {w.still_open} until it "
                "can be read again.",
                severity=UNKNOWN_NOTICE_SEVERITY,
                event=AlertEvent.TRIGGER,
                environment=scope,
                dedup_key=f"{incident}/unknown",
                link=link,
                fields={"scope": scope, "status": "unknown"},
            )
            for route in routes:
                if route.floor.rank <= UNKNOWN_NOTICE_SEVERITY.rank:
                    deliveries.append(Delivery(route.name, notice))
                    reasons.append(f"{route.name}: {scope} became unknown")
        else:
            reasons.append(f"{scope} is still unknown: already told")
        return AlertPlan(_dump(before, was_unknown or reason), tuple(deliveries), tuple(reasons))

    now = {item.fingerprint: item for item in current}
    if was_unknown is not None:
        notice = Notification(
            title=f"👁 {w.scan.capitalize()} can see {scope} again",
            text=f"Every source of {scope} was read again.",
            severity=UNKNOWN_NOTICE_SEVERITY,
            event=AlertEvent.RESOLVE,
            environment=scope,
            dedup_key=f"{incident}/unknown",
            link=link,
            fields={"scope": scope},
        )
        for route in routes:
            if route.floor.rank <= UNKNOWN_NOTICE_SEVERITY.rank:
                deliveries.append(Delivery(route.name, notice))
                reasons.append(f"{route.name}: {scope} readable again")

    for route in routes:
        old = {fp: item for fp, item in before.items() if item.severity.rank >= route.floor.rank}
        new = {fp: item for fp, item in now.items() if item.severity.rank >= route.floor.rank}
        if old.keys() == new.keys():
            continue
        notification = _change_notification(scope, route, old, new, link, wording=w)
        deliveries.append(Delivery(route.name, notification))
        reasons.append(f"{route.name}: {notification.title}")
    if not deliveries:
        reasons.append(f"{scope}: nothing new to tell")
    return AlertPlan(_dump(now, None), tuple(deliveries), tuple(reasons))


def record_alerts(
    store: StateStore, key: str, plan: Callable[[JSONValue | None], AlertPlan]
) -> tuple[Delivery, ...]:
    """Fold a scan into the alert state at ``key`` and return the notifications to send, in one
    compare-and-set (``StateStore.update``): of several workers that fold the same change at once, exactly
    one gets its deliveries back, the others find the state already changed and get none (the change is
    told once). ``plan`` (:func:`plan_alerts` with its arguments bound) may run more than once; only the
    committed run's deliveries are returned. Calls the state store; raises its errors."""
    planned: list[AlertPlan] = []

    def fold(previous: JSONValue | None) -> JSONValue:
        planned[:] = [plan(previous)]
        return planned[0].state

    store.update(key, fold)
    return planned[0].deliveries if planned else ()


def _change_notification(
    scope: str,
    route: ChannelRoute,
    old: Mapping[str, AlertItem],
    new: Mapping[str, AlertItem],
    link: str | None,
    *,
    wording: AlertWording = DRIFT_WORDING,
) -> Notification:
    w = wording
    appeared = [item for fp, item in new.items() if fp not in old]
    cleared = [item for fp, item in old.items() if fp not in new]
    counts = {s.value: 0 for s in (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)}
    for item in new.values():
        counts[item.severity.value] = counts.get(item.severity.value, 0) + 1
    fields = {
        "scope": scope,
        "open": ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "none",
        "new": str(len(appeared)),
        "cleared": str(len(cleared)),
    }
    if not new:
        title = f"✅ {w.subject} cleared in {scope}"
        event, severity = AlertEvent.RESOLVE, _max(list(old.values()))
        text = _lines("Cleared", cleared, w.report)
    else:
        severity = _max(list(new.values()))
        event = AlertEvent.TRIGGER
        if not old:
            title = f"⚠️ {w.subject} appeared in {scope}: {len(new)} item(s), worst {severity.value}"
            text = _lines(w.subject, appeared, w.report)
        else:
            title = f"⚠️ {w.subject} changed in {scope}: {len(appeared)} new, {len(cleared)} cleared"
            text = "\n".join(
                part
                for part in (_lines("New", appeared, w.report), _lines("Cleared", cleared, w.report))
                if part
            )
    return Notification(
        title=title,
        text=text,
        severity=severity,
        event=event,
        environment=scope,
        dedup_key=f"{w.dedup_prefix}/{scope}",
        link=link,
        fields=fields,
    )


def _lines(label: str, items: Sequence[AlertItem], report: str = DRIFT_WORDING.report) -> str:
    if not items:
        return ""
    ordered = sorted(items, key=lambda item: (-item.severity.rank, item.path))
    lines = [f"{label}:"] + [f"• {item.line}" for item in ordered[:MAX_LISTED_ITEMS]]
    if len(ordered) > MAX_LISTED_ITEMS:
        lines.append(f"• … and {len(ordered) - MAX_LISTED_ITEMS} more (see {report})")
    return "\n".join(lines)


def routes_for(channels: Mapping[str, Any], names: Sequence[str]) -> list[ChannelRoute]:
    """Routes for catalog channel specs (anything with ``name``, ``kind`` and ``min_severity``)."""
    routes = []
    for name in dict.fromkeys(names):
        spec = channels.get(name)
        if spec is not None:
            routes.append(ChannelRoute(name=name, kind=str(spec.kind), min_severity=spec.min_severity))
    return routes
