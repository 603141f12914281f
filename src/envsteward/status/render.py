"""The platform status as markdown (the ``platform-status`` artifact), JSON and terminal table rows. Pure.

Everything that comes from outside (environment, check and target names from the catalog, run links) is
escaped: markdown special characters are backslash-escaped, ``<``/``>``/``&`` become entities, and a link
is kept only when it is an ``http(s)`` URL without spaces, quotes or brackets.
"""

from __future__ import annotations

import re

from envsteward.status.model import AREAS, Cell, Level, PlatformStatus

ARTIFACT_KEY = "platform-status"
ICONS = {Level.GREEN: "🟢", Level.AMBER: "🟠", Level.RED: "🔴", Level.UNKNOWN: "⚪"}
TITLES = {
    "health": "health",
    "drift": "drift",
    "backups": "backups",
    "drill": "DR drill",
    "secrets": "secrets",
    "promotions": "promotions",
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~-])")
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$")


def md(text: str) -> str:
    """``text`` safe inside a markdown table cell: no markup, no HTML, no line break."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", escaped).replace("\r", " ").replace("\n", " ")


def safe_link(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) URL a markdown link can hold unchanged, else None."""
    if url and _SAFE_URL.match(url) and "(" not in url and ")" not in url:
        return url
    return None


def _md_cell(cell: Cell) -> str:
    text = f"{ICONS[cell.level]} {md(cell.text)}"
    url = safe_link(cell.link)
    if url is not None:
        text += f" [run]({url})"
    if cell.lines:
        text += "<br>" + "<br>".join(md(line) for line in cell.lines)
    return text


def render_markdown(status: PlatformStatus) -> str:
    """The ``platform-status`` artifact: one row per environment, each cell linked to its run."""
    header = ["environment", "verdict", *(TITLES[area] for area in AREAS)]
    lines = [
        "# Platform status",
        "",
        f"Gathered {status.generated_at.strftime('%Y-%m-%d %H:%M:%S UTC')}. "
        "🟢 fine · 🟠 look soon · 🔴 act now · ⚪ not seen yet.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for row in status.rows:
        cells = [
            f"**{md(row.environment)}** ({md(row.tier)})",
            f"{ICONS[row.verdict]} **{row.verdict.value}**",
            *(_md_cell(row.cells[area]) for area in AREAS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if status.errors:
        lines += ["", "**Could not read:**", ""]
        lines += [f"- {md(error)}" for error in status.errors]
    return "\n".join(lines) + "\n"


STYLES = {Level.GREEN: "green", Level.AMBER: "yellow", Level.RED: "bold red", Level.UNKNOWN: "dim"}
