"""Checks across a catalog's documents, on the raw data (so that an entry with other mistakes still gets
these reported too): duplicate names, unknown channels and environments, overlapping and missing mounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envsteward.catalog.models import MOUNT_PATTERN, SOURCE_KINDS, EnvironmentSpec
from envsteward.catalog.problems import ProblemSink
from envsteward.catalog.rendered import RenderedConfig
from envsteward.catalog.yamlio import YamlFile
from envsteward.drift.rules import DriftRules
from envsteward.tree import MISSING, PathTuple, format_path, parse_path, value_at


@dataclass
class EnvEntry:
    """One item of ``environments.yaml``: its position, raw data and validated spec (None if invalid)."""

    index: int
    raw: Any
    spec: EnvironmentSpec | None

    @property
    def name(self) -> str | None:
        name = self.raw.get("name") if isinstance(self.raw, dict) else None
        return name if isinstance(name, str) else None


def items(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty list (a wrong type is reported by validation)."""
    return value if isinstance(value, list) else []


def check_drift_rule_environments(
    sink: ProblemSink, doc: YamlFile, drift: DriftRules, env_names: set[str | None]
) -> None:
    for i, rule in enumerate(drift.ignore):
        for j, env in enumerate(rule.environments or []):
            if env not in env_names:
                where = ("drift", "ignore", i, "environments", j)
                sink.add(
                    doc.display,
                    doc.line_of(where),
                    format_path(where),
                    f"unknown environment {env!r}; known: {', '.join(sorted(n for n in env_names if n))}",
                )


def check_duplicate_environments(
    sink: ProblemSink, doc: YamlFile | None, entries: Sequence[EnvEntry]
) -> None:
    if doc is None:
        return
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.name is None:
            continue
        where = ("environments", entry.index, "name")
        if entry.name in seen:
            sink.add(
                doc.display,
                doc.line_of(where),
                format_path(where),
                f"duplicate environment name {entry.name!r} (first defined at line {seen[entry.name]})",
            )
        else:
            seen[entry.name] = doc.line_of(where)


def check_environment(
    sink: ProblemSink, doc: YamlFile, entry: EnvEntry, channel_names: set[str] | None
) -> None:
    """Names and references inside one environment: duplicate names, unknown channels (``channel_names``;
    None when catalog.yaml's channels could not be read), overlapping source mounts."""
    raw = entry.raw
    if not isinstance(raw, dict):
        return
    prefix: PathTuple = ("environments", entry.index)
    env_name = entry.name or f"#{entry.index}"

    def problem(path: PathTuple, message: str) -> None:
        full = (*prefix, *path)
        sink.add(doc.display, doc.line_of(full), format_path(full), message)

    for key, kind in (
        ("sources", "source"),
        ("health_checks", "health check"),
        ("backups", "backup target"),
    ):
        first: dict[str, int] = {}
        for index, item in enumerate(items(raw.get(key))):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in first:
                line = doc.line_of((*prefix, key, first[name]))
                problem(
                    (key, index, "name"),
                    f"duplicate {kind} name {name!r} in environment {env_name!r} (first at line {line})",
                )
            else:
                first[name] = index
    if channel_names is not None:
        for index, channel in enumerate(items(raw.get("notify"))):
            if isinstance(channel, str) and channel not in channel_names:
                known = ", ".join(sorted(channel_names)) or "(none: declare channels in catalog.yaml)"
                problem(("notify", index), f"unknown channel {channel!r}; known: {known}")
    mounts: list[tuple[str, PathTuple]] = []
    for index, source in enumerate(items(raw.get("sources"))):
        if not isinstance(source, dict):
            continue
        mount_at = source.get("mount_at", "")
        if (
            not isinstance(mount_at, str)
            or not MOUNT_PATTERN.match(mount_at)
            or source.get("kind") not in SOURCE_KINDS
        ):
            continue  # reported by validation
        name = str(source.get("name", f"#{index}"))
        mount = parse_path(mount_at)
        for other_name, other in mounts:
            if mount[: len(other)] == other or other[: len(mount)] == mount:
                problem(
                    ("sources", index, "mount_at"),
                    f"source {name!r} (mounted at {mount_at or '<root>'!r}) overlaps source "
                    f"{other_name!r} (mounted at {format_path(other) or '<root>'!r}): each part of the "
                    "configuration lives in exactly one source",
                )
                break
        mounts.append((name, mount))


def check_mounts(
    sink: ProblemSink, doc: YamlFile, prefix: PathTuple, spec: EnvironmentSpec, config: RenderedConfig
) -> None:
    for index, source in enumerate(spec.sources):
        value = value_at(config.data, parse_path(source.mount_at))
        where = (*prefix, "sources", index, "mount_at")
        if value is MISSING:
            message = (
                f"source {source.name!r} holds {source.mount_at!r}, but the desired configuration of "
                f"{spec.name!r} has nothing there: declare it in a layer (an empty mapping is fine)"
            )
        elif not isinstance(value, dict):
            message = (
                f"source {source.name!r} holds {source.mount_at!r}, but in the desired configuration of "
                f"{spec.name!r} that is {'a list' if isinstance(value, list) else 'a single value'}, "
                "not a mapping"
            )
        else:
            continue
        sink.add(doc.display, doc.line_of(where), format_path(where), message)
