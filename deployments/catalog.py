"""Reads ``prefect.yaml`` so the embedded runner and the tests use the same deployment definitions.

``prefect.yaml`` is the single source of truth for names, entrypoints, schedules and concurrency limits;
nothing here repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentDefinition:
    name: str
    entrypoint: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    interval_seconds: float | None = None
    anchor_date: str | None = None
    """An interval schedule's phase (ISO time): its runs fall on ``anchor_date + k * interval``."""
    concurrency_limit: int | None = None
    active: bool = True


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentDefinition]:
    """Every deployment in ``prefect.yaml``. Raises ValueError naming the deployment that is malformed."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    definitions: list[DeploymentDefinition] = []
    for index, entry in enumerate(document.get("deployments") or []):
        name = entry.get("name")
        entrypoint = entry.get("entrypoint")
        if not name or not entrypoint:
            raise ValueError(f"{path}: deployments[{index}] needs a name and an entrypoint")
        schedules = entry.get("schedules") or []
        if len(schedules) > 1:
            raise ValueError(f"{path}: deployment {name!r}: the embedded runner supports one schedule")
        schedule = schedules[0] if schedules else {}
        definitions.append(
            DeploymentDefinition(
                name=name,
                entrypoint=entrypoint,
                description=entry.get("description"),
                tags=tuple(entry.get("tags") or ()),
                parameters=dict(entry.get("parameters") or {}),
                cron=schedule.get("cron"),
                interval_seconds=schedule.get("interval"),
                anchor_date=str(schedule["anchor_date"]) if schedule.get("anchor_date") else None,
                concurrency_limit=entry.get("concurrency_limit"),
                active=bool(schedule.get("active", True)),
            )
        )
    return definitions
