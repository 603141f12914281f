"""The platform status: a cell per area of an environment, a row per environment, and the verdict rules.

Levels, worst last: ``green`` (fine), ``unknown`` (not seen yet, or could not be seen), ``amber`` (someone
should look soon), ``red`` (someone should act now). An environment's verdict is its worst cell, except
that ``unknown`` cells make the verdict ``amber`` at most (fail safe: an environment nobody could see is
not green, but an unread area is not an outage either). ``envsteward status`` exits 1 when any verdict is
``red``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    GREEN = "green"
    UNKNOWN = "unknown"
    AMBER = "amber"
    RED = "red"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.GREEN: 0, Level.UNKNOWN: 1, Level.AMBER: 2, Level.RED: 3}


def worst(levels: list[Level] | tuple[Level, ...]) -> Level:
    """The worst of ``levels`` (green when empty)."""
    return max(levels, key=lambda level: level.rank, default=Level.GREEN)


AREAS: tuple[str, ...] = ("health", "drift", "backups", "drill", "secrets", "promotions")
"""The columns of a row, in display order."""


@dataclass(frozen=True)
class Cell:
    """One area of one environment: its level, a short text (no secret, no value), and where it came from.

    ``lines`` are the details (one per check, target...), shown under the text where there is room.
    ``link`` is the Prefect UI page of the run the cell comes from, when known.
    """

    level: Level
    text: str
    lines: tuple[str, ...] = ()
    link: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "text": self.text,
            "details": list(self.lines),
            "link": self.link,
            "since": self.since.isoformat() if self.since else None,
        }


@dataclass(frozen=True)
class EnvironmentStatus:
    """One row: an environment's cells and its verdict."""

    environment: str
    tier: str
    cells: dict[str, Cell]

    @property
    def verdict(self) -> Level:
        levels = [cell.level for cell in self.cells.values()]
        level = worst(levels)
        return Level.AMBER if level is Level.UNKNOWN else level

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "tier": self.tier,
            "verdict": self.verdict.value,
            **{area: self.cells[area].as_json() for area in AREAS if area in self.cells},
        }


@dataclass(frozen=True)
class PlatformStatus:
    """Every row, when it was gathered, and what could not be read (safe one-line reasons)."""

    generated_at: datetime
    rows: tuple[EnvironmentStatus, ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def red(self) -> tuple[str, ...]:
        return tuple(row.environment for row in self.rows if row.verdict is Level.RED)

    @property
    def all_green(self) -> bool:
        return all(row.verdict is Level.GREEN for row in self.rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "all_green": self.all_green,
            "red": list(self.red),
            "environments": [row.as_json() for row in self.rows],
            "errors": list(self.errors),
        }
