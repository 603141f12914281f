"""SVG charts from the status history the flows keep (``status/health/<env>``, ``status/drift/<env>``). Pure.

* :func:`drift_chart` — open drift items over time, one panel per environment, a line per severity.
* :func:`uptime_chart` — per environment, the share of health runs with every check up (a bar), and a
  strip of the recorded runs (green all up, amber some degraded, red some down).

Every text in an SVG (environment names come from the catalog) is XML-escaped; :func:`chart_markdown`
embeds a chart as a ``data:image/svg+xml;base64`` image so it travels inside one markdown artifact.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from envsteward.status.records import SEVERITIES

DRIFT_CHART_KEY = "platform-status-drift-chart"
UPTIME_CHART_KEY = "platform-status-uptime-chart"
_WIDTH = 640
_PANEL = 120
_COLOURS = {
    "critical": "#b91c1c",
    "high": "#ea580c",
    "medium": "#ca8a04",
    "low": "#2563eb",
    "info": "#6b7280",
}
_STATE_COLOURS = {"up": "#16a34a", "degraded": "#f59e0b", "down": "#dc2626"}

Points = Sequence[Sequence[Any]]


def _text(  # noqa: PLR0917
    x: float, y: float, text: str, size: int = 11, anchor: str = "start", weight: str = "normal"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="sans-serif" font-size="{size}" '
        f"text-anchor={quoteattr(anchor)} font-weight={quoteattr(weight)}>{escape(text)}</text>"
    )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M")


def drift_chart(history: Mapping[str, Points]) -> str:
    """Open drift items by severity over time: ``history`` maps an environment to its drift points
    (``[epoch, critical, high, medium, low, info]``)."""
    envs = list(history)
    height = 40 + _PANEL * max(1, len(envs)) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}">',
        f'<rect width="{_WIDTH}" height="{height}" fill="white"/>',
        _text(10, 20, "Open drift items over time", 14, weight="bold"),
    ]
    for slot, env in enumerate(envs):
        top = 36 + slot * _PANEL
        parts += _drift_panel(env, [p for p in history[env] if len(p) >= 1 + len(SEVERITIES)], top)
    legend_y = height - 10
    for index, name in enumerate(SEVERITIES):
        x = 70 + index * 100
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{_COLOURS[name]}"/>')
        parts.append(_text(x + 14, legend_y, name, 10))
    parts.append("</svg>")
    return "".join(parts)


def _drift_panel(env: str, points: Points, top: float) -> list[str]:
    left, right, plot_h = 60.0, _WIDTH - 20.0, _PANEL - 40.0
    parts = [_text(10, top + 12, env, 12, weight="bold")]
    base = top + 20 + plot_h
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#9ca3af" stroke-width="1"/>'
    )
    if not points:
        parts.append(_text(left + 10, top + 20 + plot_h / 2, "no scans recorded yet", 11))
        return parts
    start, end = float(points[0][0]), float(points[-1][0])
    span = max(end - start, 1.0)
    peak = max(1, *(int(v) for p in points for v in p[1 : 1 + len(SEVERITIES)]))

    def x(epoch: float) -> float:
        return left + (right - left) * ((epoch - start) / span if len(points) > 1 else 0.5)

    def y(value: float) -> float:
        return base - plot_h * value / peak

    parts.append(_text(left - 6, y(peak) + 4, str(peak), 10, "end"))
    parts.append(_text(left - 6, base + 4, "0", 10, "end"))
    parts.append(_text(left, base + 14, _stamp(start), 9))
    parts.append(_text(right, base + 14, _stamp(end), 9, "end"))
    for index, name in enumerate(SEVERITIES, start=1):
        values = [(float(p[0]), float(p[index])) for p in points]
        if not any(v for _, v in values):
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in values)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{_COLOURS[name]}" stroke-width="2"/>')
    return parts


def uptime_share(points: Points) -> float | None:
    """The share of recorded health runs with no check down or degraded (None without runs)."""
    usable = [p for p in points if len(p) >= 4]
    if not usable:
        return None
    return sum(1 for p in usable if not p[2] and not p[3]) / len(usable)


def uptime_chart(history: Mapping[str, Points]) -> str:
    """Health uptime per environment: ``history`` maps an environment to its health points
    (``[epoch, up, degraded, down]``)."""
    envs = list(history)
    row_h = 44
    height = 40 + row_h * max(1, len(envs)) + 10
    left, right = 130.0, _WIDTH - 70.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}">',
        f'<rect width="{_WIDTH}" height="{height}" fill="white"/>',
        _text(10, 20, "Health uptime (share of runs with every check up)", 14, weight="bold"),
    ]
    for slot, env in enumerate(envs):
        top = 34 + slot * row_h
        points = [p for p in history[env] if len(p) >= 4]
        share = uptime_share(points)
        parts.append(_text(10, top + 14, env, 12, weight="bold"))
        parts.append(f'<rect x="{left}" y="{top + 3}" width="{right - left}" height="14" fill="#e5e7eb"/>')
        if share is None:
            parts.append(_text(left + 6, top + 14, "no health runs recorded yet", 10))
            continue
        colour = (
            _STATE_COLOURS["up"]
            if share >= 0.99
            else _STATE_COLOURS["degraded"]
            if share >= 0.9
            else (_STATE_COLOURS["down"])
        )
        parts.append(
            f'<rect x="{left}" y="{top + 3}" width="{(right - left) * share:.1f}" height="14" '
            f'fill="{colour}"/>'
        )
        parts.append(_text(right + 6, top + 14, f"{share * 100:.1f}%", 11))
        step = (right - left) / len(points)
        for index, point in enumerate(points):
            state = "down" if point[3] else "degraded" if point[2] else "up"
            parts.append(
                f'<rect x="{left + index * step:.2f}" y="{top + 21}" width="{max(step, 0.5):.2f}" height="8" '
                f'fill="{_STATE_COLOURS[state]}"/>'
            )
        parts.append(_text(left, top + 40, f"{len(points)} runs since {_stamp(float(points[0][0]))} UTC", 9))
    parts.append("</svg>")
    return "".join(parts)


def chart_markdown(title: str, svg: str) -> str:
    """Markdown with ``svg`` embedded as a data URI image (``title`` is escaped)."""
    from envsteward.status.render import md

    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f"## {md(title)}\n\n![{md(title)}](data:image/svg+xml;base64,{encoded})\n"


def read_history(store: Any, environments: Sequence[str]) -> tuple[dict[str, Points], dict[str, Points]]:
    """The drift and health points of ``environments`` from the state store (read-only)."""
    from envsteward.status.records import _points, drift_key, health_key

    drift: dict[str, Points] = {}
    health: dict[str, Points] = {}
    for env in environments:
        d = store.get(drift_key(env))
        h = store.get(health_key(env))
        drift[env] = _points(d.get("points")) if isinstance(d, dict) else []
        health[env] = _points(h.get("points")) if isinstance(h, dict) else []
    return drift, health
